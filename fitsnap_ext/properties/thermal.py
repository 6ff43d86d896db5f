"""Lattice thermal conductivity by the direct (Müller-Plathe) method (in.thermal), for any pair style.

LAMMPS' Green–Kubo heat flux for many-body potentials needs centroid per-atom virials, which sw, tersoff,
snap and mliap do not provide; the direct method needs only energies and forces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fitsnap_ext.properties.md_runs import md_steps, read_last_block
from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import EV_PER_A2_PS_TO_W_PER_M2


def gradient_from_profile(z: np.ndarray, temp: np.ndarray, lz: float) -> float:
    """|dT/dz| (K/Å) averaged over the two halves between the cold (z≈0) and hot (z≈Lz/2) slabs,
    leaving out the two slabs next to each exchange slab where the profile is not linear."""
    n = len(z)
    half = n // 2
    first = slice(2, half - 1)          # cold -> hot
    second = slice(half + 2, n - 1)     # hot -> cold
    s1 = np.polyfit(z[first] * lz, temp[first], 1)[0]
    s2 = np.polyfit(z[second] * lz, temp[second], 1)[0]
    return float(0.5 * (abs(s1) + abs(s2)))


def run_thermal(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path, quick: bool) -> dict:
    """κ (W/mK) along z of the MD box at system.thermal_T, from the swapped energy and the T gradient."""
    mode = system.mode(quick)
    nx, ny, nz = mode.thermal_supercell
    equil, steady, prod = md_steps(mode.timestep_ps, mode.thermal_equil_ps, mode.thermal_steady_ps,
                                   mode.thermal_prod_ps)
    prod -= prod % 10
    runner.run("thermal", "thermal", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=system.thermal_T,
               dt=mode.timestep_ps, equil=equil, steady=steady, prod=prod, swap=mode.thermal_swap_steps)
    kv = read_keyvals(out / "thermal.txt")
    profile = read_last_block(out / "profile.txt", header_words=3)  # fix ave/chunk: chunk z count T
    grad = gradient_from_profile(profile[:, 1], profile[:, 3], kv["lz_A"])
    flux = kv["energy_swapped_eV"] / (2.0 * kv["area_A2"] * kv["time_ps"]) * EV_PER_A2_PS_TO_W_PER_M2
    kappa = flux / (grad * 1e10)
    return {"thermal_conductivity_W_mK": float(kappa), "thermal_temperature_K": system.thermal_T,
            "thermal_box_length_A": kv["lz_A"], "thermal_gradient_K_A": grad,
            "thermal_method": "direct (Muller-Plathe), heat flow along z"}
