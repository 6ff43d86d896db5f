"""Statistical errors (`<key>_sd`) of the MD properties: the block standard error against the analytic standard
error of the mean of an AR(1) series, the Arrhenius fit's slope and extrapolation errors against a Monte-Carlo of
noisy D values, and a quick Stillinger–Weber liquid whose errors come from blocks of its production run."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import lfilter

from fitsnap_ext.properties.diffusion import arrhenius_at, arrhenius_fit
from fitsnap_ext.properties.statistics import block_error, block_errors, finite_or_none, standard_error
from fitsnap_ext.units import KB_EV


def ar1_sd_of_mean(phi: float, n: int, noise_sd: float = 1.0) -> float:
    """Exact sd of the mean of n stationary AR(1) samples x_t = φ x_{t-1} + ε_t (var ε = noise_sd²):
    var = σ²/n [1 + 2 Σ_k (1 − k/n) φ^k] with σ² = noise_sd²/(1 − φ²)."""
    k = np.arange(1, n)
    var_x = noise_sd ** 2 / (1 - phi ** 2)
    return float(np.sqrt(var_x / n * (1 + 2 * np.sum((1 - k / n) * phi ** k))))


def ar1_series(phi: float, n: int, seeds: int, rng) -> np.ndarray:
    """`seeds` stationary AR(1) series of length n (rows), unit innovation variance."""
    eps = rng.normal(size=(seeds, n))
    eps[:, 0] /= np.sqrt(1 - phi ** 2)            # start from the stationary distribution
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_block_error_of_ar1_matches_analytic_standard_error(phi):
    """Blocks of 2000 samples ≫ the correlation time (19 samples for φ = 0.9): the mean block variance over 400
    series is the exact variance of the mean (within 6 %; the naive iid formula is 4.4× too small for φ = 0.9),
    and it matches the spread of the means themselves."""
    n, seeds = 20000, 400
    x = ar1_series(phi, n, seeds, np.random.default_rng(11))
    errors = np.array([block_error(row, nblocks=10) for row in x])
    exact = ar1_sd_of_mean(phi, n)
    assert np.sqrt(np.mean(errors ** 2)) == pytest.approx(exact, rel=0.06)
    assert x.mean(axis=1).std(ddof=1) == pytest.approx(exact, rel=0.1)
    if phi > 0:
        assert np.mean(x.std(axis=1, ddof=1) / np.sqrt(n)) < exact / 4


def test_standard_error_helpers():
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert np.isnan(standard_error([1.0])) and finite_or_none(float("nan")) is None
    assert finite_or_none(np.float64(0.5)) == 0.5
    blocks = [{"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 10.0}]
    assert block_errors(blocks, ["a", "b"]) == {"a_sd": pytest.approx(1.0), "b_sd": 0.0}


def test_melting_uses_the_shared_block_error():
    from fitsnap_ext.properties import melting, statistics

    assert melting.block_error is statistics.block_error


def test_arrhenius_sd_matches_monte_carlo():
    """D with 10–30 % relative errors at four temperatures: the weighted fit's sd of Ea and of ln D(300 K) (far
    outside the fitted range) equal the spread of 4000 fits of noisy D values within 5 %."""
    temps = np.array([600.0, 700.0, 800.0, 900.0])
    rel = np.array([0.3, 0.2, 0.15, 0.1])
    d_true = 2.0e-3 * np.exp(-0.25 / (KB_EV * temps))
    rng = np.random.default_rng(5)
    eas, ln300 = [], []
    for _ in range(4000):
        d = d_true * np.exp(rel * rng.normal(size=4))
        d0, ea, cov = arrhenius_fit(temps, d, rel * d)
        eas.append(ea)
        ln300.append(np.log(arrhenius_at(d0, ea, cov, 300.0)[0]))
    d0, ea, cov = arrhenius_fit(temps, d_true, rel * d_true)
    d300, sd_ln300 = arrhenius_at(d0, ea, cov, 300.0)
    assert ea == pytest.approx(0.25, rel=1e-9) and d300 == pytest.approx(2.0e-3 * np.exp(-0.25 / (KB_EV * 300)))
    assert np.mean(eas) == pytest.approx(0.25, abs=0.005)
    assert np.sqrt(cov[1, 1]) == pytest.approx(np.std(eas, ddof=1), rel=0.05)
    assert sd_ln300 == pytest.approx(np.std(ln300, ddof=1), rel=0.05)
    assert 0.03 < np.sqrt(cov[1, 1]) < 0.06      # 0.040 eV: what the test is about is not a trivial zero


def test_arrhenius_without_errors_needs_three_temperatures():
    d0, ea, cov = arrhenius_fit([600.0, 900.0], [1e-6, 1e-5])
    assert ea > 0 and np.all(np.isnan(cov))
    _, _, cov3 = arrhenius_fit([600.0, 700.0, 900.0], [1e-6, 2.1e-6, 1e-5])
    assert np.all(np.isfinite(cov3)) and cov3[1, 1] > 0


def test_lgps_diffusion_quick_errors(tmp_path):
    """The toy-potential LGPS diffusion run (2 runs per temperature, ≈ 2 s): each D has its standard error over
    the runs, and Ea, D(300 K) and σ(300 K) the errors the weighted Arrhenius fit propagates."""
    from fitsnap_ext.properties import run_properties

    mod = tmp_path / "toy_lgps.mod"
    mod.write_text("pair_style lj/cut 6.0\npair_coeff * * 0.10 3.4\npair_coeff 1 * 0.02 2.0 2.245\n"
                   "pair_coeff 2 4 0.60 2.0\npair_coeff 3 4 0.60 1.85\npair_modify shift yes\n")
    p = run_properties(mod, "lgps", ["diffusion"], quick=True, out=tmp_path / "props.json")
    assert p["li_diffusivity_cm2_s_sd"] == p["li_diffusivity_err_cm2_s"] and all(e > 0 for e in
                                                                                   p["li_diffusivity_cm2_s_sd"])
    d0, ea, cov = arrhenius_fit(p["diffusion_temperatures_K"], p["li_diffusivity_cm2_s"], p["li_diffusivity_cm2_s_sd"])
    assert p["activation_energy_eV_sd"] == pytest.approx(np.sqrt(cov[1, 1])) == p["activation_energy_err_eV"]
    d300, sd_ln = arrhenius_at(d0, ea, cov, 300.0)
    assert p["li_diffusivity_300K_cm2_s_sd"] == pytest.approx(d300 * sd_ln)
    assert p["ionic_conductivity_300K_mS_cm_sd"] == pytest.approx(p["ionic_conductivity_300K_mS_cm"] * sd_ln)
    assert p["diffusivity_prefactor_cm2_s_sd"] > 0


LIQUID_KEYS = ("liquid_density_g_cm3", "liquid_temperature_K", "rdf_first_peak_A", "rdf_first_minimum_A",
               "coordination_number", "adf_small_angle_fraction")


def test_liquid_si_quick_block_errors(sw_mod, tmp_path):
    """Quick SW liquid (64 atoms, 2 ps production in 5 blocks, ≈ 1 s): every value has a positive `_sd` below 10 %
    of it, the whole-run g(r), ADF, density and temperature are the equal-weight means of the block averages (to
    the files' 6 printed digits), and the values come from the whole-run averages."""
    from fitsnap_ext.properties import run_properties
    from fitsnap_ext.properties.liquid import LIQUID_BLOCKS, block_values, structure_values
    from fitsnap_ext.properties.md_runs import read_blocks, read_last_block
    from fitsnap_ext.properties.runner import read_keyvals

    p = run_properties(sw_mod, "si", ["liquid"], quick=True, out=tmp_path / "props.json")
    for key in LIQUID_KEYS:
        assert 0 < p[f"{key}_sd"] < 0.1 * abs(p[key]), (key, p[key], p[f"{key}_sd"])
    assert json.loads((tmp_path / "props.json").read_text())["rdf_first_peak_A_sd"] == p["rdf_first_peak_A_sd"]
    folder = tmp_path / "props_files" / "liquid"
    whole_rdf, whole_adf = read_last_block(folder / "rdf.txt", 2), read_last_block(folder / "adf.txt", 2)
    rdfs, adfs = read_blocks(folder / "rdf_blocks.txt", 2), read_blocks(folder / "adf_blocks.txt", 2)
    assert len(rdfs) == len(adfs) == LIQUID_BLOCKS
    np.testing.assert_allclose(np.mean(rdfs, axis=0), whole_rdf, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.mean(adfs, axis=0), whole_adf, rtol=1e-5, atol=1e-4)
    blocks = block_values(folder)
    kv = read_keyvals(folder / "liquid.txt")
    assert np.mean([b["liquid_density_g_cm3"] for b in blocks]) == pytest.approx(kv["density_g_cm3"], rel=1e-7)
    assert np.mean([b["liquid_temperature_K"] for b in blocks]) == pytest.approx(kv["temperature_K"], rel=1e-7)
    assert p["liquid_density_g_cm3"] == kv["density_g_cm3"] and p["liquid_temperature_K"] == kv["temperature_K"]
    whole = structure_values(whole_rdf, whole_adf)
    assert all(p[k] == whole[k] for k in whole)
    for key in LIQUID_KEYS:
        assert p[f"{key}_sd"] == pytest.approx(np.std([b[key] for b in blocks], ddof=1) / np.sqrt(LIQUID_BLOCKS))


def test_reference_comparison_has_no_rows_for_standard_errors():
    from fitsnap_ext.properties.report import compare

    props = {"liquid_density_g_cm3": 2.46, "liquid_density_g_cm3_sd": 0.006}
    rows = compare(props, {"liquid_density_g_cm3": 2.57, "liquid_density_g_cm3_sd": 0.01})
    assert [r["property"] for r in rows] == ["liquid_density_g_cm3"]
