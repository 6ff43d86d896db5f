"""Linear (and quadratic) SNAP: weighted least squares on `compute snap` rows.

The fit reduces each rank's weighted rows [A_w | b_w] to an R factor (TSQR), so no rank ever holds all
rows; the small R is solved by SVD with FitSNAP's cutoff (singular values below rcond·max dropped) —
the same answer as FitSNAP's `lstsq` on the full matrix — or with a ridge penalty.
"""
from __future__ import annotations

import numpy as np

from ..parallel import tsqr_r, world


class LinearSNAP:
    """Estimator: `fit(rows, comm)` then `predict(a)`; learned `coef_` (one column per A column)."""

    def __init__(self, solver: str = "SVD", alpha: float = 0.0, rcond: float = 1e-13):
        if solver not in ("SVD", "RIDGE"):
            raise ValueError(f"unknown solver {solver!r}")
        self.solver = solver
        self.alpha = alpha
        self.rcond = rcond

    def fit(self, rows, comm=None, train_mask=None) -> "LinearSNAP":
        """Fit on this rank's `rows` (a descriptors.Rows) and every other rank's; `train_mask` selects rows."""
        comm = comm or world()
        mask = np.ones(len(rows.b), bool) if train_mask is None else train_mask
        ncols = rows.a.shape[1]
        aug = np.hstack([rows.w[mask, None] * rows.a[mask], (rows.w[mask] * rows.b[mask])[:, None]])
        r = tsqr_r([aug], ncols + 1, comm)
        r_a, qtb = r[:ncols, :ncols], r[:ncols, ncols]
        if self.solver == "RIDGE":
            r_a = np.vstack([r_a, np.sqrt(self.alpha) * np.eye(ncols)])
            qtb = np.concatenate([qtb, np.zeros(ncols)])
        coef, _, rank, sing = np.linalg.lstsq(r_a, qtb, rcond=self.rcond)  # LAPACK gelsd, as FitSNAP's
        self.coef_ = coef
        self.rank_ = int(rank)
        self.singular_values_ = sing
        self.residual_norm_ = abs(r[ncols, ncols]) if len(r) > ncols else 0.0
        return self

    def predict(self, a: np.ndarray) -> np.ndarray:
        return a @ self.coef_
