"""Statistical errors of MD averages: standard errors from independent estimates (time blocks or runs).

A property's `<key>_sd` in props.json is the standard error of `<key>` (same unit): the standard deviation
(ddof=1) of the property computed on each of n independent pieces of the run, divided by √n. Blocks much longer
than the correlation time are nearly independent, so this holds for correlated MD series too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def standard_error(estimates) -> float:
    """std(ddof=1)/√n of n independent estimates of one quantity; nan for fewer than two."""
    x = np.asarray(estimates, dtype=float).ravel()
    if len(x) < 2:
        return float("nan")
    return float(x.std(ddof=1) / np.sqrt(len(x)))


def block_error(x, nblocks: int = 4) -> float:
    """Standard error of the mean of a correlated time series from `nblocks` contiguous block averages."""
    blocks = [b.mean() for b in np.array_split(np.asarray(x, dtype=float), nblocks)]
    return standard_error(blocks)


def block_errors(per_block: Sequence[dict], keys) -> dict[str, float]:
    """{key + "_sd": standard error over the blocks} for each key of the per-block value dicts."""
    return {f"{k}_sd": standard_error([b[k] for b in per_block]) for k in keys}


def finite_or_none(x) -> float | None:
    """x as a float, or None (JSON null) where no error could be estimated (nan: a single run or block)."""
    return float(x) if x is not None and np.isfinite(x) else None
