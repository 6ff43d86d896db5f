"""Calibration of predicted σ against test errors: coverage, miscalibration area, Gaussian NLL, one scale factor.

Definitions (Tran et al. 2020, as Uncertainty Toolbox computes them with prop_type = "interval"):
- coverage(k): fraction of |error| ≤ k·σ (ideal erf(k/√2): 0.6827 for k = 1, 0.9545 for k = 2);
- miscalibration area: expected proportions p on linspace(0, 1, 100); observed proportion obs(p) = fraction of
  |error/σ| ≤ Φ⁻¹(0.5 + p/2); the area between the piecewise-linear curve (p, obs(p)) and the diagonal;
- NLL: mean of ½ log(2πσ²) + e²/(2σ²) (per point; natural log of a density in the errors' unit);
- fit_scale: the s minimising NLL(e, s·σ): s² = mean(e²/σ²).
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np

NUM_BINS = 100
SIGMA_FLOOR = 1e-10  # eV/atom, eV/Å: a point whose σ is round-off (a force fixed by symmetry) has none to calibrate
ROW_ROUNDOFF = 1e-8  # a design row this small against the median row is zero to round-off
UNITS = {"Energy": "eV/atom", "Force": "eV/Å"}
COLUMNS = ("quantity", "unit", "count", "rmse", "rms_sigma", "within_1sigma", "within_2sigma",
           "miscalibration_area", "nll", "scale")


def _check(errors, sigma) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(errors, dtype=float).ravel()
    s = np.broadcast_to(np.asarray(sigma, dtype=float), np.shape(errors)).ravel()
    if len(e) == 0 or not np.all(s > 0) or not np.all(np.isfinite(e)):
        raise ValueError("calibration needs at least one finite error and σ > 0 for every point")
    return e, s


def informative(sigma, design=None) -> np.ndarray:
    """The points whose σ can be calibrated: σ above SIGMA_FLOOR and, for a linear model's `design` rows, a row
    not zero to round-off (largest |entry| above 1e-8 of the median row's) — a force fixed by a crystal's
    symmetry is predicted exactly whatever the coefficients, with a σ of round-off, and its error is the label's
    noise: kept, such points dominate the NLL and the fitted scale (GaN linear 2J=8: scale 4·10⁴)."""
    keep = np.asarray(sigma, dtype=float) > SIGMA_FLOOR
    if design is not None and len(design):
        size = np.abs(np.asarray(design, dtype=float)).max(axis=1)
        keep &= size > ROW_ROUNDOFF * np.median(size)
    return keep


def coverage(errors, sigma, k: float = 1.0) -> float:
    """Fraction of points with |error| ≤ k·σ."""
    e, s = _check(errors, sigma)
    return float(np.mean(np.abs(e) <= k * s))


def proportions(errors, sigma, num_bins: int = NUM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed) proportions of centred Gaussian intervals over linspace(0, 1, num_bins)."""
    from scipy.special import ndtri

    e, s = _check(errors, sigma)
    expected = np.linspace(0.0, 1.0, num_bins)
    z = np.sort(np.abs(e / s))
    bound = ndtri(0.5 + expected / 2.0)        # Φ⁻¹: +inf at p = 1
    observed = np.searchsorted(z, bound, side="right") / len(z)
    return expected, observed


def area_between(expected: np.ndarray, observed: np.ndarray) -> float:
    """Area between the piecewise-linear curve (expected, observed) and the diagonal (crossings exact)."""
    d = observed - expected
    h = np.diff(expected)
    d0, d1 = d[:-1], d[1:]
    same = d0 * d1 >= 0
    trapezoid = np.abs(d0 + d1) / 2.0
    denominator = np.where(same, 1.0, np.abs(d0) + np.abs(d1))
    crossing = (d0 * d0 + d1 * d1) / (2.0 * denominator)
    return float(np.sum(h * np.where(same, trapezoid, crossing)))


def miscalibration_area(errors, sigma, num_bins: int = NUM_BINS) -> float:
    """Area between observed and expected coverage of centred intervals (0 = calibrated, at most 0.5)."""
    return area_between(*proportions(errors, sigma, num_bins))


def gaussian_nll(errors, sigma) -> float:
    """Mean negative log-likelihood of the errors under N(0, σ²)."""
    e, s = _check(errors, sigma)
    return float(np.mean(0.5 * np.log(2.0 * math.pi * s * s) + 0.5 * (e / s) ** 2))


def fit_scale(errors, sigma) -> float:
    """The factor s minimising gaussian_nll(errors, s·σ): sqrt(mean(e²/σ²))."""
    e, s = _check(errors, sigma)
    return float(np.sqrt(np.mean((e / s) ** 2)))


def calibration_row(quantity: str, errors, sigma, scale: float = 1.0) -> dict:
    """Every metric of one quantity ("Energy" or "Force") with σ multiplied by `scale` (1: raw σ)."""
    e, s = _check(errors, sigma)
    s = scale * s
    return {"quantity": quantity, "unit": UNITS[quantity], "count": len(e),
            "rmse": float(np.sqrt(np.mean(e * e))), "rms_sigma": float(np.sqrt(np.mean(s * s))),
            "within_1sigma": coverage(e, s, 1.0), "within_2sigma": coverage(e, s, 2.0),
            "miscalibration_area": miscalibration_area(e, s), "nll": gaussian_nll(e, s), "scale": float(scale)}


def markdown_table(rows: list[dict], title: str = "", fitted_on: str = "the validation split") -> str:
    """Markdown calibration table; says when σ was rescaled (scale ≠ 1) and on which data the scale was fitted."""
    head = (f"{title}\n\n" if title else "") + (
        "Units: LAMMPS metal — energy eV/atom, force eV/Å (one row per force component). Ideal: within 1σ 0.683, "
        "within 2σ 0.954, miscalibration area 0. NLL: mean −log N(error; 0, σ²) in the quantity's unit.\n\n"
        "| quantity | unit | count | RMSE | RMS σ | within 1σ | within 2σ | miscal. area | NLL | σ scale |\n"
        "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n")
    body = "".join(f"| {r['quantity']} | {r['unit']} | {r['count']} | {r['rmse']:.6g} | {r['rms_sigma']:.6g} | "
                   f"{r['within_1sigma']:.4f} | {r['within_2sigma']:.4f} | {r['miscalibration_area']:.4f} | "
                   f"{r['nll']:.6g} | {r['scale']:.6g} |\n" for r in rows)
    scaled = [r["quantity"] for r in rows if r["scale"] != 1.0]
    note = (f"\nσ of {', '.join(sorted(set(scaled)))} multiplied by the scale factor fitted on {fitted_on} "
            "(minimum NLL).\n") if scaled else ""
    return head + body + note


def csv_table(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r[c] if isinstance(r[c], (str, int)) else repr(r[c]) for c in COLUMNS])
    return buf.getvalue()
