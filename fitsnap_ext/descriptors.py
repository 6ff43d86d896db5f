"""`compute snap` rows for each configuration: the linear system's A, b and weights.

Row layout per configuration (FitSNAP's): one energy row (bispectrum sums / N against (E − E_ref)/N),
3N force rows (against F − F_ref), 6 stress rows in bar (xx yy zz yz xz xy, against σ − σ_ref).
Columns per element: a constant (the fraction of atoms of that element; absent with bzeroflag) then the
`compute snap` components. The reference potential's part is subtracted inside LAMMPS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .settings import Settings
from .data.dataset import Entry
from .errors import DataError, LammpsError
from .lammps_session import LammpsSession
from .units import EV_PER_A3_TO_BAR, VOIGT, to_frame

ENERGY, FORCE, STRESS = 0, 1, 2
KIND_NAMES = ("Energy", "Force", "Stress")


def voigt_to_data_frame(rotation: np.ndarray) -> np.ndarray:
    """M (6×6) with voigt(Rᵀ S R) = M · voigt(S): takes a symmetric tensor's Voigt vector (xx yy zz yz xz xy)
    from LAMMPS' frame (S = R S_data Rᵀ) back to the data's frame, where a stress component mask applies."""
    m = np.empty((6, 6))
    for j, (a, b) in enumerate(zip(*VOIGT)):
        basis = np.zeros((3, 3))
        basis[a, b] = basis[b, a] = 1.0
        m[:, j] = (rotation.T @ basis @ rotation)[VOIGT]
    return m


def stress_in_fit_frame(stress: np.ndarray, rotation: np.ndarray, components: str) -> tuple[np.ndarray, np.ndarray]:
    """The Voigt stress target in the frame of the fit's stress rows, and the 6×6 matrix taking LAMMPS-frame Voigt
    vectors (model virials, reference stresses, their derivatives) to that frame: LAMMPS' own for all six
    components (identity), the data's when a component mask applies (so that the mask means what the deck says)."""
    if components == "all":
        return (rotation @ stress @ rotation.T)[VOIGT], np.eye(6)
    return stress[VOIGT], voigt_to_data_frame(rotation)


@dataclass
class Rows:
    """Rows of the linear system held by this rank (unweighted A, target b, weights w)."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    kind: np.ndarray    # ENERGY / FORCE / STRESS per row
    entry: np.ndarray   # index of the Entry each row comes from

    @classmethod
    def empty(cls, ncols: int) -> "Rows":
        return cls(np.zeros((0, ncols)), np.zeros(0), np.zeros(0), np.zeros(0, np.int8), np.zeros(0, np.int64))

    @classmethod
    def concatenate(cls, parts: list["Rows"], ncols: int) -> "Rows":
        if not parts:
            return cls.empty(ncols)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("a", "b", "w", "kind", "entry")))


def n_columns(settings: Settings) -> int:
    bs = settings.bispectrum
    return bs.numtypes * (bs.ncoeff + (0 if bs.bzeroflag else 1))


class SnapCalculator:
    """Turns entries into rows with one reused LAMMPS instance (on this rank alone)."""

    def __init__(self, settings: Settings, session: LammpsSession | None = None):
        self.settings = settings
        self.session = session or LammpsSession()
        self.compute_command = f"compute snap all snap {settings.bispectrum.compute_snap_args()}"
        self.ncoeff = settings.bispectrum.ncoeff

    def close(self):
        self.session.close()

    def setup(self, entry: Entry):
        """Place the configuration and define the reference potential and `compute snap`."""
        s = self.settings
        placed = self.session.place(entry.frame, list(s.bispectrum.types), s.reference.units,
                                    s.reference.atom_style, pbc=tuple(entry.frame.pbc))
        self.session.commands(s.reference.commands)
        self.session.commands(["neighbor 1.0e-20 bin", "neigh_modify one 10000"])
        return placed

    def model_rows(self, entry: Entry):
        """The configuration's full linear model in LAMMPS' frame: (design, reference, placed) where
        `design @ coef + reference` is [total energy (eV), 3N forces (eV/Å), 6 virial stresses (bar, xx yy zz yz
        xz xy, pressure-positive)]. Columns per element: the atom count of that element (absent with bzeroflag),
        then the `compute snap` components."""
        bs = self.settings.bispectrum
        frame = entry.frame
        try:
            placed = self.setup(entry)
            self.session.commands([self.compute_command, "run 0"])
            snap = self.session.compute_array("snap")
        except LammpsError as exc:
            raise LammpsError(f"{frame.label()}: {exc}") from None
        n, nt, nc = frame.natoms, bs.numtypes, self.ncoeff
        if snap.shape != (1 + 3 * n + 6, nt * nc + 1):
            raise LammpsError(f"compute snap returned shape {snap.shape}, expected {(1 + 3 * n + 6, nt * nc + 1)}")
        if not np.all(np.isfinite(snap)):
            raise DataError("compute snap gave non-finite values (atoms on top of each other?)", **frame.where())
        design = snap[:, :-1].copy()
        design[1 + 3 * n:] *= EV_PER_A3_TO_BAR / float(np.prod(np.diag(placed.cell)))
        if not bs.bzeroflag:
            counts = np.zeros((len(design), nt))
            counts[0] = [frame.symbols.count(t) for t in bs.types]
            design = np.concatenate([counts[:, :, None], design.reshape(len(design), nt, nc)], axis=2)
            design = design.reshape(len(counts), -1)
        return design, snap[:, -1], placed

    def predict(self, entry: Entry, coef: np.ndarray, cov_factor: np.ndarray | None = None):
        """(energy eV, forces (N, 3) eV/Å, stress Voigt bar or None, energy σ eV, per-atom force σ (N,) eV/Å) of the
        linear model `coef` plus the reference, in the frame's own orientation (the stress only for a frame
        periodic in all three directions); the σ's (from F, FFᵀ = the coefficients' covariance) are None
        without it."""
        design, reference, placed = self.model_rows(entry)
        y = design @ coef + reference
        energy_std = force_std = None
        if cov_factor is not None:
            from .models.posterior import predictive_std

            n = entry.frame.natoms
            std = predictive_std(design[:1 + 3 * n], cov_factor)
            energy_std, force_std = float(std[0]), np.sqrt((std[1:] ** 2).reshape(n, 3).sum(axis=1))
        n, rot = entry.frame.natoms, placed.rotation
        forces = y[1:1 + 3 * n].reshape(n, 3) @ rot
        stress = None
        if all(entry.frame.pbc):
            stress = to_frame(y[1 + 3 * n:], rot)
        return float(y[0]), forces, stress, energy_std, force_std

    def rows(self, entry: Entry) -> Rows:
        """The fit's rows (FitSNAP's layout, see the module text) with their targets and weights."""
        calc = self.settings.calculator
        frame = entry.frame
        design, ref, placed = self.model_rows(entry)
        n = frame.natoms
        parts_a, parts_b, parts_w, kinds = [], [], [], []
        if calc.energy:
            parts_a.append(design[:1] / n)
            parts_b.append([(frame.energy - ref[0]) / n])
            parts_w.append([entry.eweight])
            kinds.append([ENERGY])
        if calc.force:
            forces = frame.forces @ placed.rotation.T
            parts_a.append(design[1:1 + 3 * n])
            parts_b.append(forces.ravel() - ref[1:1 + 3 * n])
            parts_w.append(np.full(3 * n, entry.fweight))
            kinds.append(np.full(3 * n, FORCE))
        if calc.stress:
            target, to_fit = stress_in_fit_frame(frame.stress, placed.rotation, calc.stress_components)
            parts_a.append(to_fit @ design[1 + 3 * n:])
            parts_b.append(target - to_fit @ ref[1 + 3 * n:])
            parts_w.append(entry.vweight * np.asarray(calc.stress_mask))
            kinds.append(np.full(6, STRESS))
        a = np.concatenate(parts_a)
        return Rows(a, np.concatenate([np.asarray(p, float) for p in parts_b]),
                    np.concatenate([np.asarray(p, float) for p in parts_w]),
                    np.concatenate([np.asarray(k, np.int8) for k in kinds]),
                    np.full(len(a), entry.index, dtype=np.int64))
