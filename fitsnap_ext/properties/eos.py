"""Equation of state: zero-pressure lattice parameters, energy per atom and Birch–Murnaghan bulk modulus."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.errors import FitsnapError, LammpsError, first_line
from fitsnap_ext.properties.runner import DeckRunner, lammps_cell, read_data, read_keyvals
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import EV_PER_A3_TO_GPA as EV_A3_TO_GPA  # the name study and the tests import from here


@dataclass
class EosResult:
    """Relaxed structure, E–V curve and Birch–Murnaghan parameters (V0 in Å³/atom, B in GPa)."""

    values: dict
    relaxed_data: Path
    volumes: np.ndarray        # Å³/atom
    energies: np.ndarray       # eV/atom
    bm: tuple[float, float, float, float] | None   # E0, V0, B0 (eV/Å³), B0'; None if the scan gave no fit
    scan_failure: str | None = None                # why the scan gave no fit (the crystal itself stands)


# a relaxed cell this many times larger (or smaller) than the crystal's is no longer that crystal; an energy this
# far below the starting crystal's (eV/atom) means atoms fused in a hole of the potential (in.eos stops there).
# A potential fitted to the crystal moves it by a few % and tens of meV/atom; an LGPS linear SNAP that "stood"
# with a +34 % volume and 0.79 eV/atom below the start had fused atoms
MAX_RELAX_VOLUME_RATIO = 1.5
MAX_ENERGY_DROP = 0.5
# a point of the E–V scan this far below the relaxed crystal (eV/atom) is another, lower state
LOWER_STATE_TOL = 1e-3
# what LAMMPS says when atoms pile onto each other during a relaxation
COLLAPSE_SIGNS = ("box size << cutoff", "Neighbor list overflow")


def birch_murnaghan(v, e0, v0, b0, bp):
    """Third-order Birch–Murnaghan energy (eV) at volume v; b0 in eV/Å³."""
    eta = (v0 / v) ** (2.0 / 3.0)
    return e0 + 9.0 * v0 * b0 / 16.0 * ((eta - 1.0) ** 3 * bp + (eta - 1.0) ** 2 * (6.0 - 4.0 * eta))


def fit_birch_murnaghan(volumes: np.ndarray, energies: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares BM fit started from a parabola; returns (E0, V0, B0 [eV/Å³], B0'), or says why not."""
    from scipy.optimize import curve_fit

    c2, c1, c0 = np.polyfit(volumes, energies, 2)
    if c2 <= 0 or np.ptp(energies) < 1e-6:  # a flat curve: atoms out of each other's reach
        raise FitsnapError("E-V curve has no minimum in the scanned range: the potential may be unstable")
    v0 = -c1 / (2 * c2)
    guess = (c0 - c1**2 / (4 * c2), v0, 2 * c2 * v0, 4.0)
    with np.errstate(invalid="ignore"):  # trial volumes of the optimiser may go negative
        params, _ = curve_fit(birch_murnaghan, volumes, energies, p0=guess, maxfev=20000)
    e0, v0, b0, bp = (float(p) for p in params)
    if not (b0 > 0 and 0 < bp < 20):  # a dented curve: numbers a fit returns, not a solid's
        raise FitsnapError(f"Birch–Murnaghan fit without physical meaning (B = {b0 * EV_A3_TO_GPA:.3g} GPa, "
                           f"B' = {bp:.3g}): the E-V curve is not a solid's")
    return e0, v0, b0, bp


@dataclass
class HexagonalSurface:
    """E(a, c) of a hexagonal crystal fitted on a grid of cells (clamped internal coordinates)."""
    a0: float                  # Å, zero-stress in-plane lattice parameter (the surface's minimum)
    c0: float                  # Å
    e0: float                  # eV/atom at the minimum
    v0: float                  # Å³/atom at the minimum
    bulk_modulus: float        # eV/Å³, V d²E/dV² for isotropic scaling of (a0, c0) (the engine's E–V scan)
    rms: float                 # eV/atom, residual of the fit
    coef: np.ndarray           # cubic polynomial in (a - a_mid, c - c_mid)
    centre: tuple[float, float]
    volume_factor: float       # V/atom = volume_factor · a² c
    offsets: dict              # zero group -> its energy constant against the first group's (eV/atom)

    def energy(self, a, c):
        return _cubic_terms(np.asarray(a, float) - self.centre[0], np.asarray(c, float) - self.centre[1]) @ self.coef


def _cubic_terms(x, y):
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y, x ** 3, x * x * y, x * y * y, y ** 3], axis=-1)


def fit_hexagonal_surface(a: np.ndarray, c: np.ndarray, volumes: np.ndarray, energies: np.ndarray,
                          zero_groups=None) -> HexagonalSurface:
    """Zero-stress a0, c0, E0 and bulk modulus of a hexagonal crystal from energies per atom of cells on an (a, c)
    grid: the minimum of a full cubic polynomial E(a, c) fitted by least squares. A Birch–Murnaghan fit of E
    against V alone would mix cells of other c/a into the curve. B is taken along isotropic scaling of (a0, c0),
    as the property engine's E–V scan strains the relaxed crystal.

    zero_groups: a label per cell whose energies may have their own zero (e.g. the DFT k-mesh, which a k-point
    spacing rounds differently across the grid: each mesh carries its own k-point error). One constant per label
    is fitted beside the surface; the surface's energies are those of the smallest label (`offsets` holds the
    others' constants)."""
    from scipy.optimize import minimize

    a, c, volumes, energies = (np.asarray(x, float) for x in (a, c, volumes, energies))
    if len({(round(x, 6), round(y, 6)) for x, y in zip(a, c)}) < 15:
        raise FitsnapError(f"an E(a, c) surface needs cells at >= 15 distinct (a, c); these have "
                           f"{len({(round(x, 6), round(y, 6)) for x, y in zip(a, c)})}")
    labels = sorted(set(zero_groups)) if zero_groups is not None else []
    centre = (float(a.mean()), float(c.mean()))
    steps = [np.array([z == label for z in zero_groups], float) for label in labels[1:]]
    terms = np.column_stack([_cubic_terms(a - centre[0], c - centre[1])] + steps)
    full, *_ = np.linalg.lstsq(terms, energies, rcond=None)
    coef, offsets = full[:10], {label: float(x) for label, x in zip(labels[1:], full[10:])}
    rms = float(np.sqrt(np.mean((terms @ full - energies) ** 2)))
    factor = float(np.median(volumes / (a * a * c)))
    surface = HexagonalSurface(0.0, 0.0, 0.0, 0.0, 0.0, rms, coef, centre, factor, offsets)
    best = int(np.argmin(energies))
    res = minimize(lambda x: float(surface.energy(x[0], x[1])), x0=[a[best], c[best]], method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-14, "maxiter": 10000})
    a0, c0 = (float(x) for x in res.x)
    if not (a.min() <= a0 <= a.max() and c.min() <= c0 <= c.max()):
        raise FitsnapError(f"the E(a, c) surface's minimum (a {a0:.4f}, c {c0:.4f} Å) lies outside the cells "
                           f"(a {a.min():.4f}-{a.max():.4f}, c {c.min():.4f}-{c.max():.4f} Å)")
    v0 = factor * a0 * a0 * c0
    h = 1e-4  # d²E/ds² along (a0 s, c0 s); V = v0 s³ gives B = V d²E/dV² = E''(1) / (9 v0) at the minimum
    e_s = [float(surface.energy(a0 * x, c0 * x)) for x in (1 - h, 1.0, 1 + h)]
    bulk = (e_s[0] - 2 * e_s[1] + e_s[2]) / h ** 2 / (9 * v0)
    return HexagonalSurface(a0, c0, e_s[1], v0, bulk, rms, coef, centre, factor, offsets)


def lattice_parameters(atoms, lattice: str) -> dict[str, float]:
    """Report the preset's lattice parameters (Å) from a relaxed cell."""
    lengths = atoms.cell.lengths()
    if lattice == "diamond":
        return {"lattice_constant_A": float((atoms.get_volume() / len(atoms) * 8.0) ** (1.0 / 3.0))}
    if lattice == "wurtzite":
        frac = atoms.get_scaled_positions()
        symbols = atoms.get_chemical_symbols()
        cation = frac[0]
        anions = [f for f, s in zip(frac, symbols) if s != symbols[0]
                  and np.allclose((f[:2] - cation[:2] + 0.5) % 1.0 - 0.5, 0.0, atol=1e-3)]
        # the anion sharing the cation's column sits u·c above or below it, depending on polarity
        shifts = [(a[2] - cation[2]) % 1.0 for a in anions]
        u = float(min(min(d, 1.0 - d) for d in shifts)) if anions else float("nan")
        return {"a_A": float(lengths[0]), "c_A": float(lengths[2]), "u": u}
    if lattice == "tetragonal":
        return {"a_A": float((lengths[0] + lengths[1]) / 2), "c_A": float(lengths[2])}
    return {"a_A": float(lengths[0]), "b_A": float(lengths[1]), "c_A": float(lengths[2])}


def unstable_relaxation(exc: LammpsError, start_volume: float) -> Exception:
    """The error to raise for LAMMPS failing in the zero-pressure relaxation: in.eos's guards (fix halt) and
    LAMMPS' own complaints about piled-up atoms say the potential is unstable; anything else is passed on."""
    halt = re.search(r"fix-id (\w+) met on step (\d+) with value (\S+)", str(exc))
    if halt:
        guard, step, value = halt.group(1), int(halt.group(2)), float(halt.group(3))
        what = {"flew_apart": f"flew apart: volume ×{value:.3g} of the start ({start_volume:.4g} Å³/atom)",
                "collapsed": f"collapsed: volume ×{value:.3g} of the start ({start_volume:.4g} Å³/atom)",
                "energy_hole": f"lost the crystal: its energy fell to {value:.4g} eV/atom, more than "
                               f"{MAX_ENERGY_DROP:g} eV/atom below the start (atoms fused, or separating)"}.get(guard)
        if what:
            return FitsnapError(f"the zero-pressure relaxation {what} after {step} steps: the potential is "
                                f"unstable for this crystal")
    if any(sign in str(exc) for sign in COLLAPSE_SIGNS):
        return FitsnapError(f"the zero-pressure relaxation collapsed (LAMMPS: {first_line(exc, 120)}): the "
                            f"potential is unstable for this crystal")
    return exc


def run_eos(runner: DeckRunner, system: SystemPreset, data: Path, out: Path, quick: bool) -> EosResult:
    """Relax at zero pressure, scan ±4 % in lattice scale, fit Birch–Murnaghan."""
    atoms = system.build()
    triclinic = np.abs(lammps_cell(atoms.cell.array)[0][[1, 2, 2], [0, 0, 1]]).max() > 1e-8
    relax = "iso" if system.lattice == "diamond" else ("tri" if triclinic else "aniso")
    relaxed_file, curve_file = out / "eos_relaxed.txt", out / "eos_curve.txt"
    if runner.rank == 0:  # the deck writes these as it goes: stale ones would hide where it stopped
        relaxed_file.unlink(missing_ok=True)
        curve_file.unlink(missing_ok=True)
    runner.comm.Barrier()
    scan_error = None
    try:
        runner.run("eos", "eos", data=data, out=out, relax=relax, smin=0.97, smax=1.03,
                   npts=7 if quick else 13, maxratio=MAX_RELAX_VOLUME_RATIO, maxdrop=MAX_ENERGY_DROP)
    except LammpsError as exc:
        if relaxed_file.is_file():  # the crystal relaxed; a volume of the scan broke (atoms lost, fused)
            scan_error = exc
        else:
            raise unstable_relaxation(exc, atoms.get_volume() / len(atoms)) from exc
    relaxed = read_keyvals(relaxed_file)
    natoms = int(relaxed["natoms"])
    rows = [line.split() for line in curve_file.read_text().splitlines() if line and not line.startswith("#")]
    curve = np.array(rows, dtype=float).reshape(-1, 3)
    volumes, energies = curve[:, 1] / natoms, curve[:, 2] / natoms
    cell = read_data(out / "relaxed.data", system.elements)
    values = lattice_parameters(cell, system.lattice)
    values.update({
        "energy_per_atom_eV": relaxed["energy"] / natoms,
        "volume_per_atom_A3": relaxed["volume"] / natoms,
        "residual_pressure_bar": relaxed["pressure"],
    })
    # if the scan fails the zero-pressure crystal still stands (the other properties start from it): no B
    bm, scan_failure = None, None
    if scan_error is not None:
        hole = re.search(r"fix-id energy_hole met on step \d+ with value (\S+)", str(scan_error))
        point = len(curve) + 1
        scan_failure = (f"E-V scan fell into a hole at its point {point}: {float(hole.group(1)):.4g} eV/atom, more "
                        f"than {MAX_ENERGY_DROP:g} eV/atom below the relaxed crystal" if hole
                        else f"E-V scan stopped at its point {point}: {first_line(scan_error, 200)}")
    elif energies.min() < values["energy_per_atom_eV"] - LOWER_STATE_TOL:
        # a strained cell relaxed into a state below the zero-pressure crystal: that crystal is not this
        # potential's minimum, and a Birch–Murnaghan fit through the two branches means nothing
        low = int(np.argmin(energies))
        scan_failure = (f"E-V scan found a state below the relaxed crystal at scale {curve[low, 0]:g}: "
                        f"{energies[low]:.5g} vs {values['energy_per_atom_eV']:.5g} eV/atom")
    else:
        try:
            bm = fit_birch_murnaghan(volumes, energies)
            values.update(bulk_modulus_GPa=bm[2] * EV_A3_TO_GPA, bulk_modulus_pressure_derivative=bm[3])
        except FitsnapError as exc:
            low = int(np.argmin(energies))
            scan_failure = f"{exc}; lowest point at scale {curve[low, 0]:g}: {energies[low]:.4g} eV/atom"
    return EosResult(values=values, relaxed_data=out / "relaxed.data", volumes=volumes, energies=energies, bm=bm,
                     scan_failure=scan_failure)
