"""Tracer diffusion (Li in LGPS): MSD at several temperatures, D(T), Arrhenius fit, Nernst–Einstein conductivity.

Each temperature runs `runs` independent trajectories (different velocity seeds); D and its error bar are the
mean and standard error over them. The analysis functions are plain numpy so they can be checked on a
synthetic random walk.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.properties.runner import DeckRunner, read_keyvals
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

    Weighted by the relative errors of D when given (σ_lnD = σ_D / D)."""
    temperatures, d = np.asarray(temperatures, dtype=float), np.asarray(d, dtype=float)
    x = -1.0 / (KB_EV * temperatures)
    y = np.log(d)
    if d_err is not None and np.all(np.asarray(d_err) > 0):
        w = 1.0 / (np.asarray(d_err) / d)
    else:
        w = np.ones_like(y)
    (ea, ln_d0), cov = np.polyfit(x, y, 1, w=w, cov="unscaled" if d_err is not None else True)
    cov = cov[::-1, ::-1]          # order (ln D0, Ea)
    return float(np.exp(ln_d0)), float(ea), cov


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
        d_err.append(float(np.std(ds, ddof=1) / np.sqrt(len(ds))) if len(ds) > 1 else 0.0)
    key = system.diffusing_element.lower()
    values = {"diffusion_temperatures_K": list(system.diffusion_T), f"{key}_diffusivity_cm2_s": d_mean,
              f"{key}_diffusivity_err_cm2_s": d_err}
    fit = None
    if len(d_mean) >= 2 and all(d > 0 for d in d_mean):
        d0, ea, cov = arrhenius_fit(system.diffusion_T, d_mean, d_err if all(e > 0 for e in d_err) else None)
        fit = (d0, ea)
        x300 = -1.0 / (KB_EV * 300.0)
        d300 = d0 * np.exp(ea * x300)
        var_ln = cov[0, 0] + x300 ** 2 * cov[1, 1] + 2 * x300 * cov[0, 1]
        sigma = nernst_einstein_mS_cm(d300, n_mobile, volume, 300.0, system.carrier_charge)
        values.update({"activation_energy_eV": ea, "activation_energy_err_eV": float(np.sqrt(cov[1, 1])),
                       "diffusivity_prefactor_cm2_s": d0, f"{key}_diffusivity_300K_cm2_s": float(d300),
                       "ionic_conductivity_300K_mS_cm": sigma,
                       "ionic_conductivity_300K_range_mS_cm": [float(sigma * np.exp(-np.sqrt(var_ln))),
                                                               float(sigma * np.exp(np.sqrt(var_ln)))]})
    else:
        values.update({"activation_energy_eV": None, "ionic_conductivity_300K_mS_cm": None})
    return DiffusionResult(values=values, temperatures=list(system.diffusion_T), d_mean=d_mean, d_err=d_err,
                           arrhenius=fit, curves=curves)
