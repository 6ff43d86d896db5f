"""Linear (and quadratic) SNAP: weighted least squares on `compute snap` rows.

The fit reduces each rank's weighted rows [A_w | b_w] to an R factor (TSQR), so no rank ever holds all
rows; the small R is solved by SVD with FitSNAP's cutoff (singular values below rcond·max dropped) —
the same answer as FitSNAP's `lstsq` on the full matrix — or with a ridge penalty.

Columns that are identical by construction (chemflag's element permutations) can be tied: the fit runs in the
orthonormal basis of the tied subspace (each group's columns summed, divided by √size) and writes one value on
every column of a group. That is the full problem's minimum-norm (or ridge) solution — whose components on
identical columns are equal in exact arithmetic — with the equality made exact, whatever the solver.
"""
from __future__ import annotations

import numpy as np

from ..parallel import tsqr_r, world

CHUNK_ROWS = 20000  # rows weighted, reduced and folded into R at a time


def column_groups(bs) -> np.ndarray:
    """A group label for every column of the fit's A (per element: the constant unless bzeroflag, then the
    `compute snap` columns); equal labels mark columns identical by construction (BispectrumSettings)."""
    within = np.asarray(bs.duplicate_groups())
    width = within.max() + 2
    per_element = within + (0 if bs.bzeroflag else 1)
    if not bs.bzeroflag:
        per_element = np.concatenate([[0], per_element])
    return np.concatenate([per_element + t * width for t in range(bs.numtypes)])


class TiedColumns:
    """The map between the full columns and one coordinate per group (orthonormal: a group's columns / √size)."""

    def __init__(self, groups: np.ndarray):
        _, self.label, self.size = np.unique(groups, return_inverse=True, return_counts=True)
        self.order = np.argsort(self.label, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(self.size)[:-1]])
        self.scale = 1.0 / np.sqrt(self.size)

    @property
    def n_free(self) -> int:
        return len(self.size)

    def reduce(self, a: np.ndarray) -> np.ndarray:
        """Rows in the tied basis: each group's columns summed, divided by √size."""
        return np.add.reduceat(a[:, self.order], self.starts, axis=1) * self.scale

    def expand(self, coef: np.ndarray) -> np.ndarray:
        """Coefficients on the full columns: one value per group, on each of its columns (the last axis)."""
        return (coef * self.scale)[..., self.label]

    def expand_covariance(self, cov: np.ndarray) -> np.ndarray:
        """The covariance of the expanded coefficients, E·cov·Eᵀ."""
        return (cov * np.outer(self.scale, self.scale))[np.ix_(self.label, self.label)]


class LinearSolver:
    """Weighted least squares over ranks: `fit(rows, comm)` then `predict(a)`; learned `coef_` (one per A column).

    SVD (FitSNAP's cutoff `rcond`), RIDGE (`alpha`), ANL (FitSNAP's Bayesian solve: the mean of the posterior
    with `nugget` on the diagonal, and its covariance `covariance_` with the noise variance `sigma2_`, from the
    R factor alone — models.posterior) or BOOTSTRAP (the SVD fit, and `nboot` SVD fits to resamples of the training
    configurations drawn with replacement, seeded: their coefficients `replicates_` and covariance `covariance_`);
    both with `covariance_factor_` F, FFᵀ = covariance_.
    `groups` (a label per column, e.g. `column_groups(bs)`) ties identical columns; None fits them freely."""

    def __init__(self, solver: str = "SVD", alpha: float = 0.0, rcond: float = 1e-13, groups=None,
                 nugget: float = 0.0, nboot: int = 0, seed: int = 0):
        if solver not in ("SVD", "RIDGE", "ANL", "BOOTSTRAP"):
            raise ValueError(f"unknown solver {solver!r}")
        self.solver = solver
        self.alpha = alpha
        self.rcond = rcond
        self.nugget = nugget
        self.nboot = nboot
        self.seed = seed
        ties = TiedColumns(np.asarray(groups)) if groups is not None else None
        self.ties = ties if ties is not None and ties.n_free < len(groups) else None

    def fit(self, rows, comm=None, train_mask=None) -> "LinearSolver":
        """Fit on this rank's `rows` (a descriptors.Rows) and every other rank's; `train_mask` selects rows."""
        comm = comm or world()
        mask = np.ones(len(rows.b), bool) if train_mask is None else train_mask
        r, coef, rank, sing = self._solve(rows, mask, comm)
        ncols = r.shape[1] - 1
        if self.solver == "ANL":
            from .posterior import anl_posterior

            coef, cov, self.sigma2_, factor = anl_posterior(r, comm.allreduce(int(mask.sum())), self.nugget)
            self._set_covariance(cov, factor)
        if self.solver == "BOOTSTRAP":
            self.replicates_ = self._bootstrap(rows, mask, comm)
            factor = (self.replicates_ - self.replicates_.mean(axis=0)).T / np.sqrt(self.nboot - 1)
            self._set_covariance(factor @ factor.T, factor)  # the replicates' covariance (ddof 1)
        self.free_coef_ = coef  # one per tied group (the same as coef_ without ties)
        self.coef_ = coef if self.ties is None else self.ties.expand(coef)
        self.n_free_ = ncols
        self.rank_ = int(rank)
        self.singular_values_ = sing
        self.residual_norm_ = abs(r[ncols, ncols]) if len(r) > ncols else 0.0
        return self

    def _set_covariance(self, cov: np.ndarray, factor: np.ndarray) -> None:
        """The coefficients' covariance in the tied basis (`reduced_covariance_`) and on the full columns
        (`covariance_`), and a factor F of it, FFᵀ = covariance_ (`covariance_factor_`, for σ: posterior)."""
        self.reduced_covariance_ = cov
        self.covariance_ = cov if self.ties is None else self.ties.expand_covariance(cov)
        self.covariance_factor_ = factor if self.ties is None else self.ties.expand(factor.T).T

    def _solve(self, rows, mask, comm, row_scale=None):
        """(R of [w·A | w·b] over the masked rows of every rank, coefficients, rank, singular values); each row's
        weight times `row_scale` where given (a bootstrap replicate's √multiplicity)."""
        ncols = rows.a.shape[1] if self.ties is None else self.ties.n_free

        def weighted_blocks(size=CHUNK_ROWS):  # [w·A | w·b] a chunk at a time: one chunk's copies in memory
            for start in range(0, len(rows.b), size):
                part = slice(start, start + size)
                keep = mask[part]
                a = rows.a[part][keep]
                a = a if self.ties is None else self.ties.reduce(a)
                w = rows.w[part][keep] * (1.0 if row_scale is None else row_scale[part][keep])
                yield np.hstack([w[:, None] * a, (w * rows.b[part][keep])[:, None]])

        r = tsqr_r(weighted_blocks(), ncols + 1, comm, chunk_rows=CHUNK_ROWS)
        r_a, qtb = r[:ncols, :ncols], r[:ncols, ncols]
        if self.solver == "RIDGE":
            r_a = np.vstack([r_a, np.sqrt(self.alpha) * np.eye(ncols)])
            qtb = np.concatenate([qtb, np.zeros(ncols)])
        coef, _, rank, sing = np.linalg.lstsq(r_a, qtb, rcond=self.rcond)  # LAPACK gelsd, as FitSNAP's
        return r, coef, rank, sing

    def _bootstrap(self, rows, mask, comm) -> np.ndarray:
        """`nboot` SVD fits (nboot × free coefficients), each to as many training configurations as there are,
        drawn with replacement (a configuration drawn m times has its rows' weights times √m). The draws depend
        only on the seed and the configurations' global indices: the same on any number of ranks."""
        configs = np.unique(np.concatenate(comm.allgather(np.unique(rows.entry[mask]))))
        position = np.searchsorted(configs, rows.entry[mask])
        rng = np.random.default_rng(self.seed)
        replicates = []
        for _ in range(self.nboot):
            counts = rng.multinomial(len(configs), np.full(len(configs), 1.0 / len(configs)))
            multiplicity = np.zeros(len(rows.b))
            multiplicity[mask] = counts[position]
            replicates.append(self._solve(rows, mask & (multiplicity > 0), comm, np.sqrt(multiplicity))[1])
        return np.array(replicates)

    def predict(self, a: np.ndarray) -> np.ndarray:
        return a @ self.coef_
