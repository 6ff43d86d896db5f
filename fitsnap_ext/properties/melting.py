"""Melting point from solid–liquid coexistence at constant enthalpy (in.melt)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
from fitsnap_ext.properties.statistics import block_error
from fitsnap_ext.properties.systems import SystemPreset


def melt_log_every(nph_steps: int) -> int:
    """Steps per row of the coexistence log: 1000, or fewer for short runs so that the second half still has
    ten rows for its mean and block error (a multiple of 10, the sampling interval)."""
    return int(min(1000, max(10, nph_steps // 20 // 10 * 10)))


def run_melting(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path, quick: bool) -> dict:
    """Tm = mean temperature over the second half of the NPH coexistence run, with its block-average standard error
    (4 blocks) as `melting_point_K_sd` (and, as before, `melting_point_err_K`); the pressure likewise.

    `melting_coexistence_ok` is false when the crystal-like fraction at the end is outside 0.1–0.9, i.e. the
    box melted or froze completely and the temperature is not the melting point.
    """
    mode = system.mode(quick)
    nx, ny, nz = mode.melt_supercell
    steps = [int(round(t / mode.timestep_ps)) for t in (mode.melt_prep_ps, mode.melt_nph_ps)]
    every = melt_log_every(steps[1])
    runner.run("melt", "melt", data=md_data, out=out, nx=nx, ny=ny, nz=nz, Tguess=system.melt_T_guess,
               dt=mode.timestep_ps, prep=steps[0], melt=steps[0], nph=steps[1] - steps[1] % every, logevery=every)
    table = np.loadtxt(out / "melt_T.txt", comments="#", ndmin=2)   # step temp press fraction
    second_half = table[len(table) // 2:]
    kv = read_keyvals(out / "melt.txt")
    frac = kv["fraction_crystal_end"]
    t_err = block_error(second_half[:, 1])
    return {"melting_point_K": float(second_half[:, 1].mean()), "melting_point_K_sd": t_err,
            "melting_point_err_K": t_err,
            "melting_pressure_bar": float(second_half[:, 2].mean()),
            "melting_pressure_bar_sd": block_error(second_half[:, 2]),
            "melting_crystal_fraction_end": frac,
            "melting_coexistence_ok": bool(0.1 < frac < 0.9)}
