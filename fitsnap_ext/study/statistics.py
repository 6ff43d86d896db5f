"""The study's error bars (pure functions, numpy/scipy only): bootstrap standard deviations of fitting errors over
the test configurations, the uncertainty of a property (members' spread and the engine's statistical error),
z tests between two models' property errors, and bootstrap confidence intervals of correlations.

Every random draw is seeded: the same inputs give the same numbers.
"""
from __future__ import annotations

import math

import numpy as np

FIT_BOOTSTRAP = 1000         # replicates of the fitting errors' bootstrap
CORRELATION_BOOTSTRAP = 2000  # replicates of a correlation's bootstrap
Z_RESOLVED = 2.0             # |z| above which a difference between two models is resolved


def _finite(v) -> float | None:
    """`v` as a float when it is a finite number, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def bootstrap_errors(residuals, configs, n_boot: int = FIT_BOOTSTRAP, seed: int = 0) -> dict:
    """MAE and RMSE of `residuals` and their bootstrap standard deviations (ddof 1) over configurations: each
    replicate draws as many configurations as there are, with replacement, and keeps every residual (row) of a
    drawn configuration. `configs` labels each residual's configuration. {"mae", "rmse", "mae_sd", "rmse_sd",
    "n_configs"}; the sds are NaN with fewer than two configurations."""
    r = np.asarray(residuals, float)
    labels, inverse = np.unique(np.asarray(configs).astype(str), return_inverse=True)
    n = np.bincount(inverse, minlength=len(labels)).astype(float)
    s_abs = np.bincount(inverse, np.abs(r), minlength=len(labels))
    s_sq = np.bincount(inverse, r * r, minlength=len(labels))
    out = {"mae": float(s_abs.sum() / n.sum()) if len(r) else math.nan,
           "rmse": float(math.sqrt(s_sq.sum() / n.sum())) if len(r) else math.nan,
           "mae_sd": math.nan, "rmse_sd": math.nan, "n_configs": len(labels)}
    if len(labels) < 2:
        return out
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)), size=n_boot).astype(float)
    count = weights @ n
    out["mae_sd"] = float(np.std(weights @ s_abs / count, ddof=1))
    out["rmse_sd"] = float(np.std(np.sqrt(weights @ s_sq / count), ddof=1))
    return out


def property_uncertainty(members: list, stat_sd=None) -> dict:
    """{"spread", "sd"} of one property: `spread` the sample standard deviation (ddof 1) of the members'
    (ensemble members', posterior samples') finite values (absent below two), `sd` = sqrt(spread² + stat_sd²)
    with the engine's own statistical error `stat_sd` of the deployed model (absent when neither exists)."""
    values = [v for v in (_finite(m) for m in members) if v is not None]
    out = {}
    if len(values) >= 2:
        out["spread"] = float(np.std(values, ddof=1))
    stat = _finite(stat_sd)
    if "spread" in out or stat is not None:
        out["sd"] = math.hypot(out.get("spread", 0.0), stat or 0.0)
    return out


def z_score(err_a, sd_a, err_b, sd_b) -> float | None:
    """z = (|err_a| − |err_b|) / sqrt(sd_a² + sd_b²): negative when A is closer to the reference. None when
    an error or an sd is missing, or both sds are zero."""
    ea, eb, sa, sb = (_finite(v) for v in (err_a, err_b, sd_a, sd_b))
    if None in (ea, eb, sa, sb) or sa == sb == 0.0:
        return None
    return (abs(ea) - abs(eb)) / math.hypot(sa, sb)


def pair_tests(rows: list[dict], key: str, threshold: float = Z_RESOLVED) -> list[dict]:
    """Every pair of the rows that have `<key>_err`: {"a", "b", "z", "verdict"} with `a` the model closer to the
    reference (z ≤ 0 then), verdict "resolved" (|z| > threshold), "unresolved" or "no uncertainty" (either sd
    missing)."""
    have = [r for r in rows if _finite(r.get(f"{key}_err")) is not None]
    out = []
    for i, first in enumerate(have):
        for second in have[i + 1:]:
            a, b = (first, second) if abs(first[f"{key}_err"]) <= abs(second[f"{key}_err"]) else (second, first)
            z = z_score(a[f"{key}_err"], a.get(f"{key}_sd"), b[f"{key}_err"], b.get(f"{key}_sd"))
            verdict = "no uncertainty" if z is None else "resolved" if abs(z) > threshold else "unresolved"
            out.append({"a": a["model"], "b": b["model"], "z": z, "verdict": verdict})
    return out


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of every row of x against the same row of y (NaN where either row is constant)."""
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks along each row, ties given their mean rank (as scipy.stats.rankdata)."""
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def correlation(x, y) -> tuple[float, float]:
    """(Pearson r, Spearman ρ) of y against x; NaN with fewer than three points or a constant variable."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return math.nan, math.nan
    return (float(_pearson_rows(x[None], y[None])[0]),
            float(_pearson_rows(_ranks(x[None]), _ranks(y[None]))[0]))


def correlation_ci(x, y, x_sd=None, y_sd=None, absolute_y: bool = False, n_boot: int = CORRELATION_BOOTSTRAP,
                   seed: int = 0, level: float = 0.95) -> dict:
    """Pearson r and Spearman ρ of y against x with percentile bootstrap intervals: each replicate resamples the
    points with replacement and draws every x and y from a normal around its value with its sd (where known;
    `x_sd`, `y_sd` per point, None or NaN for none). With `absolute_y` the correlation is of |y| (a drawn y is
    made absolute after the draw). {"n", "pearson", "pearson_ci", "spearman", "spearman_ci"}: NaN where
    undefined (fewer than three points, a constant variable); replicates whose draw is constant are left out."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    sx = np.nan_to_num(np.asarray(x_sd if x_sd is not None else np.zeros(n), float), nan=0.0)
    sy = np.nan_to_num(np.asarray(y_sd if y_sd is not None else np.zeros(n), float), nan=0.0)
    fold = np.abs if absolute_y else (lambda a: a)
    nan2 = (math.nan, math.nan)
    out = {"n": n, "pearson": math.nan, "pearson_ci": nan2, "spearman": math.nan, "spearman_ci": nan2}
    if n < 3:
        return out
    out["pearson"], out["spearman"] = correlation(x, fold(y))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx = x[idx] + sx[idx] * rng.standard_normal((n_boot, n))
    by = fold(y[idx] + sy[idx] * rng.standard_normal((n_boot, n)))
    tail = 100 * (1 - level) / 2
    for name, values in (("pearson", _pearson_rows(bx, by)), ("spearman", _pearson_rows(_ranks(bx), _ranks(by)))):
        values = values[np.isfinite(values)]
        if len(values) >= 10:
            out[f"{name}_ci"] = tuple(float(v) for v in np.percentile(values, [tail, 100 - tail]))
    return out
