"""Units and sign conventions, in one place.

fitsnap_ext works in LAMMPS `metal` units: energy eV, length Å, time ps, force eV/Å, pressure and stress bar.
Stress tensors are kept **pressure-positive** (LAMMPS' and VASP's sign: a compressed cell reads positive,
pressure = trace/3). ASE's stress is tension-positive in eV/Å³, so `ase = -bar / EV_PER_A3_TO_BAR`.
Voigt order is xx yy zz yz xz xy (ASE's); LAMMPS' `compute pressure` vector is xx yy zz xy xz yz.
"""
from __future__ import annotations

import numpy as np

EV_PER_A3_TO_BAR = 1.6021765e6   # LAMMPS metal nktv2p (FitSNAP uses the same factor); ASE stress <-> bar too
BAR_TO_GPA = 1.0e-4
EV_PER_A3_TO_GPA = 160.21766208  # bulk moduli from E(V) fits (CODATA 2014 e; the reported Birch-Murnaghan B)
STRESS_UNITS = ("bar", "kbar", "GPa", "eV/A3")   # units a data file may declare; eV/A3 is ASE's tension-positive
PRESSURE_TO_BAR = {"bar": 1.0, "kbar": 1.0e3, "GPa": 1.0e4}  # the pressure-positive ones
LAMMPS_PRESSURE_TO_VOIGT = [0, 1, 2, 5, 4, 3]    # compute pressure (xx yy zz xy xz yz) → Voigt (xx yy zz yz xz xy)
VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])  # rows, columns of the Voigt components: tensor[VOIGT] is Voigt 6

KB_EV = 8.617333262e-5           # Boltzmann constant, eV/K
KB_J = 1.380649e-23              # Boltzmann constant, J/K
ELEMENTARY_CHARGE_C = 1.602176634e-19
A2_PER_PS_TO_CM2_PER_S = 1.0e-4  # diffusion coefficients: 1 Å²/ps = 1e-16 cm² / 1e-12 s
EV_PER_A2_PS_TO_W_PER_M2 = ELEMENTARY_CHARGE_C / (1e-20 * 1e-12)   # heat flux
# phonons: eigenvalues of a dynamical matrix in eV/(Å² amu) → squared ordinary frequency in THz²
EV_A2_AMU_TO_THZ2 = (np.sqrt(1.602176634e-19 / (1e-20 * 1.66053906660e-27)) / (2 * np.pi) / 1e12) ** 2


def voigt(tensor: np.ndarray) -> np.ndarray:
    """3×3 → Voigt 6 (xx yy zz yz xz xy)."""
    return np.asarray(tensor, dtype=float)[VOIGT]


def tensor(voigt6) -> np.ndarray:
    """Voigt 6 (xx yy zz yz xz xy) → symmetric 3×3."""
    xx, yy, zz, yz, xz, xy = np.asarray(voigt6, dtype=float)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def to_frame(voigt6, rotation: np.ndarray) -> np.ndarray:
    """A Voigt tensor from LAMMPS' frame (v_lammps = rotation @ v_frame) back to the frame's own orientation."""
    r = np.asarray(rotation, dtype=float)
    return voigt(r.T @ tensor(voigt6) @ r)


def bar_to_ase_stress(stress_bar: np.ndarray) -> np.ndarray:
    """Pressure-positive bar (3×3) → ASE's Voigt stress (tension-positive eV/Å³)."""
    return -voigt(stress_bar) / EV_PER_A3_TO_BAR


def ase_stress_to_bar(stress) -> np.ndarray:
    """ASE's stress (Voigt 6 or 3×3, tension-positive eV/Å³) → pressure-positive bar (3×3)."""
    s = np.asarray(stress, dtype=float)
    return -(tensor(s) if s.shape == (6,) else s) * EV_PER_A3_TO_BAR
