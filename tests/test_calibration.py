"""Calibration metrics against synthetic errors with known σ: coverage, miscalibration area, NLL, fitted scale."""
import csv
import io
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import erf, erfinv

from fitsnap_ext.calibration import (area_between, calibration_row, coverage, csv_table, fit_scale, gaussian_nll,
                                     markdown_table, miscalibration_area, proportions)

N = 40000
# Dvoretzky–Kiefer–Wolfowitz: obs(p) is the empirical CDF of erf(|z|/√2) at p, so with probability 1 − 1e-6
# sup|obs − expected| ≤ sqrt(ln(2e6)/(2N)) for calibrated σ; the area between the curves is at most that.
DKW = math.sqrt(math.log(2e6) / (2 * N))


def binomial_tol(p):
    return 5 * math.sqrt(p * (1 - p) / N)


@pytest.fixture(scope="module")
def synthetic():
    """Heteroscedastic errors: σ_i uniform in [0.01, 0.1] eV/Å, e_i ~ N(0, σ_i²)."""
    rng = np.random.default_rng(11)
    sigma = rng.uniform(0.01, 0.1, size=N)
    return sigma * rng.standard_normal(N), sigma


def test_calibrated_sigma(synthetic):
    e, s = synthetic
    assert coverage(e, s, 1) == pytest.approx(erf(1 / math.sqrt(2)), abs=binomial_tol(0.6827))
    assert coverage(e, s, 2) == pytest.approx(erf(2 / math.sqrt(2)), abs=binomial_tol(0.9545))
    assert miscalibration_area(e, s) < DKW
    # E[NLL] = mean(½ log 2πσ²) + ½ E[z²]; the per-point term z²/2 has variance ½
    expected = np.mean(0.5 * np.log(2 * math.pi * s * s)) + 0.5
    assert gaussian_nll(e, s) == pytest.approx(expected, abs=5 * math.sqrt(0.5 / N))
    assert fit_scale(e, s) == pytest.approx(1.0, abs=5 * math.sqrt(2 / N) / 2)


def exact_area(k):
    """Area for σ_pred = σ_true / k with N → ∞: obs(p) = P(|z| ≤ k·√2·erfinv p) = erf(k·erfinv p)."""
    return quad(lambda p: abs(erf(k * erfinv(p)) - p), 0, 1, limit=200)[0]


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_sigma_off_by_a_factor(synthetic, factor):
    """σ_pred = factor·σ_true: |e| ≤ σ_pred ⇔ |z| ≤ factor, so coverage(k) = erf(k·factor/√2)."""
    e, s = synthetic
    pred = factor * s
    for k in (1, 2):
        p = erf(k * factor / math.sqrt(2))
        assert coverage(e, pred, k) == pytest.approx(p, abs=binomial_tol(p) + 1e-12)
    # 100 expected proportions against the continuous integral: discretisation well under 1e-3 here
    assert miscalibration_area(e, pred) == pytest.approx(exact_area(1 / factor), abs=DKW + 1e-3)
    assert exact_area(1 / factor) > 0.1
    s_hat = fit_scale(e, pred)
    assert s_hat == pytest.approx(1 / factor, rel=5 * math.sqrt(2 / N) / 2)
    # the fitted scale minimises the NLL and restores calibration
    nll = gaussian_nll(e, s_hat * pred)
    assert nll < min(gaussian_nll(e, 0.98 * s_hat * pred), gaussian_nll(e, 1.02 * s_hat * pred))
    assert miscalibration_area(e, s_hat * pred) < DKW


def test_area_between_known_shapes():
    assert area_between(np.array([0, 0.5, 1]), np.array([0, 1, 1])) == pytest.approx(0.25)
    # crossing the diagonal: two triangles of ⅛
    assert area_between(np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.25)
    assert area_between(np.linspace(0, 1, 7), np.linspace(0, 1, 7)) == 0.0


def test_proportions_count_points_inside_the_interval():
    expected, observed = proportions([0.0, 1.0, -3.0], [1.0, 1.0, 1.0], num_bins=3)
    # p = 0: only |z| ≤ 0; p = 0.5: |z| ≤ 0.674; p = 1: everything
    np.testing.assert_array_equal(expected, [0, 0.5, 1])
    np.testing.assert_array_equal(observed, [1 / 3, 1 / 3, 1])


def test_bad_sigma_is_refused():
    with pytest.raises(ValueError):
        coverage([0.1, 0.2], [0.1, 0.0])


def test_tables_in_metal_units(synthetic):
    e, s = synthetic
    rows = [calibration_row("Energy", e[:500] / 10, s[:500] / 10), calibration_row("Force", e, s, scale=0.5)]
    md = markdown_table(rows, "## Calibration (test split)")
    assert "energy eV/atom, force eV/Å" in md
    assert "| Energy | eV/atom | 500 |" in md and "| Force | eV/Å | 40000 |" in md
    assert "σ of Force multiplied by the scale factor" in md
    back = list(csv.DictReader(io.StringIO(csv_table(rows))))
    assert [r["quantity"] for r in back] == ["Energy", "Force"]
    assert float(back[1]["within_1sigma"]) == coverage(e, 0.5 * s, 1)
    assert float(back[1]["nll"]) == gaussian_nll(e, 0.5 * s)
    assert int(back[0]["count"]) == 500 and back[0]["unit"] == "eV/atom"
