"""FitSNAP's `[SOLVER] solver = ANL` (analytic Bayesian linear regression) from the TSQR R factor.

FitSNAP (fitsnap3lib/solvers/anl.py) works on the weighted rows Aw = w·A, bw = w·b of the training set:
    P     = pinv(AwᵀAw + cov_nugget·I)          (numpy's pinv: relative cutoff 1e-15, symmetrised)
    mean  = P Awᵀ bw
    σ̂²    = |bw − Aw·mean|² / (npt − nbas − 2)   (bp / (ap − 1) with bp = |res|²/2, ap = (npt − nbas)/2)
    cov   = σ̂² P
    samples: `nsam` draws of N(mean, cov).
With R the (n+1)×(n+1) R factor of [Aw | bw] (`parallel.tsqr_r`), AwᵀAw = R_AᵀR_A, Awᵀbw = R_Aᵀc (c = R[:n, n])
and |bw − Aw·x|² = |c − R_A x|² + R[n, n]² for any x, so everything follows from R in O(n²) memory and is the
same on any number of ranks (R is unique up to the signs of its rows, which cancel here).
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

PINV_RCOND = 1e-15  # numpy.linalg.pinv's default, which FitSNAP's ANL uses


def anl_posterior(r: np.ndarray, n_rows: int, nugget: float = 0.0) \
        -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(mean, cov, σ̂², F) of FitSNAP's ANL from the R factor of [w·A | w·b] over `n_rows` training rows; F is a
    factor of cov from the same SVD, FFᵀ = cov (n × kept directions; for σ: `predictive_std`).

    `n_rows` is FitSNAP's npt: every training row, zero-weight rows included. Raises DataError when
    n_rows ≤ n + 2 (σ̂² undefined)."""
    r = np.asarray(r, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise ValueError(f"R must be square (n+1)×(n+1), got shape {r.shape}")
    n = r.shape[0] - 1
    dof = n_rows - n - 2
    if dof <= 0:
        raise DataError(f"solver ANL: {n_rows} training rows for {n} coefficients; the noise estimate "
                        f"σ̂² = |residual|²/(rows − coefficients − 2) needs more than {n + 2} rows")
    r_a, c = r[:n, :n], r[:n, n]
    u, s, vt = np.linalg.svd(r_a)
    m = s * s + nugget                      # eigenvalues of AᵀWA + nugget·I
    keep = m > PINV_RCOND * m.max()
    inv = np.divide(1.0, m, out=np.zeros_like(m), where=keep)
    unit_cov = (vt.T * inv) @ vt
    unit_cov = 0.5 * (unit_cov + unit_cov.T)
    mean = vt.T @ (inv * s * (u.T @ c))
    res = c - r_a @ mean
    sigma2 = float(res @ res + r[n, n] ** 2) / dof
    return mean, sigma2 * unit_cov, sigma2, np.sqrt(sigma2 * inv[keep]) * vt.T[:, keep]


def sample_coefficients(mean: np.ndarray, cov: np.ndarray, nsam: int, seed: int = 0) -> np.ndarray:
    """`nsam` coefficient sets drawn from N(mean, cov), shape (nsam, n); reproducible for a given seed.

    cov may be singular (pinv-cut directions): eigenvalues below zero from round-off count as zero."""
    z = np.random.default_rng(seed).standard_normal((nsam, len(mean)))
    return np.asarray(mean, dtype=float) + z @ covariance_factor(cov).T


def covariance_factor(cov: np.ndarray) -> np.ndarray:
    """F with FFᵀ = cov from its eigendecomposition (eigenvalues below zero from round-off count as zero), for a
    covariance known only as a matrix."""
    evals, evecs = np.linalg.eigh(np.asarray(cov, dtype=float))
    return evecs * np.sqrt(np.clip(evals, 0.0, None))


def predictive_std(a_rows: np.ndarray, factor: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
    """Per row a of `a_rows`: ‖aF‖ = sqrt(aᵀΣa) for Σ = FFᵀ (`factor`), the spread of a·x over the coefficients'
    distribution; chunked (no rows×rows). A sum of squares: computed from Σ itself, aᵀΣa cancels to round-off
    where rows are large and Σ is low-rank (quadratic SNAP's energy rows, |a| ≈ 3e4, under a bootstrap's 99-rank
    covariance: 0 or 50× off, where the replicates' own spread is 5e-5 eV/atom)."""
    a_rows = np.asarray(a_rows, dtype=float)
    out = np.empty(len(a_rows))
    for start in range(0, len(a_rows), chunk_rows):
        a = a_rows[start:start + chunk_rows]
        out[start:start + len(a)] = np.linalg.norm(a @ factor, axis=1)
    return out
