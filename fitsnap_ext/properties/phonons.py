"""Harmonic phonons by finite displacements: Γ frequencies, dispersion along the standard path, DOS.

Route 1 (main): in.phonon writes supercell forces for ±h displacements of each unit-cell atom; the force
constants are Fourier-transformed here with phonopy's rule for periodic images (an atom pair at the
supercell boundary is shared equally among its equidistant images). Route 2 (check): in.dynmat calls LAMMPS'
`dynamical_matrix` on the unit cell, giving the Γ frequencies independently.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.runner import DeckRunner, read_data
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import EV_A2_AMU_TO_THZ2


def eigen_thz(dynmat: np.ndarray) -> np.ndarray:
    """Frequencies (THz, imaginary modes as negative numbers) of a mass-weighted matrix in eV/(Å² amu)."""
    w2 = np.linalg.eigvalsh(0.5 * (dynmat + dynmat.conj().T)) * EV_A2_AMU_TO_THZ2
    return np.sign(w2) * np.sqrt(np.abs(w2))


@dataclass
class ForceConstants:
    """Force constants of a unit cell from a supercell: phi[s, a, j, b] (eV/Å²) for unit atom s, supercell atom j."""

    unit_cell: np.ndarray       # (3, 3) rows = vectors, Å
    masses: np.ndarray          # (nunit,) amu
    phi: np.ndarray             # (nunit, 3, nsuper, 3)
    owner: np.ndarray           # (nsuper,) index of the unit-cell atom each supercell atom is a copy of
    pair: np.ndarray            # (nimages, 2) (s, j) of each periodic image of a unit-atom/supercell-atom pair
    lattice_n: np.ndarray       # (nimages, 3) lattice vector of that image (unit-cell coordinates)
    weight: np.ndarray          # (nimages,) 1 / number of equidistant images of the pair

    def dynamical_matrix(self, kfrac: np.ndarray) -> np.ndarray:
        """D(k) (eV/(Å² amu)) at k in fractional reciprocal coordinates of the unit cell."""
        nunit, nsuper = self.phi.shape[0], self.phi.shape[2]
        phase = np.zeros((nunit, nsuper), dtype=complex)
        np.add.at(phase, (self.pair[:, 0], self.pair[:, 1]),
                  self.weight * np.exp(2j * np.pi * self.lattice_n @ kfrac))
        onehot = np.eye(nunit)[self.owner]                       # (nsuper, nunit)
        d = np.einsum("sajb,sj,jt->satb", self.phi, phase, onehot).reshape(3 * nunit, 3 * nunit)
        m = np.repeat(self.masses, 3)
        return d / np.sqrt(np.outer(m, m))

    def frequencies(self, kpts: np.ndarray) -> np.ndarray:
        """(nk, 3·nunit) frequencies in THz."""
        return np.array([eigen_thz(self.dynamical_matrix(k)) for k in np.atleast_2d(kpts)])


def _read_dump(path: Path) -> np.ndarray:
    """Rows of a LAMMPS custom dump (single snapshot), after the ITEM: ATOMS line."""
    lines = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    return np.array([[float(x) for x in line.split()] for line in lines[start:] if line.strip()])


def build_force_constants(out: Path, unit, supercell: tuple[int, int, int], h: float,
                          masses: np.ndarray) -> ForceConstants:
    """Force constants from in.phonon's dumps, with the acoustic sum rule imposed on the self terms."""
    ref = _read_dump(out / "phonon_ref.txt")
    nunit, nsuper = len(unit), len(ref)
    cell = unit.cell.array
    super_cell = cell * np.array(supercell)[:, None]
    pos = ref[:, 2:5]
    unit_pos = pos[:nunit]
    inv = np.linalg.inv(cell)
    owner = np.empty(nsuper, dtype=int)
    for j in range(nsuper):
        frac = (pos[j] - unit_pos) @ inv
        owner[j] = int(np.argmin(np.abs(frac - np.round(frac)).sum(axis=1)))
    phi = np.zeros((nunit, 3, nsuper, 3))
    for s in range(nunit):
        for a in range(3):
            plus = _read_dump(out / f"phonon_{s + 1}_{a + 1}_1.txt")[:, 1:4]
            minus = _read_dump(out / f"phonon_{s + 1}_{a + 1}_-1.txt")[:, 1:4]
            phi[s, a] = -(plus - minus) / (2 * h)
        phi[s, :, s, :] -= phi[s].sum(axis=1)     # acoustic sum rule: Σ_j Φ(s, j) = 0
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) @ super_cell
    pairs, lattice, weights = [], [], []
    for s in range(nunit):
        for j in range(nsuper):
            vectors = pos[j] - pos[s] + shifts
            dist = np.linalg.norm(vectors, axis=1)
            close = dist < dist.min() + 1e-4
            lattice.append(np.round((vectors[close] - (unit_pos[owner[j]] - unit_pos[s])) @ inv))
            pairs += [(s, j)] * int(close.sum())
            weights += [1.0 / close.sum()] * int(close.sum())
    return ForceConstants(unit_cell=cell, masses=masses, phi=phi, owner=owner, pair=np.array(pairs),
                          lattice_n=np.concatenate(lattice), weight=np.array(weights))


@dataclass
class BandAxis:
    """x axis of a band path cut at its breaks: plot each segment of `x` on its own; one tick per special point,
    "K|U" where the path jumps from K to U (both ends of a break sit at the same x)."""

    x: np.ndarray
    segments: list[tuple[int, int]]     # [start, stop) indices of the continuous pieces of the path
    tick_x: np.ndarray
    tick_labels: list[str]


def band_axis(path) -> BandAxis:
    """Split an ASE BandPath (e.g. fcc "GXWKGLUWLK,UX") at its breaks, which ASE marks by a zero-length step
    in x; drawn as one line the bands would join K to U across the break."""
    x, special_x, labels = path.get_linear_kpoint_axis()
    cuts = [0, *(np.flatnonzero(np.diff(x) <= 1e-12) + 1), len(x)]
    tick_x, tick_labels = [], []
    for sx, label in zip(special_x, labels):
        label = "Γ" if label == "G" else label
        if tick_x and abs(sx - tick_x[-1]) <= 1e-12:
            tick_labels[-1] += "|" + label
        else:
            tick_x.append(float(sx))
            tick_labels.append(label)
    return BandAxis(x=x, segments=[(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])],
                    tick_x=np.array(tick_x), tick_labels=tick_labels)


@dataclass
class PhononResult:
    """Γ frequencies from both routes, dispersion along the standard path and a DOS (frequencies in THz)."""

    values: dict
    axis: BandAxis
    bands: np.ndarray           # (nk, 3·nunit) along axis.x
    dos_freq: np.ndarray
    dos: np.ndarray


def phonon_dos(fc: ForceConstants, mesh: int, width: float = 0.15, nbins: int = 400):
    """Γ-centred mesh DOS with Gaussian smearing (THz); normalised to 3·nunit modes."""
    grid = (np.arange(mesh) / mesh)
    kpts = np.array(np.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1).T
    freqs = fc.frequencies(kpts).ravel()
    f = np.linspace(min(0.0, freqs.min()) - 1.0, freqs.max() + 1.0, nbins)
    dos = np.exp(-0.5 * ((f[:, None] - freqs[None, :]) / width) ** 2).sum(axis=1)
    dos *= 3 * len(fc.masses) / (dos.sum() * (f[1] - f[0]))
    return f, dos


def run_phonons(runner: DeckRunner, system: SystemPreset, relaxed_data: Path, out: Path, quick: bool,
                h: float = 0.01) -> PhononResult:
    """Force constants in the preset's supercell, dispersion on ASE's standard band path, DOS, Γ check."""
    nx, ny, nz = system.mode(quick).phonon_supercell
    runner.run("phonon", "phonon", data=relaxed_data, out=out, nx=nx, ny=ny, nz=nz, h=h)
    runner.run("dynmat", "dynmat", data=relaxed_data, out=out, h=h)
    unit = read_data(relaxed_data, system.elements)
    masses = np.array([system.masses[system.elements.index(s)] for s in unit.get_chemical_symbols()])
    fc = build_force_constants(out, unit, (nx, ny, nz), h, masses)
    gamma = fc.frequencies(np.zeros(3))[0]
    dm = np.loadtxt(out / "dynmat_gamma.txt").reshape(3 * len(unit), 3 * len(unit))
    gamma_lammps = eigen_thz(dm)
    path = unit.cell.bandpath(npoints=60 if quick else 200)
    bands = fc.frequencies(path.kpts)
    dos_f, dos = phonon_dos(fc, mesh=8 if quick else 20)
    values = {
        "phonon_gamma_THz": [float(f) for f in gamma],
        "phonon_gamma_dynmat_THz": [float(f) for f in gamma_lammps],
        "phonon_gamma_max_THz": float(gamma.max()),
        "phonon_max_THz": float(bands.max()),
        "phonon_min_THz": float(bands.min()),
    }
    return PhononResult(values=values, axis=band_axis(path), bands=bands, dos_freq=dos_f, dos=dos)
