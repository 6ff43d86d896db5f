"""Liquid structure at T and zero pressure: density, g(r), bond-angle distribution, first peak, coordination.

Values are averages over the whole production run; each has a standard error `<key>_sd` from LIQUID_BLOCKS equal
blocks of that run (the same quantity computed on each block's averages; statistics.block_errors).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.md_runs import md_steps, read_blocks, read_last_block
from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
from fitsnap_ext.properties.statistics import block_errors
from fitsnap_ext.properties.systems import SystemPreset


def first_peak_and_coordination(r: np.ndarray, g: np.ndarray, coord: np.ndarray) -> tuple[float, float, float]:
    """Position of g(r)'s first maximum (parabola-refined), its first minimum after it, and the running
    coordination number at that minimum. The first local minimum is searched on g(r) smoothed over ±0.1 Å, as the first
    minimum of a liquid is shallow and a short run's noise would otherwise pick a spurious dip."""
    i = int(np.argmax(g))
    if 0 < i < len(g) - 1:
        a, b, c = g[i - 1], g[i], g[i + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        peak = r[i] + shift * (r[1] - r[0])
    else:
        peak = r[i]
    half = max(1, int(round(0.1 / (r[1] - r[0]))))
    smooth = np.convolve(g, np.ones(2 * half + 1) / (2 * half + 1), mode="same")
    j = int(np.argmax(smooth))
    while j + 1 < len(g) - half and smooth[j + 1] <= smooth[j]:
        j += 1
    return float(peak), float(r[j]), float(coord[j])


@dataclass
class LiquidResult:
    """Averages of the production run and the curves for the plot."""

    values: dict
    r: np.ndarray
    g: np.ndarray
    theta: np.ndarray
    adf: np.ndarray


ADF_BOND_CUTOFF = 3.1  # Å: both legs of a bond angle (in.liquid's rbond); Si's first g(r) minimum is ≈ 3.0–3.2 Å
SMALL_ANGLE_DEG = 80.0  # liquid Si's ADF has two peaks of similar height (≈ 57° and ≈ 100°): the weight below
                        # 80° is a robust scalar for the balance between them, its argmax is not
LIQUID_BLOCKS = 5       # production blocks for the standard errors (in.liquid's nblocks)
LIQUID_EVERY = 20       # steps between samples (in.liquid's every)


def small_angle_fraction(theta: np.ndarray, adf: np.ndarray) -> float:
    """Fraction of bond angles below SMALL_ANGLE_DEG of a unit-area ADF on uniform bins."""
    return float(adf[theta < SMALL_ANGLE_DEG].sum() * (theta[1] - theta[0]))


def adf_numpy(frames, rcut: float = ADF_BOND_CUTOFF, nbins: int = 90):
    """Bond-angle distribution of ASE frames as LAMMPS' `compute adf nbins 1 1 1 0 rcut 0 rcut` gives it:
    (θ bin centres in degrees, density normalised to unit area in degrees, cumulative angles per atom).
    Minimum image: every cell width must exceed 2·rcut."""
    edges = np.linspace(0.0, 180.0, nbins + 1)
    hist = np.zeros(nbins)
    centres = 0
    for a in frames:
        frac = a.get_scaled_positions(wrap=True)
        d = frac[None, :, :] - frac[:, None, :]
        d -= np.round(d)
        vec = d @ a.cell.array                       # vec[i, j] = r_j − r_i
        r = np.linalg.norm(vec, axis=-1)
        for i in range(len(a)):
            nb = np.flatnonzero((r[i] < rcut) & (r[i] > 0.0))
            u = vec[i, nb] / r[i, nb, None]
            cos = np.clip(u @ u.T, -1.0, 1.0)[np.triu_indices(len(nb), 1)]
            hist += np.histogram(np.degrees(np.arccos(cos)), bins=edges)[0]
        centres += len(a)
    theta = 0.5 * (edges[1:] + edges[:-1])
    return theta, hist / (max(hist.sum(), 1.0) * (edges[1] - edges[0])), np.cumsum(hist) / max(centres, 1)


def structure_values(rdf: np.ndarray, adf: np.ndarray) -> dict:
    """The g(r) and ADF scalars of one average: rows of `fix ave/time ... mode vector` (bin r g coord / bin θ adf)."""
    peak, minimum, cn = first_peak_and_coordination(rdf[:, 1], rdf[:, 2], rdf[:, 3])
    return {"rdf_first_peak_A": peak, "rdf_first_minimum_A": minimum, "coordination_number": cn,
            "adf_peak_deg": float(adf[np.argmax(adf[:, 2]), 1]),
            "adf_small_angle_fraction": small_angle_fraction(adf[:, 1], adf[:, 2])}


def block_values(out: Path) -> list[dict]:
    """Per production block: density, temperature and the g(r)/ADF scalars, from in.liquid's *_blocks.txt."""
    thermo = np.loadtxt(out / "liquid_blocks.txt", comments="#", ndmin=2)     # step density temperature
    rdfs, adfs = read_blocks(out / "rdf_blocks.txt", 2), read_blocks(out / "adf_blocks.txt", 2)
    return [{"liquid_density_g_cm3": float(row[1]), "liquid_temperature_K": float(row[2]),
             **structure_values(rdf, adf)} for row, rdf, adf in zip(thermo, rdfs, adfs)]


def run_liquid(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path, quick: bool) -> LiquidResult:
    """Melt, equilibrate at system.liquid_T and P = 0, then average density, g(r) and ADF over the production run;
    standard errors from LIQUID_BLOCKS blocks of it."""
    mode = system.mode(quick)
    steps = md_steps(mode.timestep_ps, mode.liquid_melt_ps, mode.liquid_equil_ps, mode.liquid_prod_ps)
    nx, ny, nz = mode.md_supercell
    multiple = LIQUID_EVERY * LIQUID_BLOCKS
    runner.run("liquid", "liquid", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=system.liquid_T,
               dt=mode.timestep_ps, melt=steps[0], equil=steps[1], prod=max(steps[2] - steps[2] % multiple, multiple),
               rbond=ADF_BOND_CUTOFF, nblocks=LIQUID_BLOCKS)
    rdf = read_last_block(out / "rdf.txt", header_words=2)  # fix ave/time ... mode vector
    adf = read_last_block(out / "adf.txt", header_words=2)
    kv = read_keyvals(out / "liquid.txt")
    values = {"liquid_temperature_K": kv["temperature_K"], "liquid_density_g_cm3": kv["density_g_cm3"],
              **structure_values(rdf, adf)}
    errors = block_errors(block_values(out), list(values))
    values = {k: v for key, value in values.items() for k, v in ((key, value), (f"{key}_sd", errors[f"{key}_sd"]))}
    return LiquidResult(values=values, r=rdf[:, 1], g=rdf[:, 2], theta=adf[:, 1], adf=adf[:, 2])
