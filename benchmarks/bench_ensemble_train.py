"""Training cost of a deep ensemble trained side by side: K = 2 members on 2 ranks against one member on 1 rank.

    python benchmarks/bench_ensemble_train.py [--epochs 30] [--hidden 32 32] [--repeats 3] [--out results.md]

The demo set (input_files/demo, 2J=6) with its deck's split, a 2×32 tanh network, `--epochs` epochs (early
stopping cannot end them sooner: patience 50), fitted through the command line: `python -m fitsnap_ext` for one
member (ensemble_size 1) and `mpirun -np 2 python -m fitsnap_ext` for the ensemble (ensemble_size 2: one member
per rank, each on all the configurations). Interleaved repeats; for each run the wall time of the whole fit, of
its training stage (the fit's own "trained ... in X s" line: regrouping the data, training, sharing the members)
and the CPU time of all its processes (user + system). OMP_NUM_THREADS = 1. Units: seconds.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_deck(folder: Path) -> Path:
    """input_files/in.demo without its [PROPERTIES] run, reading the demo data where it is."""
    text = (REPO / "input_files" / "in.demo").read_text().split("[PROPERTIES]")[0]
    deck = folder / "demo.in"
    deck.write_text(text.replace("dataPath = demo", f"dataPath = {REPO / 'input_files' / 'demo'}"))
    return deck


def run(deck: Path, folder: Path, ranks: int, members: int, epochs: int, hidden: list[int]) -> dict:
    """One fit: {wall, train, train_cpu, cpu} seconds (train_cpu: the training stage's CPU time on the busiest
    rank; cpu: user + system of every process of the run)."""
    keys = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"), ("PYTORCH", "num_epochs", str(epochs)),
            ("PYTORCH", "layer_sizes", " ".join(["num_desc", *map(str, hidden), "1"])),
            ("PYTORCH", "energy_weight", "10"), ("PYTORCH", "force_weight", "1"),
            ("PYTORCH", "ensemble_size", str(members))]
    cmd = [sys.executable, "-m", "fitsnap_ext", str(deck), *[x for k in keys for x in ("-k", *k)]]
    if ranks > 1:
        mpirun = Path(sys.executable).with_name("mpirun")
        cmd = [str(mpirun if mpirun.exists() else shutil.which("mpirun")), "-np", str(ranks), *cmd]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    found = re.search(r"trained \d+ epochs.* in ([0-9.]+) s .*training CPU ([0-9.]+) s per rank", proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(wall=wall, train=float(found.group(1)), train_cpu=float(found.group(2)), cpu=cpu)


COLUMNS = ("wall", "train", "train_cpu", "cpu")


def report(rows: dict, args, load: tuple) -> str:
    """The markdown table: least of the repeats per column, the ratio, every repeat."""
    best = {name: {k: min(r[k] for r in runs) for k in COLUMNS} for name, runs in rows.items()}
    ratio = {k: best["ens"][k] / best["one"][k] for k in COLUMNS}
    cells = (lambda b: " | ".join(f"{b[k]:.2f}" for k in COLUMNS))
    every = (lambda runs: "; ".join("/".join(f"{r[k]:.2f}" for k in COLUMNS) for r in runs))
    lines = ["# bench_ensemble_train: K = 2 members on 2 ranks vs one member on 1 rank", "",
             f"Command: `python benchmarks/bench_ensemble_train.py --epochs {args.epochs} --hidden "
             f"{' '.join(map(str, args.hidden))} --repeats {args.repeats}` on a {os.cpu_count()}-core machine "
             f"(load average {load[0]:.2f} before the runs). Demo set (201 configurations: 145 train, 16 validation, "
             f"40 test; 2J=6), network 30-{'-'.join(map(str, args.hidden))}-1 tanh, {args.epochs} epochs, batch 4; "
             f"least of {args.repeats} interleaved repeats; seconds.", "",
             "| run | fit wall | training wall | training CPU, busiest rank | CPU, all processes |",
             "|:--|--:|--:|--:|--:|",
             f"| one member, 1 rank | {cells(best['one'])} |",
             f"| ensemble of 2, 2 ranks (one member each) | {cells(best['ens'])} |",
             f"| ratio | {' | '.join(f'{ratio[k]:.2f}' for k in COLUMNS)} |", "",
             f"Repeats (fit wall / training wall / training CPU / CPU): one member: {every(rows['one'])}. "
             f"Ensemble: {every(rows['ens'])}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rows = {"one": [], "ens": []}
    with tempfile.TemporaryDirectory() as tmp:
        deck = demo_deck(Path(tmp))
        for r in range(args.repeats):
            for name, ranks, members in (("one", 1, 1), ("ens", 2, 2)):
                rows[name].append(run(deck, Path(tmp) / name, ranks, members, args.epochs, args.hidden))
                print(f"repeat {r + 1} {name}: {rows[name][-1]}", flush=True)
    text = report(rows, args, load)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
