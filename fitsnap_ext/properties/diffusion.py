"""Tracer diffusion (Li in LGPS): MSD at several temperatures, D(T), Arrhenius fit, Nernst–Einstein conductivity.

Each temperature runs `runs` independent trajectories (different velocity seeds); D and its standard error
(`<el>_diffusivity_cm2_s_sd`, = the older `<el>_diffusivity_err_cm2_s`) are the mean and std(ddof=1)/√runs over
them: independent runs are the blocks (a time block of one single-origin MSD would not be independent of the
others). The Arrhenius fit is weighted by these errors and its covariance gives `activation_energy_eV_sd` and, to
first order in σ(ln D), the extrapolated `<el>_diffusivity_300K_cm2_s_sd` and `ionic_conductivity_300K_mS_cm_sd`.
The analysis functions are plain numpy so they can be checked on a synthetic random walk.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
from fitsnap_ext.properties.statistics import finite_or_none, standard_error
from fitsnap_ext.properties.systems import SystemPreset
from fitsnap_ext.units import A2_PER_PS_TO_CM2_PER_S, ELEMENTARY_CHARGE_C, KB_EV, KB_J


def msd_from_positions(positions: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """MSD(lag) (Å²) of unwrapped positions (frames, atoms, 3), averaged over atoms and time origins."""
    nframes = len(positions)
    max_lag = max_lag or nframes // 2
    msd = np.zeros(max_lag + 1)
    for lag in range(1, max_lag + 1):
        d = positions[lag:] - positions[:-lag]
        msd[lag] = np.mean(np.sum(d * d, axis=-1))
    return msd


def diffusivity_from_msd(t_ps: np.ndarray, msd_A2: np.ndarray, fit_from: float = 0.2) -> float:
    """D (cm²/s) = slope/6 of a straight-line fit of MSD(t) for t ≥ fit_from·t_max (skips the ballistic part)."""
    t_ps, msd_A2 = np.asarray(t_ps, dtype=float), np.asarray(msd_A2, dtype=float)
    keep = t_ps >= fit_from * t_ps.max()
    slope = np.polyfit(t_ps[keep], msd_A2[keep], 1)[0]
    return float(slope / 6.0 * A2_PER_PS_TO_CM2_PER_S)


def arrhenius_fit(temperatures, d, d_err=None) -> tuple[float, float, np.ndarray]:
    """Fit D = D0 exp(-Ea / kB T); returns (D0 cm²/s, Ea eV, covariance of (ln D0, Ea)).

    Weighted by the relative errors of D when all are given and positive (σ_lnD = σ_D / D): the covariance then
    follows from those errors alone. Otherwise unweighted, with the covariance scaled by the residuals (nan for
    two temperatures, which leave no residual)."""
    temperatures, d = np.asarray(temperatures, dtype=float), np.asarray(d, dtype=float)
    x = -1.0 / (KB_EV * temperatures)
    y = np.log(d)
    weighted = d_err is not None and bool(np.all(np.asarray(d_err, dtype=float) > 0))
    if weighted:
        (ea, ln_d0), cov = np.polyfit(x, y, 1, w=d / np.asarray(d_err, dtype=float), cov="unscaled")
    elif len(x) > 2:
        (ea, ln_d0), cov = np.polyfit(x, y, 1, cov=True)
    else:
        (ea, ln_d0), cov = np.polyfit(x, y, 1), np.full((2, 2), np.nan)
    cov = cov[::-1, ::-1]          # order (ln D0, Ea)
    return float(np.exp(ln_d0)), float(ea), cov


def arrhenius_at(d0: float, ea: float, cov: np.ndarray, temperature: float) -> tuple[float, float]:
    """D (cm²/s) of the Arrhenius fit at `temperature` and the standard error of ln D there, from the covariance
    of (ln D0, Ea): σ²(ln D) = c00 + x² c11 + 2x c01 with x = −1/(kB T)."""
    x = -1.0 / (KB_EV * temperature)
    var_ln = cov[0, 0] + x ** 2 * cov[1, 1] + 2 * x * cov[0, 1]
    return float(d0 * np.exp(ea * x)), float(np.sqrt(var_ln))


def nernst_einstein_mS_cm(d_cm2_s: float, n_carriers: int, volume_A3: float, temperature: float,
                          charge: int = 1) -> float:
    """Ionic conductivity σ = n q² D / (kB T) in mS/cm (Haven ratio 1, tracer D taken as charge D)."""
    n = n_carriers / (volume_A3 * 1e-30)                 # 1/m³
    sigma_s_m = n * (charge * ELEMENTARY_CHARGE_C) ** 2 * (d_cm2_s * 1e-4) / (KB_J * temperature)
    return float(sigma_s_m * 10.0)                       # 1 S/m = 10 mS/cm


@dataclass
class DiffusionResult:
    """D per temperature (mean ± standard error over runs), Arrhenius parameters and MSD curves."""

    values: dict
    temperatures: list
    d_mean: list
    d_err: list
    arrhenius: tuple | None
    curves: dict


def run_diffusion(runner: DeckRunner, system: SystemPreset, md_data: Path, out: Path,
                  quick: bool) -> DiffusionResult:
    """NVT runs at each preset temperature and seed; D from MSD, Ea from Arrhenius, σ(300 K) extrapolated."""
    mode = system.mode(quick)
    nx, ny, nz = mode.diffusion_supercell
    every = 50
    equil = int(round(mode.diffusion_equil_ps / mode.timestep_ps))
    prod = int(round(mode.diffusion_prod_ps / mode.timestep_ps))
    prod -= prod % every
    mobile_type = system.elements.index(system.diffusing_element) + 1
    d_mean, d_err, curves = [], [], {}
    n_mobile = volume = None
    for temp in system.diffusion_T:
        ds = []
        for run in range(mode.diffusion_runs):
            tag = f"T{temp:g}_run{run + 1}"
            runner.run("diffusion", f"diffusion_{tag}", data=md_data, out=out, nx=nx, ny=ny, nz=nz,
                       type=mobile_type, T=temp, dt=mode.timestep_ps, equil=equil, prod=prod, every=every,
                       seed=1000 + 17 * run + int(temp), tag=tag)
            msd = np.loadtxt(out / f"msd_{tag}.txt", comments="#", ndmin=2)
            t = msd[:, 0] * mode.timestep_ps
            ds.append(diffusivity_from_msd(t, msd[:, 4]))
            if run == 0:
                curves[temp] = (t, msd[:, 4])
            kv = read_keyvals(out / f"diffusion_{tag}.txt")
            n_mobile, volume = int(kv["natoms_mobile"]), kv["volume_A3"]
        d_mean.append(float(np.mean(ds)))
        d_err.append(standard_error(ds) if len(ds) > 1 else 0.0)
    key = system.diffusing_element.lower()
    values = {"diffusion_temperatures_K": list(system.diffusion_T), f"{key}_diffusivity_cm2_s": d_mean,
              f"{key}_diffusivity_cm2_s_sd": [e if e > 0 else None for e in d_err],   # null: a single run
              f"{key}_diffusivity_err_cm2_s": d_err}
    fit = None
    if len(d_mean) >= 2 and all(d > 0 for d in d_mean):
        values.update(arrhenius_values(system, d_mean, d_err, n_mobile, volume))
        fit = (values["diffusivity_prefactor_cm2_s"], values["activation_energy_eV"])
    else:
        values.update({"activation_energy_eV": None, "ionic_conductivity_300K_mS_cm": None})
    return DiffusionResult(values=values, temperatures=list(system.diffusion_T), d_mean=d_mean, d_err=d_err,
                           arrhenius=fit, curves=curves)


def arrhenius_values(system: SystemPreset, d_mean: list, d_err: list, n_mobile: int, volume: float) -> dict:
    """Ea, D0, D(300 K) and σ(300 K) with their standard errors (`_sd`; None where the fit has none) and the older
    `activation_energy_err_eV` and ±1σ(ln D) conductivity range. σ(300 K) ∝ D(300 K), so σ_sd = σ·σ(ln D)."""
    key = system.diffusing_element.lower()
    d0, ea, cov = arrhenius_fit(system.diffusion_T, d_mean, d_err if all(e > 0 for e in d_err) else None)
    d300, sd_ln = arrhenius_at(d0, ea, cov, 300.0)
    sigma = nernst_einstein_mS_cm(d300, n_mobile, volume, 300.0, system.carrier_charge)
    ea_sd = finite_or_none(np.sqrt(cov[1, 1]))
    return {"activation_energy_eV": ea, "activation_energy_eV_sd": ea_sd, "activation_energy_err_eV": ea_sd,
            "diffusivity_prefactor_cm2_s": d0,
            "diffusivity_prefactor_cm2_s_sd": finite_or_none(d0 * np.sqrt(cov[0, 0])),
            f"{key}_diffusivity_300K_cm2_s": d300, f"{key}_diffusivity_300K_cm2_s_sd": finite_or_none(d300 * sd_ln),
            "ionic_conductivity_300K_mS_cm": sigma, "ionic_conductivity_300K_mS_cm_sd": finite_or_none(sigma * sd_ln),
            "ionic_conductivity_300K_range_mS_cm": [float(sigma * np.exp(-sd_ln)), float(sigma * np.exp(sd_ln))]}
