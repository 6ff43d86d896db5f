"""Lattice thermal conductivity by the direct (Müller-Plathe) method (in.thermal), for any pair style.

LAMMPS' Green–Kubo heat flux for many-body potentials needs centroid per-atom virials, which sw, tersoff,
snap and mliap do not provide; the direct method needs only energies and forces.

Each of the mode's `thermal_runs` independent runs (velocity seeds) gives κ from its whole production run (its
average profile and total swapped energy); κ is their mean. Its standard error `thermal_conductivity_W_mK_sd` (and
`thermal_gradient_K_A_sd`) is std(ddof=1)/√runs over the runs, as for diffusion; a single run falls back on
THERMAL_BLOCKS equal blocks of it, κ recomputed on each block's average profile and swapped energy — pieces of one
run, which leave out the run-to-run spread where blocks are shorter than the profile's relaxation (quick mode).
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


THERMAL_BLOCKS = 5      # production blocks for a single run's standard errors (in.thermal's nblocks)
THERMAL_SEED = 1729     # velocity seed of the first run (in.thermal's default); run k adds 17 k
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


def block_values(out: Path, tag: str, area_A2: float, lz_A: float, block_ps: float) -> list[dict]:
    """Per production block of run `tag`: |dT/dz| of its average profile and κ from it and the energy swapped in
    it (in.thermal's profile_blocks_<tag>.txt and thermal_blocks_<tag>.txt)."""
    profiles = read_blocks(out / f"profile_blocks_{tag}.txt", header_words=3)          # chunk z count T
    eswap = np.loadtxt(out / f"thermal_blocks_{tag}.txt", comments="#", ndmin=2)        # step eswap, from step 0
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
    """κ (W/mK) along z of the MD box at system.thermal_T: the mean over the mode's independent runs of κ from
    each run's swapped energy and T gradient; standard errors over the runs (one run: over its blocks)."""
    mode = system.mode(quick)
    nx, ny, nz = mode.thermal_supercell
    equil, steady, prod = md_steps(mode.timestep_ps, mode.thermal_equil_ps, mode.thermal_steady_ps,
                                   mode.thermal_prod_ps)
    prod = production_steps(prod, mode.thermal_swap_steps)
    runs = []
    for k in range(mode.thermal_runs):
        tag = f"run{k + 1}"
        runner.run("thermal", f"thermal_{tag}", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=system.thermal_T,
                   dt=mode.timestep_ps, equil=equil, steady=steady, prod=prod, swap=mode.thermal_swap_steps,
                   nblocks=THERMAL_BLOCKS, seed=THERMAL_SEED + 17 * k, tag=tag)
        kv = read_keyvals(out / f"thermal_{tag}.txt")
        profile = read_last_block(out / f"profile_{tag}.txt", header_words=3)  # fix ave/chunk: chunk z count T
        grad = gradient_from_profile(profile[:, 1], profile[:, 3], kv["lz_A"])
        runs.append({**kv, "tag": tag, "thermal_gradient_K_A": grad, "thermal_conductivity_W_mK":
                     kappa_W_mK(kv["energy_swapped_eV"], kv["area_A2"], kv["time_ps"], grad)})
    keys = ("thermal_conductivity_W_mK", "thermal_gradient_K_A")
    r = runs[0]
    pieces = runs if len(runs) > 1 else block_values(out, r["tag"], r["area_A2"], r["lz_A"],
                                                     r["time_ps"] / THERMAL_BLOCKS)
    errors = block_errors(pieces, keys)  # independent runs, or one run's blocks
    return {"thermal_conductivity_W_mK": float(np.mean([r[keys[0]] for r in runs])),
            "thermal_temperature_K": system.thermal_T, "thermal_box_length_A": runs[0]["lz_A"],
            "thermal_gradient_K_A": float(np.mean([r[keys[1]] for r in runs])), **errors,
            "thermal_conductivity_runs_W_mK": [r[keys[0]] for r in runs],
            "thermal_method": "direct (Muller-Plathe), heat flow along z"}
