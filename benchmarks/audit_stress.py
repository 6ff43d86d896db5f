"""Audit a data set's stresses against a potential fitted to it: are the off-diagonal components in the frame of the
stored cell? For each file, the RMS difference (bar) between the data's shear stresses (xy, xz, yz) and the
potential's, as stored and under each relabelling of the three components.

    P=$(python -c "from fitsnap_ext.lammps_session import potentials_dir; print(potentials_dir())")
    python benchmarks/audit_stress.py --mod $P/Si_Zuo_JPCA2020.snap --elements Si ../shared/data/si_zuo/*.extxyz

Made for ../shared/data/si_zuo, checked against the Zuo SNAP that ships with LAMMPS (fitted to those data); the
result is in benchmarks/results/si_zuo/README.md.
Units: bar (LAMMPS metal), pressure-positive.
"""
import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

SHEAR = ("xy", "xz", "yz")
INDEX = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


def shear(s: np.ndarray) -> np.ndarray:
    return np.array([s[INDEX[c]] for c in SHEAR])


def audit_file(path: Path, labeler, stress_unit: str) -> dict:
    from fitsnap_ext.data.extxyz import read_extxyz

    frames = read_extxyz(path, stress_unit)
    data = np.array([shear(f.stress) for f in frames])
    model = np.array([shear(labeler.label(f).stress) for f in frames])
    perms = list(itertools.permutations(range(3)))
    rms = {p: float(np.sqrt(np.mean((data[:, p] - model) ** 2))) for p in perms}
    return {"file": path.name, "frames": len(frames), "rms": rms,
            "model_rms": float(np.sqrt(np.mean(model ** 2)))}


def label(p) -> str:
    """The relabelling as 'true xy, xz, yz ← stored ...'."""
    return "stored" if p == (0, 1, 2) else "/".join(SHEAR[i] for i in p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--mod", required=True, help="LAMMPS include file of the potential (pair_style/pair_coeff)")
    ap.add_argument("--elements", required=True, help="LAMMPS types in order, comma-separated (Ga,N)")
    ap.add_argument("--stress-unit", default="bar")
    args = ap.parse_args(argv)
    elements = args.elements.split(",")

    from ase.data import atomic_masses, atomic_numbers

    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.labelers import LammpsLabeler

    labeler = LammpsLabeler(LabelerSettings(type="lammps", mod=str(args.mod), elements=elements,
                                            masses=[float(atomic_masses[atomic_numbers[e]]) for e in elements]))
    perms = list(itertools.permutations(range(3)))
    lines = ["Shear stresses of the data against the potential (bar, RMS over frames); a column 'a/b/c' reads the "
             "stored a, b, c as the true xy, xz, yz.", "",
             "| file | frames | potential's RMS shear | " + " | ".join(label(p) for p in perms)
             + " |", "|---|--:|--:|" + "--:|" * len(perms)]
    try:
        for path in args.files:
            r = audit_file(path, labeler, args.stress_unit)
            lines.append(f"| {r['file']} | {r['frames']} | {r['model_rms']:.0f} | "
                         + " | ".join(f"{r['rms'][p]:.0f}" for p in perms) + " |")
    finally:
        labeler.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
