"""[SOLVER] solver = BOOTSTRAP: the SVD fit plus `nboot` SVD fits to resamples of the training configurations.

Checked against known answers: every replicate equals numpy's lstsq on the dumped rows with the draw's weights
(1 and 2 ranks); on synthetic data whose noise is shared by the rows of a configuration (as a frame's force rows
share its model error), the bootstrap covariance recovers the exact covariance of the least-squares estimate, which
ANL (independent rows) under-states; predict(return_std=True) is sqrt(aᵀΣa) with Σ the replicates' covariance."""
import numpy as np
import pandas as pd
import pytest

import fitsnap_ext as fx
from conftest import DUMP_KEYS, REPO, read_dumped_rows, read_snapcoeff, run_cli
from fitsnap_ext.errors import DeckError

DEMO = REPO / "input_files" / "in.demo"
NBOOT, NSAM = 12, 3
KEYS = ["-k", "SOLVER", "solver", "BOOTSTRAP", "-k", "SOLVER", "nboot", str(NBOOT), "-k", "SOLVER", "nsam",
        str(NSAM), "-k", "PROPERTIES", "properties", "eos"]


@pytest.fixture(scope="module")
def boot_fit(tmp_path_factory):
    work = tmp_path_factory.mktemp("boot")
    run_cli([DEMO, *KEYS, *DUMP_KEYS], work, timeout=300)
    return work


def numpy_replicates(folder, nboot: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(SVD fit, nboot replicates) by numpy's lstsq on the dumped rows: configurations in deck order, the training
    ones drawn with replacement by default_rng(seed).multinomial, a row's weight times √(times drawn)."""
    a, b, w = read_dumped_rows(folder)
    df = pd.read_pickle(folder / "FitSNAP.df")
    config = pd.factorize(df["Groups"].astype(str) + "/" + df["Configs"].astype(str))[0]
    train = ~df["Testing"].to_numpy(bool)
    train_configs = np.unique(config[train])
    position = np.searchsorted(train_configs, config[train])

    def lstsq(weights):
        keep = weights > 0
        return np.linalg.lstsq(weights[keep, None] * a[train][keep], weights[keep] * b[train][keep], rcond=1e-13)[0]

    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(nboot):
        counts = rng.multinomial(len(train_configs), np.full(len(train_configs), 1.0 / len(train_configs)))
        replicates.append(lstsq(w[train] * np.sqrt(counts[position])))
    return lstsq(w[train]), np.array(replicates)


def test_replicates_are_svd_fits_to_resampled_configurations(boot_fit):
    mean, replicates = numpy_replicates(boot_fit, NBOOT)
    coef = read_snapcoeff(boot_fit / "Si_demo_pot.snapcoeff")
    assert np.abs(coef - mean).max() <= 1e-8 * np.abs(mean).max()       # the deployed potential is the SVD fit
    for k in range(NSAM):                                               # the coefficient sets: the first replicates
        sample = read_snapcoeff(boot_fit / f"Si_demo_pot.sample{k}.snapcoeff")
        assert np.abs(sample - replicates[k]).max() <= 1e-8 * np.abs(replicates[k]).max()
        assert np.abs(sample - coef).max() > 1e-6 * np.abs(coef).max()  # and they differ from it
    cov = np.load(boot_fit / "Si_demo_pot.covariance.npy")
    expected = np.cov(replicates, rowvar=False)
    assert np.abs(cov - expected).max() <= 1e-7 * np.abs(expected).max()
    table = pd.read_csv(boot_fit / "Si_demo_metrics_calibration.csv")
    assert set(table.quantity) == {"Energy", "Force"} and (table.rms_sigma > 0).all()


@pytest.mark.mpi
def test_two_ranks_same_replicates(boot_fit, tmp_path):
    run_cli([DEMO, *KEYS], tmp_path, nprocs=2, timeout=300)
    serial, parallel = (np.load(f / "Si_demo_pot.covariance.npy") for f in (boot_fit, tmp_path))
    assert np.abs(serial - parallel).max() <= 1e-9 * np.abs(serial).max()
    for k in range(NSAM):
        assert np.allclose(read_snapcoeff(boot_fit / f"Si_demo_pot.sample{k}.snapcoeff"),
                           read_snapcoeff(tmp_path / f"Si_demo_pot.sample{k}.snapcoeff"), rtol=1e-8, atol=1e-12)


def test_bootstrap_recovers_the_covariance_of_configuration_correlated_noise():
    """y = Xβ + u_c + ε: u_c shared by the 5 rows of configuration c (sd 1), ε per row (sd 0.2), rows of a
    configuration alike. The exact covariance of the least-squares β̂ is (XᵀX)⁻¹ XᵀΩX (XᵀX)⁻¹, Ω block-diagonal;
    the bootstrap over configurations estimates it from one data set, ANL's σ̂²(XᵀX)⁻¹ (rows independent) falls
    short by about the configuration size."""
    from fitsnap_ext.descriptors import Rows
    from fitsnap_ext.models.linear import LinearSolver

    rng = np.random.default_rng(7)
    n_configs, per, ncols = 800, 5, 4
    base = rng.normal(size=(n_configs, ncols))
    x = np.repeat(base, per, axis=0) + 0.3 * rng.normal(size=(n_configs * per, ncols))
    entry = np.repeat(np.arange(n_configs), per)
    y = x @ np.arange(1.0, ncols + 1) + rng.normal(size=n_configs)[entry] + 0.2 * rng.normal(size=len(entry))
    rows = Rows(x, y, np.ones(len(y)), np.ones(len(y), np.int8), entry)
    boot = LinearSolver("BOOTSTRAP", nboot=1500, seed=3).fit(rows)
    anl = LinearSolver("ANL").fit(rows)
    xtx_inv = np.linalg.inv(x.T @ x)
    omega_x = sum(np.outer(s, s) for s in (x[entry == c].sum(axis=0) for c in range(n_configs))) \
        + 0.2 ** 2 * x.T @ x                                   # XᵀΩX: Ω = 1 within a configuration + 0.04 I
    exact = xtx_inv @ omega_x @ xtx_inv
    ratio = np.diag(boot.covariance_) / np.diag(exact)
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
    assert np.all(np.diag(anl.covariance_) / np.diag(exact) < 0.4)
    assert np.allclose(boot.coef_, anl.coef_, rtol=1e-8)              # both means are the least-squares fit


def test_predict_std_is_the_replicates_spread():
    """return_std: σ of a frame's energy is the standard deviation of its energy over the replicates."""
    from fitsnap_ext.data.dataset import Entry
    from fitsnap_ext.descriptors import SnapCalculator

    frames = fx.read_frames(REPO / "input_files" / "demo" / "strain_rattle.xyz", stress_unit="bar")
    model = fx.LinearSNAP(fx.load_deck(DEMO), solver="BOOTSTRAP", nboot=8, nsam=8).fit(frames[:30])
    _, _, _, e_std, _ = model.predict(frames[30:31], return_std=True)
    calc = SnapCalculator(model.settings_)
    try:
        design, _, _ = calc.model_rows(Entry(frames[30], False, 1, 1, 1, 0))
    finally:
        calc.close()
    assert e_std[0] == pytest.approx(np.std(model.samples_ @ design[0], ddof=1), rel=1e-8)


def test_bootstrap_keys_are_validated():
    with pytest.raises(DeckError, match=r"\[SOLVER\] nboot: is a key of solver = BOOTSTRAP"):
        fx.load_deck(DEMO, [("SOLVER", "nboot", "10")])
    with pytest.raises(DeckError, match=r"\[SOLVER\] nsam: must be <= nboot \(10\)"):
        fx.load_deck(DEMO, [("SOLVER", "solver", "BOOTSTRAP"), ("SOLVER", "nboot", "10"), ("SOLVER", "nsam", "11")])
    with pytest.raises(DeckError, match=r"\[SOLVER\] nboot: must be >= 2"):
        fx.load_deck(DEMO, [("SOLVER", "solver", "BOOTSTRAP"), ("SOLVER", "nboot", "1")])
    with pytest.raises(DeckError, match=r"\[SOLVER\] cov_nugget: is a key of solver = ANL"):
        fx.load_deck(DEMO, [("SOLVER", "solver", "BOOTSTRAP"), ("SOLVER", "cov_nugget", "1e-6")])
