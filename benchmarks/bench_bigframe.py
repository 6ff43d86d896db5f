"""Peak memory and time of a network fit against frame size (per-atom descriptor stage + a few epochs).

Each size runs as a fresh process (`--child`): one rattled diamond-Si frame of N atoms (labels: a smooth
made-up energy and random forces — the cost, not the fit, is measured), an extended-XYZ data folder and a
[PYTORCH] deck in a temporary folder, then `run_network_fit`. Frames whose dense `compute snap ... dgradflag 1`
array (3N² × (3 + ndesc) doubles, twice inside LAMMPS) would exceed 256 MiB go by colours (peratom.py); the
table shows what the dense array alone would have needed.

    python benchmarks/bench_bigframe.py [--sizes 1000 5184 20000] [--twojmax 4] [--epochs 2] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELLS = {1000: (5, 5, 5), 5184: (9, 9, 8), 20000: (10, 10, 25)}
DECK = """[BISPECTRUM]
numTypes = 1
twojmax = {twojmax}
rcutfac = 4.67637
rfac0 = 0.99363
rmin0 = 0.0
wj = 1.0
radelem = 0.5
type = Si
[CALCULATOR]
calculator = LAMMPSSNAP
energy = 1
force = 1
stress = 0
nonlinear = 1
[SOLVER]
solver = PYTORCH
[PYTORCH]
layer_sizes = num_desc 16 16 1
num_epochs = {epochs}
batch_size = 1
validation_fraction = 0
save_state_output =
[SCRAPER]
scraper = XYZ
[PATH]
dataPath = data
[OUTFILE]
potential = big
metrics = big_metrics.md
[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
big = 1.0 0.0 1 1 0
"""


def write_frame(path: Path, reps, seed=0) -> int:
    """A rattled diamond-Si supercell as extended XYZ (energy, forces); its atom count."""
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.25, .25, .25], [.25, .75, .75],
                     [.75, .25, .75], [.75, .75, .25]])
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    pos = ((grid[:, None] + base[None]).reshape(-1, 3) * 5.43) + rng.normal(0, 0.05, (len(grid) * 8, 3))
    n = len(pos)
    forces = rng.normal(0, 0.5, (n, 3))
    cell = np.diag(np.array(reps) * 5.43)
    lines = [str(n), f'Lattice="{" ".join(repr(float(x)) for x in cell.ravel())}" Properties=species:S:1:pos:R:3:forces:R:3 '
             f'energy={float(-4.33 * n + 0.01 * n ** 0.5)!r} pbc="T T T"']
    lines += ["Si " + " ".join(repr(float(x)) for x in (*p, *f)) for p, f in zip(pos, forces)]
    path.write_text("\n".join(lines) + "\n")
    return n


def child(n: int, twojmax: int, epochs: int) -> dict:
    """One fit in this process; its timings and peak RSS."""
    import io
    import resource

    import torch

    from fitsnap_ext.config import load_settings
    from fitsnap_ext.pipeline import Progress
    from fitsnap_ext.pipeline import run_fit
    from fitsnap_ext.parallel import world

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        natoms = write_frame(folder / "data" / "big.xyz", CELLS[n])
        deck = folder / "in.big"
        deck.write_text(DECK.format(twojmax=twojmax, epochs=epochs))
        settings = load_settings(deck)
        comm = world()
        t = time.perf_counter()
        result = run_fit(settings.in_folder(folder), comm, overwrite=True, progress=Progress(comm, stream=io.StringIO()))
        total = time.perf_counter() - t
    nd = settings.bispectrum.ncoeff
    return dict(natoms=natoms, ndesc=nd, descriptors_s=result.timings["descriptors"],
                epoch_s=result.timings["epoch"], total_s=total,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                dense_mib=2 * 8.0 * (natoms + 3 * natoms ** 2 + 1) * (3 + nd) / 2 ** 20)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5184, 20000], choices=sorted(CELLS))
    ap.add_argument("--twojmax", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.twojmax, args.epochs)))
        return
    rows = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--twojmax", str(args.twojmax),
                               "--epochs", str(args.epochs)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{n} atoms done: {rows[-1]}", file=sys.stderr, flush=True)
    text = [f"# Network fit on one big frame: peak memory and time (2J={args.twojmax}, 16-16 tanh, "
            f"{args.epochs} epochs, 1 rank, 1 torch thread)", "",
            "| atoms | ndesc | per-atom descriptors (s) | s/epoch | whole fit (s) | peak RSS (MiB) | "
            "dense dgradflag array alone (MiB) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    text += [f"| {r['natoms']} | {r['ndesc']} | {r['descriptors_s']:.1f} | {r['epoch_s']:.1f} | {r['total_s']:.1f} "
             f"| {r['peak_rss_mib']:.0f} | {r['dense_mib']:.0f} |" for r in rows]
    text += ["", "Peak RSS is the whole process's (Python, torch, LAMMPS, the data). The dense column is what "
             "`compute snap ... dgradflag 1` allocates (two N + 3N² + 1 by 3 + ndesc arrays) and what the fit "
             "asked for before frames went by colours."]
    out = "\n".join(text) + "\n"
    print(out)
    if args.out:
        Path(args.out).write_text(out)


if __name__ == "__main__":
    main()
