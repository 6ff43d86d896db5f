"""FitSNAP's ANL posterior from the TSQR R factor equals the full-matrix formula (serial and 2 ranks); samples
spread as the covariance says; σ̂ recovers known noise."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fitsnap_ext.errors import DataError
from fitsnap_ext.models.posterior import anl_posterior, covariance_factor, predictive_std, sample_coefficients
from fitsnap_ext.parallel import tsqr_r, world

REPO = Path(__file__).resolve().parents[1]


def full_matrix_anl(a, b, w, nugget):
    """FitSNAP's ANL as fitsnap3lib/solvers/anl.py writes it, on the full weighted matrix."""
    aw, bw = w[:, None] * a, w * b
    npt, nbas = aw.shape
    inv = np.linalg.pinv(aw.T @ aw + nugget * np.eye(nbas))
    inv = 0.5 * inv + 0.5 * inv.T
    mean = inv @ (aw.T @ bw)
    res = bw - aw @ mean
    sigma2 = (res @ res / 2.0) / ((npt - nbas) / 2.0 - 1.0)
    return mean, sigma2 * inv, sigma2


def random_system(seed=0, n=2000, m=15, noise=0.05):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, m)) + 0.3 * rng.normal(size=(1, m))
    b = a @ rng.normal(size=m) + noise * rng.normal(size=n)
    w = rng.uniform(0.5, 3.0, size=n)
    return a, b, w


def r_factor(a, b, w, chunks=3):
    aug = np.hstack([w[:, None] * a, (w * b)[:, None]])
    return tsqr_r(np.array_split(aug, chunks), aug.shape[1], world(), chunk_rows=400)


def assert_same(got, want, rtol=1e-10):
    for g, x in zip(got[:2], want[:2]):
        assert np.abs(g - x).max() <= rtol * np.abs(x).max()
    assert got[2] == pytest.approx(want[2], rel=rtol)


@pytest.mark.parametrize("nugget", [0.0, 1e-2, 5.0])
def test_posterior_from_r_equals_full_matrix_anl(nugget):
    a, b, w = random_system()
    got = anl_posterior(r_factor(a, b, w), len(b), nugget)
    assert_same(got, full_matrix_anl(a, b, w, nugget))


def exact_anl(a, b, w, nugget):
    """The same formula in 200-bit arithmetic (mpmath; AᵀWA is then exact), for a full-rank AᵀWA + nugget."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workprec(200):
        to_mp = np.vectorize(mpmath.mpf, otypes=[object])
        aw, bw = to_mp(w[:, None] * a), to_mp(w * b)
        npt, nbas = aw.shape
        inv = np.array((mpmath.matrix((aw.T @ aw + nugget * np.eye(nbas)).tolist()) ** -1).tolist(), dtype=object)
        mean = inv @ (aw.T @ bw)
        res = bw - aw @ mean
        sigma2 = (res @ res) / (npt - nbas - 2)
        return mean.astype(float), (sigma2 * inv).astype(float), float(sigma2)


@pytest.fixture(scope="module")
def demo_rows():
    """2J=6 bispectrum rows of every 16th demo training configuration (weights of in.demo: energy 100,
    force 1, stress 1e-4); cond(w·A) ≈ 1e5, so AᵀWA in double loses ~1e-9 and the reference is `exact_anl`."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.descriptors import Rows, SnapCalculator

    settings = load_settings(REPO / "input_files" / "in.demo", [])
    entries = [e for e in load_entries(settings) if not e.test][::16]
    calc = SnapCalculator(settings)
    try:
        return Rows.concatenate([calc.rows(e) for e in entries], 31)
    finally:
        calc.close()


@pytest.mark.parametrize("nugget", [0.0, 1e-3])
def test_posterior_on_real_snap_descriptors(demo_rows, nugget):
    rows = demo_rows
    assert rows.a.shape[1] == 31 and len(rows.b) > 1000
    assert np.linalg.cond(rows.w[:, None] * rows.a) > 1e4
    got = anl_posterior(r_factor(rows.a, rows.b, rows.w), len(rows.b), nugget)
    assert_same(got, exact_anl(rows.a, rows.b, rows.w, nugget))


def test_two_ranks_equal_serial(tmp_path):
    """`mpirun -np 2`: each rank holds half of the rows; mean, cov and σ̂² equal the serial result."""
    mpirun = Path(sys.executable).with_name("mpirun")
    if not mpirun.exists():
        pytest.skip("no mpirun next to the interpreter")
    script = tmp_path / "anl2.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import numpy as np
        from mpi4py import MPI
        from fitsnap_ext.models.posterior import anl_posterior
        from fitsnap_ext.parallel import tsqr_r
        from test_posterior import random_system
        comm = MPI.COMM_WORLD
        a, b, w = random_system(5)
        mine = np.array_split(np.arange(len(b)), comm.size)[comm.rank]
        aug = np.hstack([w[mine, None] * a[mine], (w[mine] * b[mine])[:, None]])
        r = tsqr_r([aug[:300], aug[300:]], aug.shape[1], comm, chunk_rows=250)
        mean, cov, sigma2, _ = anl_posterior(r, len(b), 0.1)
        if comm.rank == 0:
            np.savez({str(tmp_path / 'out.npz')!r}, mean=mean, cov=cov, sigma2=sigma2)
    """))
    proc = subprocess.run([str(mpirun), "-np", "2", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npz")
    a, b, w = random_system(5)
    serial = anl_posterior(r_factor(a, b, w, chunks=1), len(b), 0.1)
    assert_same((out["mean"], out["cov"], float(out["sigma2"])), serial, rtol=1e-11)
    assert_same(serial, full_matrix_anl(a, b, w, 0.1))


def test_samples_spread_as_the_covariance():
    """Sample covariance of N draws vs cov: each entry's standard error is sqrt((Σii Σjj + Σij²)/N)."""
    a, b, w = random_system(1, m=6)
    mean, cov, _, _ = anl_posterior(r_factor(a, b, w), len(b), 0.0)
    nsam = 20000
    draws = sample_coefficients(mean, cov, nsam, seed=3)
    assert draws.shape == (nsam, 6)
    np.testing.assert_array_equal(draws, sample_coefficients(mean, cov, nsam, seed=3))
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * sd / np.sqrt(nsam))
    stderr = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / nsam)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * stderr)


def test_singular_covariance_samples_stay_in_its_span():
    """A duplicated column: pinv cuts one direction, so every draw keeps x4 − x5 at the mean's value."""
    a, b, w = random_system(2, m=6)
    a[:, 5] = a[:, 4]
    mean, cov, _, _ = anl_posterior(r_factor(a, b, w), len(b), 0.0)
    draws = sample_coefficients(mean, cov, 500, seed=1)
    assert np.abs((draws[:, 4] - draws[:, 5]) - (mean[4] - mean[5])).max() < 1e-8 * np.abs(draws).max()
    assert np.std(draws[:, 4]) > 0


def test_sigma_recovers_known_noise():
    """Unit weights, noise σ = 0.05: σ̂² is unbiased; σ̂ has relative sd sqrt(1/(2(N−n−2))) ≈ 0.8 %, N = 8000."""
    sigma = 0.05
    a, b, _ = random_system(7, n=8000, m=20, noise=sigma)
    _, _, sigma2, _ = anl_posterior(r_factor(a, b, np.ones(len(b))), len(b), 0.0)
    assert np.sqrt(sigma2) == pytest.approx(sigma, rel=4 * np.sqrt(1 / (2 * (8000 - 22))))  # 4 sd: 3.2 %


def test_predictive_std_equals_the_quadratic_form():
    """σ from ANL's factor (and from any covariance's eigen-factor) is sqrt(aᵀΣa) on well-conditioned rows."""
    a, b, w = random_system(3, m=8)
    r = r_factor(a, b, w)
    _, cov, _, factor = anl_posterior(r, len(b), 0.0)
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=1e-10, atol=1e-14 * np.abs(cov).max())
    rows = np.random.default_rng(0).normal(size=(1000, 8))
    want = np.sqrt(np.diag(rows @ cov @ rows.T))
    np.testing.assert_allclose(predictive_std(rows, factor, chunk_rows=77), want, rtol=1e-10)
    np.testing.assert_allclose(predictive_std(rows, covariance_factor(cov)), want, rtol=1e-10)


def test_predictive_std_from_a_factor_survives_large_rows():
    """Rows of norm 1e5 (quadratic SNAP's energy rows) under a low-rank covariance (a bootstrap's replicates,
    fewer than the coefficients): ‖aF‖ equals the spread of a·x over the replicates to 1e-10; aᵀΣa from Σ itself
    loses it to cancellation (no assertion on that: it depends on the BLAS)."""
    rng = np.random.default_rng(5)
    n, k = 300, 40
    replicates = rng.normal(size=n) + 1e-6 * rng.normal(size=(k, n))
    deviations = replicates - replicates.mean(axis=0)
    factor = deviations.T / np.sqrt(k - 1)
    rows = 1e5 * (1 + rng.random(size=(20, n)))
    want = np.std(rows @ replicates.T, axis=1, ddof=1)
    np.testing.assert_allclose(predictive_std(rows, factor), want, rtol=1e-6)


def test_too_few_rows_is_a_data_error():
    a, b, w = random_system(4, n=10, m=8)
    with pytest.raises(DataError, match="needs more than 10 rows"):
        anl_posterior(r_factor(a, b, w, chunks=1), 10, 0.0)
