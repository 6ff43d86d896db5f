"""Liquid structure at T and zero pressure: density, g(r), bond-angle distribution, first peak, coordination."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.md_runs import md_steps, read_last_block
from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
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


def run_liquid(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path, quick: bool) -> LiquidResult:
    """Melt, equilibrate at system.liquid_T and P = 0, then average density, g(r) and ADF."""
    mode = system.mode(quick)
    steps = md_steps(mode.timestep_ps, mode.liquid_melt_ps, mode.liquid_equil_ps, mode.liquid_prod_ps)
    nx, ny, nz = mode.md_supercell
    runner.run("liquid", "liquid", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=system.liquid_T,
               dt=mode.timestep_ps, melt=steps[0], equil=steps[1], prod=steps[2] - steps[2] % 20)
    rdf = read_last_block(out / "rdf.txt", header_words=2)  # fix ave/time ... mode vector
    adf = read_last_block(out / "adf.txt", header_words=2)
    r, g, coord = rdf[:, 1], rdf[:, 2], rdf[:, 3]
    peak, minimum, cn = first_peak_and_coordination(r, g, coord)
    kv = read_keyvals(out / "liquid.txt")
    values = {"liquid_temperature_K": kv["temperature_K"], "liquid_density_g_cm3": kv["density_g_cm3"],
              "rdf_first_peak_A": peak, "rdf_first_minimum_A": minimum, "coordination_number": cn,
              "adf_peak_deg": float(adf[np.argmax(adf[:, 2]), 1])}
    return LiquidResult(values=values, r=r, g=g, theta=adf[:, 1], adf=adf[:, 2])
