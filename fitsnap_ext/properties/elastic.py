"""Relaxed-ion elastic constants by finite strain (central differences of the stress), zero temperature."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fitsnap_ext.properties.runner import DeckRunner
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import BAR_TO_GPA, VOIGT


def stiffness_from_stress(table: np.ndarray, delta: float) -> np.ndarray:
    """6×6 C (GPa) from rows "dir sign pxx pyy pzz pyz pxz pxy" (bar); symmetrised."""
    c = np.zeros((6, 6))
    for j in range(1, 7):
        plus = table[(table[:, 0] == j) & (table[:, 1] > 0), 2:8][0]
        minus = table[(table[:, 0] == j) & (table[:, 1] < 0), 2:8][0]
        c[:, j - 1] = -(plus - minus) / (2.0 * delta) * BAR_TO_GPA
    return 0.5 * (c + c.T)


VOIGT_PAIRS = tuple(zip(*VOIGT))   # (row, column) of each Voigt component


def rotate_stiffness(c: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Express a 6×6 Voigt stiffness given in LAMMPS' frame in the structure's own frame.

    `rotation` is R with cell_structure @ R = cell_lammps (rows are vectors), so x_structure = R x_lammps.
    """
    full = np.zeros((3, 3, 3, 3))
    for i, (a, b) in enumerate(VOIGT_PAIRS):
        for j, (k, m) in enumerate(VOIGT_PAIRS):
            for p, q in ((a, b), (b, a)):
                for r, t in ((k, m), (m, k)):
                    full[p, q, r, t] = c[i, j]
    rot = np.einsum("ia,jb,kc,ld,abcd->ijkl", rotation, rotation, rotation, rotation, full)
    return np.array([[rot[a, b, k, m] for (k, m) in VOIGT_PAIRS] for (a, b) in VOIGT_PAIRS])


def named_constants(c: np.ndarray, symmetry: str) -> dict[str, float]:
    """Symmetry-averaged constants: cubic (C11 C12 C44), hexagonal (C11 C12 C13 C33 C44 C66) or all 21."""
    if symmetry == "cubic":
        vals = {"C11_GPa": np.mean([c[0, 0], c[1, 1], c[2, 2]]),
                "C12_GPa": np.mean([c[0, 1], c[0, 2], c[1, 2]]),
                "C44_GPa": np.mean([c[3, 3], c[4, 4], c[5, 5]])}
    elif symmetry == "hexagonal":
        vals = {"C11_GPa": np.mean([c[0, 0], c[1, 1]]), "C12_GPa": c[0, 1],
                "C13_GPa": np.mean([c[0, 2], c[1, 2]]), "C33_GPa": c[2, 2],
                "C44_GPa": np.mean([c[3, 3], c[4, 4]]), "C66_GPa": c[5, 5]}
    else:
        vals = {f"C{i + 1}{j + 1}_GPa": c[i, j] for i in range(6) for j in range(i, 6)}
    return {k: float(v) for k, v in vals.items()}


def voigt_bulk_modulus(c: np.ndarray) -> float:
    """B_V = (C11+C22+C33 + 2(C12+C13+C23))/9: the response to uniform (shape-keeping) scaling."""
    return float((c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9.0)


def run_elastic(runner: DeckRunner, system: SystemPreset, relaxed_data: Path, out: Path,
                quick: bool, rotation: np.ndarray, delta: float = 1.0e-3) -> tuple[dict, np.ndarray]:
    """Run in.elastic on the relaxed cell; returns (named constants + B_Voigt, 6×6 matrix in GPa).

    The matrix is rotated back from LAMMPS' lower-triangular frame to the structure's frame (`rotation`
    from runner.lammps_cell), so cubic axes stay cubic axes for a primitive fcc cell.
    """
    nx, ny, nz = system.mode(quick).elastic_supercell
    runner.run("elastic", "elastic", data=relaxed_data, out=out, nx=nx, ny=ny, nz=nz, delta=delta)
    table = np.loadtxt(out / "elastic_stress.txt", ndmin=2)
    c = rotate_stiffness(stiffness_from_stress(table, delta), rotation)
    values = named_constants(c, system.elastic_symmetry)
    values["bulk_modulus_voigt_GPa"] = voigt_bulk_modulus(c)
    return values, c
