"""Per-atom bispectrum descriptors B_i and their sparse gradients, for networks E = Σ_i NN(B_i).

One `compute snap ... bikflag 1 dgradflag 1` per configuration. With dgradflag the global array is
(read from LAMMPS 2025.7.22 and checked in tests/test_network.py):

* rows 0..N-1: columns 0-2 the reference potential's force on atom i, then B_i (ncoeff columns for every
  element: unlike the linear layout there are no per-type column blocks; the element comes from the atom's type);
* then 3 rows per (i, j) pair — LAMMPS 2025 lists all N² pairs, most of them zero; only the nonzero
  (neighbour, and self) pairs are kept: columns 0-2 are (i, j, direction a), then
  the derivative of B_i with respect to the position of atom j, with the sign of `compute snap`'s force
  rows, so that F_j^a = Σ_i dE/dB_i · row(i, j, a)  (= −Σ_i dE/dB_i · ∂B_i/∂r_j^a);
* a last row whose column 0 is the reference energy.

Only those pairs are stored (float64, P × 3 × ndesc), never the dense N × N × 3 × ndesc tensor.

Stresses need, per atom, how B_i changes under a homogeneous strain of the cell. The (i, j) rows cannot give
it: in a small periodic cell several images of j are neighbours of i and LAMMPS sums them into one row, so the
pair's separation is lost. Instead ∂B_i/∂h_v is taken by central differences of `compute sna/atom` under the six
upper-triangular deformations F = I + h·e_a e_bᵀ (xx yy zz yz xz xy) of the LAMMPS cell; for a rotation-invariant
energy the pressure tensor is then P_v = −(1/V) Σ_i ∂E/∂B_i · ∂B_i/∂h_v (N × 6 × ndesc floats per configuration;
step 1e-5, truncation error ~1e-10 relative).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Settings
from .data.dataset import Entry
from .descriptors import VOIGT, stress_in_fit_frame
from .errors import DataError, FitsnapError, LammpsError


@dataclass
class ConfigData:
    """One configuration's per-atom descriptors, sparse gradients and targets (LAMMPS frame)."""

    index: int
    group: str
    test: bool
    eweight: float
    fweight: float
    elements: np.ndarray      # (N,) element index of each atom (order of [BISPECTRUM] type)
    b: np.ndarray             # (N, ndesc) B_i
    pair_i: np.ndarray        # (P,) owner of the descriptor
    pair_j: np.ndarray        # (P,) atom whose position is differentiated
    dgrad: np.ndarray         # (P, 3, ndesc): F_j^a = Σ_p beta[pair_i[p]] · dgrad[p, a]
    energy: float             # target total energy minus the reference potential's (eV)
    forces: np.ndarray        # (N, 3) target forces minus the reference's, LAMMPS frame (eV/Å)
    ref_energy: float = 0.0
    ref_forces: np.ndarray | None = None
    rotation: np.ndarray | None = None
    vweight: float = 0.0
    volume: float = 0.0           # Å³
    stress: np.ndarray | None = None  # (6,) target pressure tensor minus the reference's, bar, xx yy zz yz xz xy
    ref_stress: np.ndarray | None = None  # (6,) the reference potential's pressure tensor (bar)
    dbde: np.ndarray | None = None    # (N, 6, ndesc): ∂B_i/∂h_v under the deformations above

    @property
    def natoms(self) -> int:
        return len(self.elements)

    @property
    def nbytes(self) -> int:
        arrays = (self.elements, self.b, self.pair_i, self.pair_j, self.dgrad, self.forces, self.dbde)
        return sum(a.nbytes for a in arrays if a is not None)


def check_network_settings(settings: Settings) -> None:
    """Refuse descriptor settings that LAMMPS' `mliap ... descriptor sna` cannot reproduce."""
    bs = settings.bispectrum
    if bs.quadraticflag:
        raise FitsnapError("[BISPECTRUM] quadraticflag = 1 cannot be used with solver = PYTORCH: the network "
                           "takes the linear bispectrum (LAMMPS' compute snap has no quadratic dgradflag, and "
                           "mliap descriptor sna has no quadratic terms)")
    if not settings.calculator.energy and not settings.calculator.force:
        raise FitsnapError("a network needs energy and/or force rows ([CALCULATOR] energy / force)")


class PerAtomCalculator:
    """Turns entries into `ConfigData` with one reused LAMMPS instance (this rank alone)."""

    def __init__(self, settings: Settings, session=None):
        from .descriptors import SnapCalculator

        check_network_settings(settings)
        self.settings = settings
        self.snap = SnapCalculator(settings, session)
        self.with_stress = settings.calculator.stress

    def close(self):
        self.snap.close()

    def compute(self, entry: Entry) -> ConfigData:
        bs = self.settings.bispectrum
        frame = entry.frame
        try:
            placed = self.snap.setup(entry)
            self.snap.session.commands([f"compute snap all snap {bs.compute_snap_args()} bikflag 1 dgradflag 1",
                                        "compute refp all pressure NULL virial", "run 0"])
            arr = self.snap.session.compute_array("snap")
            ref_pressure = self.snap.session.compute_vector("refp")
        except LammpsError as exc:
            raise LammpsError(f"{frame.source or frame.group} (configuration {entry.index}): {exc}") from None
        n, nd = frame.natoms, bs.ncoeff
        if arr.shape[1] != 3 + nd or (arr.shape[0] - n - 1) % 3 or arr.shape[0] < n + 1:
            raise LammpsError(f"compute snap (dgradflag 1) returned shape {arr.shape}; expected "
                              f"(N + 3P + 1, {3 + nd}) with N = {n}")
        if not np.all(np.isfinite(arr)):
            raise DataError("compute snap gave non-finite values (atoms on top of each other?)",
                            frame.source, entry.index)
        type_index = {t: k for k, t in enumerate(bs.types)}
        elements = np.array([type_index[s] for s in frame.symbols], dtype=np.int64)
        b = arr[:n, 3:].copy()
        ref_forces = arr[:n, :3].copy()
        ref_energy = float(arr[-1, 0])
        grad = arr[n:-1].reshape(-1, 3, arr.shape[1])
        idx = grad[:, :, :3]
        pair_i = idx[:, 0, 0].astype(np.int64)
        pair_j = idx[:, 0, 1].astype(np.int64)
        if not (np.array_equal(idx[:, :, 2], np.tile([0.0, 1.0, 2.0], (len(grad), 1)))
                and np.all(idx[:, :, 0] == idx[:, :1, 0]) and np.all(idx[:, :, 1] == idx[:, :1, 1])):
            raise LammpsError("compute snap dgradflag rows are not (i, j, 0/1/2) triplets as expected")
        dgrad = grad[:, :, 3:].copy()
        del grad, arr
        keep = np.any(dgrad != 0.0, axis=(1, 2))  # LAMMPS lists every (i, j); only neighbours are nonzero
        pair_i, pair_j, dgrad = pair_i[keep], pair_j[keep], dgrad[keep]
        forces = (frame.forces @ placed.rotation.T) if frame.forces is not None else np.zeros((n, 3))
        volume = float(np.prod(np.diag(placed.cell)))
        stress = dbde = None
        ref_stress = ref_pressure[[0, 1, 2, 5, 4, 3]]  # LAMMPS' order is xx yy zz xy xz yz
        if self.with_stress and frame.stress is not None:
            target, to_fit = stress_in_fit_frame(frame.stress, placed.rotation,
                                                 self.settings.calculator.stress_components)
            ref_stress = to_fit @ ref_stress
            stress = target - ref_stress
            dbde = np.einsum("uv,nvd->nud", to_fit, self.strain_derivatives(entry, placed))
        return ConfigData(entry.index, frame.group, entry.test, entry.eweight, entry.fweight, elements, b,
                          pair_i.astype(np.int32), pair_j.astype(np.int32), np.ascontiguousarray(dgrad),
                          frame.energy - ref_energy, forces - ref_forces, ref_energy, ref_forces,
                          placed.rotation, entry.vweight, volume, stress, ref_stress, dbde)

    def strain_derivatives(self, entry: Entry, placed, step: float = 1e-5) -> np.ndarray:
        """∂B_i/∂h_v (N, 6, ndesc) by central differences under F = I + h·e_a e_bᵀ (see the module text)."""
        from .data.frame import Frame

        bs = self.settings.bispectrum
        frame = entry.frame
        out = np.empty((frame.natoms, 6, bs.ncoeff))
        for v, (a, b) in enumerate(zip(*VOIGT)):
            parts = []
            for h in (step, -step):
                deform = np.eye(3)
                deform[a, b] += h
                strained = Frame(frame.symbols, placed.positions @ deform.T, (deform @ placed.cell).T,
                                 group=frame.group, source=frame.source)
                self.snap.setup(Entry(strained, entry.test, entry.eweight, entry.fweight, entry.vweight,
                                      entry.index))
                self.snap.session.commands([f"compute sna all sna/atom {bs.compute_snap_args()}", "run 0"])
                parts.append(self.snap.session.compute_peratom_array("sna"))
            out[:, v] = (parts[0] - parts[1]) / (2 * step)
        return out


def compute_peratom(settings: Settings, entries: list[Entry], comm, progress) -> list[ConfigData]:
    """This rank's per-atom data."""
    from .parallel import map_entries

    return map_entries(lambda: PerAtomCalculator(settings), lambda calc, entry: calc.compute(entry), entries,
                       comm, progress, "per-atom descriptors", size=lambda out: sum(c.nbytes for c in out))
