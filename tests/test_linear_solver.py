"""The linear solver: TSQR over chunks/ranks equals lstsq on the full matrix; ridge equals its closed form."""
import numpy as np
import pytest
from scipy.linalg import lstsq

from fitsnap_ext.descriptors import Rows
from fitsnap_ext.models.linear import LinearSolver
from fitsnap_ext.parallel import split_by_atoms, tsqr_r, world


def _rows(seed=0, n=3000, m=12):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, m)) * np.logspace(0, 3, m)  # badly scaled columns, like bispectrum components
    b = a @ rng.normal(size=m) + 0.01 * rng.normal(size=n)
    w = rng.uniform(0.1, 10, size=n)
    return Rows(a, b, w, np.zeros(n, np.int8), np.arange(n))


def test_tsqr_in_chunks_gives_the_r_of_the_whole_matrix():
    rows = _rows()
    aug = np.hstack([rows.a, rows.b[:, None]])
    r_chunks = tsqr_r([aug[:700], aug[700:1900], aug[1900:]], aug.shape[1], world(), chunk_rows=500)
    r_full = np.linalg.qr(aug, mode="r")
    # R is unique up to the sign of each row
    np.testing.assert_allclose(np.abs(r_chunks), np.abs(r_full), rtol=1e-10, atol=1e-8)


def test_svd_solution_equals_lstsq_on_weighted_rows():
    rows = _rows(1)
    model = LinearSolver("SVD").fit(rows)
    direct = lstsq(rows.w[:, None] * rows.a, rows.w * rows.b, cond=1e-13)[0]
    np.testing.assert_allclose(model.coef_, direct, rtol=1e-10)
    np.testing.assert_allclose(model.predict(rows.a), rows.a @ direct, rtol=1e-10)


def test_train_mask_drops_rows():
    rows = _rows(2)
    mask = np.arange(len(rows.b)) % 3 != 0
    model = LinearSolver("SVD").fit(rows, train_mask=mask)
    direct = lstsq(rows.w[mask, None] * rows.a[mask], rows.w[mask] * rows.b[mask])[0]
    np.testing.assert_allclose(model.coef_, direct, rtol=1e-10)


@pytest.mark.parametrize("alpha", [1e-3, 10.0])
def test_ridge_equals_closed_form(alpha):
    rows = _rows(3)
    aw, bw = rows.w[:, None] * rows.a, rows.w * rows.b
    closed = np.linalg.solve(aw.T @ aw + alpha * np.eye(aw.shape[1]), aw.T @ bw)
    model = LinearSolver("RIDGE", alpha=alpha).fit(rows)
    np.testing.assert_allclose(model.coef_, closed, rtol=1e-8)


def test_rank_deficient_columns_are_cut_like_fitsnap():
    rows = _rows(4)
    rows.a[:, 5] = rows.a[:, 4]  # two identical columns: minimum-norm solution splits the weight
    model = LinearSolver("SVD").fit(rows)
    assert model.rank_ == rows.a.shape[1] - 1
    assert model.coef_[4] == pytest.approx(model.coef_[5], rel=1e-8)


def test_split_by_atoms_balances_and_covers():
    natoms = [64] * 10 + [2] * 50 + [30] * 7
    parts = split_by_atoms(natoms, 3)
    assert sorted(i for p in parts for i in p) == list(range(len(natoms)))
    loads = [sum(natoms[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= 64
