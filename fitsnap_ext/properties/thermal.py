"""Lattice thermal conductivity by the direct (Müller-Plathe) method (in.thermal), for any pair style.

LAMMPS' Green–Kubo heat flux for many-body potentials needs centroid per-atom virials, which sw, tersoff,
snap and mliap do not provide; the direct method needs only energies and forces.

κ is computed from the whole production run (its average profile and total swapped energy); its standard error
`thermal_conductivity_W_mK_sd` (and `thermal_gradient_K_A_sd`) comes from THERMAL_BLOCKS equal blocks of that run,
κ recomputed on each block's average profile and swapped energy (statistics.block_errors).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.md_runs import md_steps, read_blocks, read_last_block
from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
from fitsnap_ext.properties.statistics import block_errors
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import EV_PER_A2_PS_TO_W_PER_M2


THERMAL_BLOCKS = 5      # production blocks for the standard errors (in.thermal's nblocks)
PROFILE_EVERY = 10      # in.thermal's fix ave/chunk Nevery (steps)


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


def kappa_W_mK(energy_eV: float, area_A2: float, time_ps: float, gradient_K_A: float) -> float:
    """κ = flux / |dT/dz|, flux = E_swapped / (2 A t) (heat flows both ways in the periodic box)."""
    flux = energy_eV / (2.0 * area_A2 * time_ps) * EV_PER_A2_PS_TO_W_PER_M2
    return float(flux / (gradient_K_A * 1e10))


def production_steps(steps: int, swap_steps: int, nblocks: int = THERMAL_BLOCKS) -> int:
    """`steps` rounded down to nblocks equal blocks whose length is a multiple of both the profile sampling
    interval and the swap interval (fix ave/time reads f_swap at the block ends); at least one such block each."""
    multiple = nblocks * math.lcm(PROFILE_EVERY, swap_steps)
    return max(steps - steps % multiple, multiple)


def block_values(out: Path, area_A2: float, lz_A: float, block_ps: float) -> list[dict]:
    """Per production block: |dT/dz| of its average profile and κ from it and the energy swapped in it
    (in.thermal's profile_blocks.txt and thermal_blocks.txt)."""
    profiles = read_blocks(out / "profile_blocks.txt", header_words=3)          # chunk z count T
    eswap = np.loadtxt(out / "thermal_blocks.txt", comments="#", ndmin=2)        # step eswap, from step 0
    energies = np.diff(eswap[:, 1])
    if len(energies) != len(profiles):
        raise ValueError(f"in.thermal wrote {len(profiles)} block profiles but {len(energies)} block energies")
    values = []
    for profile, energy in zip(profiles, energies):
        grad = gradient_from_profile(profile[:, 1], profile[:, 3], lz_A)
        values.append({"thermal_gradient_K_A": grad,
                       "thermal_conductivity_W_mK": kappa_W_mK(energy, area_A2, block_ps, grad)})
    return values


def run_thermal(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path, quick: bool) -> dict:
    """κ (W/mK) along z of the MD box at system.thermal_T, from the swapped energy and the T gradient of the
    whole production run; standard errors from THERMAL_BLOCKS blocks of it."""
    mode = system.mode(quick)
    nx, ny, nz = mode.thermal_supercell
    equil, steady, prod = md_steps(mode.timestep_ps, mode.thermal_equil_ps, mode.thermal_steady_ps,
                                   mode.thermal_prod_ps)
    prod = production_steps(prod, mode.thermal_swap_steps)
    runner.run("thermal", "thermal", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=system.thermal_T,
               dt=mode.timestep_ps, equil=equil, steady=steady, prod=prod, swap=mode.thermal_swap_steps,
               nblocks=THERMAL_BLOCKS)
    kv = read_keyvals(out / "thermal.txt")
    profile = read_last_block(out / "profile.txt", header_words=3)  # fix ave/chunk: chunk z count T
    grad = gradient_from_profile(profile[:, 1], profile[:, 3], kv["lz_A"])
    kappa = kappa_W_mK(kv["energy_swapped_eV"], kv["area_A2"], kv["time_ps"], grad)
    blocks = block_values(out, kv["area_A2"], kv["lz_A"], kv["time_ps"] / THERMAL_BLOCKS)
    return {"thermal_conductivity_W_mK": kappa, "thermal_temperature_K": system.thermal_T,
            "thermal_box_length_A": kv["lz_A"], "thermal_gradient_K_A": grad,
            **block_errors(blocks, ("thermal_conductivity_W_mK", "thermal_gradient_K_A")),
            "thermal_method": "direct (Muller-Plathe), heat flow along z"}
