"""Time each stage of a linear SNAP fit beside the bare LAMMPS `compute snap` loop and FitSNAP itself.

    python benchmarks/bench_fit.py [--sets ta si] [--ranks 1 2] [--fitsnap-src DIR] [--out results.md]

For each data set and rank count it runs, as fresh processes (so start-up and imports count):
  * fitsnap_ext (`python -m fitsnap_ext DECK`), with its stage timings (read, descriptors, fit, write);
  * the bare loop: a fresh process that imports LAMMPS, reads the same configurations and puts them
    through LAMMPS (`clear`, box, atoms, reference pair style, `compute snap`, `run 0`) with nothing else —
    the floor for any LAMMPS-based fit (its whole wall time, and the loop alone);
  * FitSNAP (`python -m fitsnap3 DECK`) from a source checkout given by --fitsnap-src, same deck.
and prints a markdown table of times and ratios (targets: whole Ta fit ≤ 1.25× the bare loop; 2 ranks
≥ 1.7× faster than 1 on the Si paper set). Timings are wall-clock seconds on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DECKS = {"ta": REPO / "input_files" / "in.ta", "si": REPO / "input_files" / "in.si",
         "demo": REPO / "input_files" / "in.demo"}


def worker(deck: str, mode: str) -> None:
    """Run inside mpirun: 'fit' (the whole fit, stage timings) or 'bare' (LAMMPS loop only)."""
    t_start = time.perf_counter()
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.parallel import world

    comm = world()
    settings = load_settings(deck)
    if mode == "fit":
        from fitsnap_ext.pipeline import run_fit

        result = run_fit(settings, comm, overwrite=True, progress=lambda msg: None)
        timings = dict(result.timings)
    else:
        from fitsnap_ext.data.dataset import load_entries
        from fitsnap_ext.descriptors import SnapCalculator
        from fitsnap_ext.parallel import split_by_atoms

        entries = load_entries(settings)
        share = split_by_atoms([e.frame.natoms for e in entries], comm.size)[comm.rank]
        calc = SnapCalculator(settings)
        comm.Barrier()
        t = time.perf_counter()
        for i in share:
            calc.setup(entries[i])
            calc.session.commands([calc.compute_command, "run 0"])
            calc.session.compute_array("snap")  # a compute only runs when something asks for its result
        comm.Barrier()
        timings = {"bare_loop": time.perf_counter() - t}
        calc.close()
    timings["in_process"] = time.perf_counter() - t_start
    if comm.rank == 0:
        print("TIMINGS " + json.dumps(timings), flush=True)


def launch(args: list[str], ranks: int, cwd: Path, env=None) -> tuple[float, dict, str]:
    cmd = [sys.executable, *args]
    if ranks > 1:
        cmd = [str(Path(sys.executable).with_name("mpirun")), "-np", str(ranks), *cmd]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    timings = {}
    for line in proc.stdout.splitlines():
        if line.startswith("TIMINGS "):
            timings = json.loads(line[8:])
    return wall, timings, proc.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["ta", "si"], choices=sorted(DECKS))
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    p.add_argument("--fitsnap-src", type=Path, help="FitSNAP source folder (holding fitsnap3/ and fitsnap3lib/)")
    p.add_argument("--peer-sets", nargs="+", default=["ta"],
                   help="sets whose deck FitSNAP reads unchanged (in.si/in.demo use our XYZ stress_unit key)")
    p.add_argument("--out", type=Path, help="also write the table here (markdown)")
    p.add_argument("--worker", nargs=2, metavar=("DECK", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0

    rows = []
    for name in args.sets:
        deck = DECKS[name]
        base = {}
        for ranks in args.ranks:
            with tempfile.TemporaryDirectory() as tmp:
                wall, t, _ = launch([__file__, "--worker", str(deck), "fit"], ranks, Path(tmp))
                bare_wall, b, _ = launch([__file__, "--worker", str(deck), "bare"], ranks, Path(tmp))
            row = dict(set=name, ranks=ranks, tool="fitsnap_ext", wall=wall, bare=b["bare_loop"],
                       bare_wall=bare_wall, **t)
            base.setdefault("wall", wall)
            row["speedup"] = base["wall"] / wall
            rows.append(row)
            print(f"{name} ranks={ranks}: fitsnap_ext {wall:.2f} s, bare compute snap loop {b['bare_loop']:.2f} s",
                  flush=True)
        if args.fitsnap_src and name in args.peer_sets:
            for ranks in args.ranks:
                with tempfile.TemporaryDirectory() as tmp:
                    wall, _, _ = launch(["-m", "fitsnap3", str(deck), "--overwrite"], ranks, Path(tmp),
                                        env={"PYTHONPATH": str(args.fitsnap_src.resolve())})
                rows.append(dict(set=name, ranks=ranks, tool="FitSNAP", wall=wall))
                print(f"{name} ranks={ranks}: FitSNAP {wall:.2f} s", flush=True)

    table = ["Wall-clock seconds on this machine (each run a fresh process: start-up and imports included).",
             "", "| set | ranks | tool | read | descriptors | fit | write | whole run | bare process (loop) "
             "| whole / bare process | speed-up vs 1 rank | fitsnap_ext / FitSNAP |",
             "|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "–"  # noqa: E731
    for r in rows:
        peer = next((x for x in rows if x["tool"] == "FitSNAP" and x["set"] == r["set"]
                     and x["ranks"] == r["ranks"]), None)
        ratio = r["wall"] / peer["wall"] if peer and r["tool"] == "fitsnap_ext" else None
        table.append(f"| {r['set']} | {r['ranks']} | {r['tool']} | {fmt(r.get('read'))} | "
                     f"{fmt(r.get('descriptors'))} | {fmt(r.get('fit'))} | {fmt(r.get('write'))} | {r['wall']:.2f} | "
                     + (f"{r['bare_wall']:.2f} ({r['bare']:.2f})" if "bare" in r else "–") + " | "
                     f"{fmt(r['wall'] / r['bare_wall'] if 'bare' in r else None)} | "
                     f"{fmt(r.get('speedup'))} | {fmt(ratio)} |")
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
