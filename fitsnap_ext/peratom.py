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

from .settings import Settings
from .data.dataset import Entry
from .descriptors import stress_in_fit_frame
from .errors import DataError, FitsnapError, LammpsError
from .units import LAMMPS_PRESSURE_TO_VOIGT, VOIGT


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


DENSE_LIMIT_BYTES = 2 ** 28  # largest dense `compute snap ... dgradflag 1` array (3N² × (3 + ndesc) doubles)


def periodic_neighbours(positions: np.ndarray, cell: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR (start, j) of the atoms j ≠ i with an image closer than `radius` to atom i (cell columns are the
    periodic vectors; any number of images)."""
    from scipy.spatial import cKDTree

    n = len(positions)
    inv = np.linalg.inv(cell)
    frac = positions @ inv.T
    width = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[:, [1, 2, 0]].T, cell[:, [2, 0, 1]].T), axis=1)
    reach = radius / width
    span = [np.arange(-int(np.ceil(r)), int(np.ceil(r)) + 1) for r in reach]
    shifts = np.stack(np.meshgrid(*span, indexing="ij"), -1).reshape(-1, 3)
    images, owner = [], []
    for shift in shifts:
        f = frac + shift
        near = np.all((f > -reach) & (f < 1 + reach), axis=1)
        images.append(f[near] @ cell.T)
        owner.append(np.nonzero(near)[0])
    owner = np.concatenate(owner)
    pairs = cKDTree(positions).sparse_distance_matrix(cKDTree(np.concatenate(images)), radius,
                                                      output_type="ndarray")
    i, j = pairs["i"].astype(np.int64), owner[pairs["j"]]
    key = np.unique(i[i != j] * n + j[i != j])
    return np.searchsorted(key // n, np.arange(n + 1)), key % n


def greedy_colours(start: np.ndarray, nbr: np.ndarray) -> np.ndarray:
    """A colour per atom such that no two neighbours (in the CSR graph) share one (first fit, in atom order)."""
    colours = np.full(len(start) - 1, -1, dtype=np.int64)
    for a in range(len(colours)):
        used = np.unique(colours[nbr[start[a]:start[a + 1]]])
        used = used[used >= 0]
        gaps = np.nonzero(used != np.arange(len(used)))[0]
        colours[a] = gaps[0] if len(gaps) else len(used)
    return colours


class PerAtomCalculator:
    """Turns entries into `ConfigData` with one reused LAMMPS instance (this rank alone).

    Frames whose dense `compute snap ... dgradflag 1` array would exceed `dense_limit_bytes` are done in
    bounded memory by colours (see `_coloured`); the result is the same to round-off.
    """

    def __init__(self, settings: Settings, session=None, dense_limit_bytes: int = DENSE_LIMIT_BYTES):
        from .descriptors import SnapCalculator

        check_network_settings(settings)
        self.settings = settings
        self.snap = SnapCalculator(settings, session)
        self.with_stress = settings.calculator.stress
        self.dense_limit_bytes = dense_limit_bytes

    def close(self):
        self.snap.close()

    def compute(self, entry: Entry) -> ConfigData:
        bs = self.settings.bispectrum
        frame = entry.frame
        n, nd = frame.natoms, bs.ncoeff
        try:
            placed = self.snap.setup(entry)
            if 24.0 * n * n * (3 + nd) <= self.dense_limit_bytes:
                b, ref_forces, ref_energy, ref_pressure, pair_i, pair_j, dgrad = self._dense(n, nd)
            else:
                b, ref_forces, ref_energy, ref_pressure, pair_i, pair_j, dgrad = self._coloured(placed, n, nd)
        except LammpsError as exc:
            raise LammpsError(f"{frame.label()}: {exc}") from None
        if not (np.all(np.isfinite(b)) and np.all(np.isfinite(dgrad)) and np.all(np.isfinite(ref_forces))):
            raise DataError("compute snap gave non-finite values (atoms on top of each other?)", **frame.where())
        type_index = {t: k for k, t in enumerate(bs.types)}
        elements = np.array([type_index[s] for s in frame.symbols], dtype=np.int64)
        forces = (frame.forces @ placed.rotation.T) if frame.forces is not None else np.zeros((n, 3))
        volume = float(np.prod(np.diag(placed.cell)))
        stress = dbde = None
        ref_stress = ref_pressure[LAMMPS_PRESSURE_TO_VOIGT]
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

    def _dense(self, n: int, nd: int):
        """One `compute snap ... bikflag 1 dgradflag 1` (3N² rows): B, reference F/E/P, the nonzero pairs."""
        session = self.snap.session
        session.commands([f"compute snap all snap {self.settings.bispectrum.compute_snap_args()} bikflag 1 "
                          "dgradflag 1", "compute refp all pressure NULL virial", "run 0"])
        arr = session.compute_array("snap")
        ref_pressure = session.compute_vector("refp")
        if arr.shape[1] != 3 + nd or (arr.shape[0] - n - 1) % 3 or arr.shape[0] < n + 1:
            raise LammpsError(f"compute snap (dgradflag 1) returned shape {arr.shape}; expected "
                              f"(N + 3P + 1, {3 + nd}) with N = {n}")
        grad = arr[n:-1].reshape(-1, 3, arr.shape[1])
        idx = grad[:, :, :3]
        if not (np.array_equal(idx[:, :, 2], np.tile([0.0, 1.0, 2.0], (len(grad), 1)))
                and np.all(idx[:, :, 0] == idx[:, :1, 0]) and np.all(idx[:, :, 1] == idx[:, :1, 1])):
            raise LammpsError("compute snap dgradflag rows are not (i, j, 0/1/2) triplets as expected")
        keep = np.any(grad[:, :, 3:] != 0.0, axis=(1, 2))  # LAMMPS lists every (i, j); only neighbours are nonzero
        pair_i = idx[keep, 0, 0].astype(np.int64)
        pair_j = idx[keep, 0, 1].astype(np.int64)
        dgrad = grad[keep, :, 3:].copy()
        return arr[:n, 3:].copy(), arr[:n, :3].copy(), float(arr[-1, 0]), ref_pressure, pair_i, pair_j, dgrad

    def _coloured(self, placed, n: int, nd: int):
        """The same as `_dense` in O(N · ndesc) memory. `compute sna/atom` gives B; `compute snad/atom` on a group
        of owners no two of which share a neighbour (one colour of the graph "i and i' are neighbours or have a
        common neighbour") gives, at each atom j, dB_i/dr_j of the single owner i whose neighbourhood holds j.
        One `run 0` per colour (about the number of atoms within two cutoffs, whatever N), with the reference
        potential replaced by `pair_style zero` once its energy, forces and pressure are read."""
        from scipy import sparse

        bs = self.settings.bispectrum
        session = self.snap.session
        args = bs.compute_snap_args()
        session.commands([f"compute sna all sna/atom {args}", "compute refp all pressure NULL virial",
                          "compute reff all property/atom fx fy fz", "run 0"])
        b = session.compute_peratom_array("sna")
        ref_forces = session.compute_peratom_array("reff")
        ref_energy = float(session.lmp.extract_compute("thermo_pe", 0, 0))
        ref_pressure = session.compute_vector("refp")
        ids = session.lmp.numpy.extract_atom("id")[:n]
        element = session.lmp.numpy.extract_atom("type")[:n][np.argsort(ids)].astype(np.int64) - 1
        cut = bs.rcutfac * 2.0 * max(bs.radelem)
        start, nbr = periodic_neighbours(placed.positions, placed.cell, cut * (1 + 1e-9) + 1e-9)
        counts = np.diff(start)
        near = sparse.csr_matrix((np.ones(len(nbr)), nbr, start), shape=(n, n)) + sparse.identity(n, format="csr")
        two_hop = (near @ near).tocsr()
        colours = greedy_colours(two_hop.indptr, two_hop.indices)
        del near, two_hop
        session.commands(["group colour empty", f"compute snad colour snad/atom {args}",
                          f"pair_style zero {cut + 1e-3!r}", "pair_coeff * *"])
        parts = []
        for k in range(int(colours.max()) + 1):
            members = np.nonzero(colours == k)[0]
            session.commands(["group colour clear", "group colour id " + " ".join(str(i + 1) for i in members),
                              "run 0 post no"])
            d = session.compute_peratom_array("snad").reshape(n, -1, 3, nd)
            owner = np.repeat(members, counts[members] + 1)
            atom = np.concatenate([np.concatenate([[i], nbr[start[i]:start[i + 1]]]) for i in members])
            block = d[atom, element[owner]]
            keep = np.any(block != 0.0, axis=(1, 2))
            parts.append((owner[keep], atom[keep], block[keep]))
        pair_i = np.concatenate([p[0] for p in parts])
        pair_j = np.concatenate([p[1] for p in parts])
        order = np.lexsort((pair_i, pair_j))  # the dense path's order: by j, then i
        dgrad = np.concatenate([p[2] for p in parts])[order]
        return b, ref_forces, ref_energy, ref_pressure, pair_i[order], pair_j[order], dgrad

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
