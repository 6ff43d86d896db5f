"""[SOLVER] solver = ANL (FitSNAP's Bayesian linear fit) wired through the pipeline: the posterior from the TSQR R
factor equals FitSNAP's full-matrix formula on the dumped rows, on 1 and 2 ranks; sampled coefficient sets are
deployable potentials; predict(return_std=True) is sqrt(aᵀΣa); the calibration table is calibration.py's numbers
on the test rows."""
import numpy as np
import pandas as pd
import pytest

import fitsnap_ext as fx
from conftest import DUMP_KEYS, REPO, read_dumped_rows, read_snapcoeff, run_cli
from fitsnap_ext import calibration
from fitsnap_ext.errors import DeckError, FitsnapError

DEMO = REPO / "input_files" / "in.demo"
KEYS = ["-k", "SOLVER", "solver", "ANL", "-k", "SOLVER", "nsam", "4", "-k", "SOLVER", "cov_nugget", "1e-6",
        "-k", "PROPERTIES", "properties", "eos"]


@pytest.fixture(scope="module")
def anl_fit(tmp_path_factory):
    work = tmp_path_factory.mktemp("anl")
    run_cli([DEMO, *KEYS, *DUMP_KEYS], work, timeout=300)
    return work


def test_posterior_equals_fitsnaps_formula(anl_fit):
    """FitSNAP's anl.py on the same rows: pinv(AwᵀAw + nugget·I), mean = P·Awᵀbw, σ̂² = |r|²/(npt − nbas − 2)."""
    a, b, w = read_dumped_rows(anl_fit)
    train = ~pd.read_pickle(anl_fit / "FitSNAP.df")["Testing"].to_numpy(bool)
    aw, bw = w[train, None] * a[train], w[train] * b[train]
    p = np.linalg.pinv(aw.T @ aw + 1e-6 * np.eye(a.shape[1]))
    p = 0.5 * (p + p.T)
    mean = p @ aw.T @ bw
    res = bw - aw @ mean
    sigma2 = (res @ res / 2) / ((len(bw) - a.shape[1]) / 2 - 1)
    coef = read_snapcoeff(anl_fit / "Si_demo_pot.snapcoeff")
    assert np.abs(coef - mean).max() <= 1e-8 * np.abs(mean).max()
    cov = np.load(anl_fit / "Si_demo_pot.covariance.npy")
    assert np.abs(cov - sigma2 * p).max() <= 1e-7 * np.abs(sigma2 * p).max()


@pytest.mark.mpi
def test_two_ranks_same_posterior(anl_fit, tmp_path):
    run_cli([DEMO, *KEYS], tmp_path, nprocs=2, timeout=300)
    for name in ("Si_demo_pot.covariance.npy",):
        serial, parallel = np.load(anl_fit / name), np.load(tmp_path / name)
        assert np.abs(serial - parallel).max() <= 1e-10 * np.abs(serial).max()
    for k in range(4):  # the same seeded draws
        assert np.allclose(read_snapcoeff(anl_fit / f"Si_demo_pot.sample{k}.snapcoeff"),
                           read_snapcoeff(tmp_path / f"Si_demo_pot.sample{k}.snapcoeff"), rtol=1e-8, atol=1e-12)


def test_samples_are_deployable_and_spread_as_the_posterior(anl_fit):
    """Each sample runs in LAMMPS through its own .mod; the samples' energies of one frame scatter about the mean's
    as the predictive σ says (4 draws: their standard deviation within the 99.8 % band of a χ with 3 degrees)."""
    frame = fx.read_frames(REPO / "input_files" / "demo" / "md_1200K.xyz", stress_unit="bar")[-1]
    atoms = frame.to_atoms()
    atoms.calc = fx.calculator(anl_fit / "Si_demo_pot.mod", ["Si"])
    e_mean = atoms.get_potential_energy()
    energies = []
    for k in range(4):
        atoms.calc = fx.calculator(anl_fit / f"Si_demo_pot.sample{k}.mod", ["Si"])
        energies.append(atoms.get_potential_energy())
    settings = fx.load_deck(DEMO, [("SOLVER", "solver", "ANL"), ("SOLVER", "cov_nugget", "1e-6")])
    model = fx.LinearSNAP.from_settings(settings).fit(None)  # the deck's own data, as the command line fits
    energy, _, _, sigma, _ = model.predict([frame], return_std=True)
    assert energy[0] == pytest.approx(e_mean, abs=1e-8)
    spread = np.std(energies, ddof=1)
    assert 0.05 * sigma[0] < spread < 2.5 * sigma[0], (spread, sigma[0])
    assert abs(np.mean(energies) - e_mean) < 4 * sigma[0]


def test_predict_std_is_the_quadratic_form():
    """predict(return_std=True): energy σ = sqrt(aᵀΣa) of the frame's total-energy design row; per-atom force σ =
    sqrt of the summed variances of its three components."""
    from fitsnap_ext.data.dataset import Entry
    from fitsnap_ext.descriptors import SnapCalculator

    frames = fx.read_frames(REPO / "input_files" / "demo" / "strain_rattle.xyz", stress_unit="bar")
    model = fx.LinearSNAP(fx.load_deck(DEMO), solver="ANL").fit(frames[:30])
    energies, forces, stresses, e_std, f_std = model.predict(frames[30:32], return_std=True)
    calc = SnapCalculator(model.settings_)
    try:
        design, _, _ = calc.model_rows(Entry(frames[30], False, 1, 1, 1, 0))
    finally:
        calc.close()
    n = frames[30].natoms
    cov = model.covariance_
    assert e_std[0] == pytest.approx(np.sqrt(design[0] @ cov @ design[0]), rel=1e-10)
    var = np.einsum("ij,jk,ik->i", design[1:1 + 3 * n], cov, design[1:1 + 3 * n]).reshape(n, 3).sum(1)
    assert np.allclose(f_std[0], np.sqrt(var), rtol=1e-10)
    with pytest.raises(FitsnapError, match="solver = ANL"):
        fx.LinearSNAP(fx.load_deck(DEMO)).fit(frames[:30]).predict(frames[30:31], return_std=True)


def test_calibration_table_is_calibration_py_on_the_test_rows(anl_fit):
    a, b, w = read_dumped_rows(anl_fit)
    df = pd.read_pickle(anl_fit / "FitSNAP.df")
    coef = read_snapcoeff(anl_fit / "Si_demo_pot.snapcoeff")
    cov = np.load(anl_fit / "Si_demo_pot.covariance.npy")
    table = pd.read_csv(anl_fit / "Si_demo_metrics_calibration.csv")
    test, kind = df["Testing"].to_numpy(bool), df["Row_Type"].to_numpy()
    for quantity in ("Energy", "Force"):
        sel = test & (kind == quantity) & (w > 0)
        errors, sigma = a[sel] @ coef - b[sel], np.sqrt(np.einsum("ij,jk,ik->i", a[sel], cov, a[sel]))
        # left out: rows whose σ is round-off — design rows zero to round-off (the ideal crystals' forces)
        fixed = ~calibration.informative(sigma, a[sel])
        assert np.abs(a[sel][fixed]).max(initial=0.0) < 1e-9 * np.abs(a[sel]).max()
        errors, sigma = errors[~fixed], sigma[~fixed]
        raw = table[(table.quantity == quantity) & (table.scale == 1.0)].iloc[0]
        assert raw["count"] == len(errors) > 0.9 * sel.sum()
        assert raw["within_1sigma"] == pytest.approx(calibration.coverage(errors, sigma, 1.0), abs=1e-12)
        assert raw["nll"] == pytest.approx(calibration.gaussian_nll(errors, sigma), rel=1e-6)
        scaled = table[(table.quantity == quantity) & (table.scale != 1.0)].iloc[0]
        assert scaled["within_1sigma"] == pytest.approx(calibration.coverage(errors, scaled["scale"] * sigma, 1.0),
                                                        abs=1e-12)
    text = (anl_fit / "Si_demo_metrics.md").read_text()
    assert "## Calibration of the predictive σ (test split)" in text and "fitted on the training rows" in text


def test_anl_keys_are_validated():
    with pytest.raises(DeckError, match=r"\[SOLVER\] nsam: is a key of solver = ANL or BOOTSTRAP"):
        fx.load_deck(DEMO, [("SOLVER", "nsam", "3")])
    with pytest.raises(DeckError, match=r"\[SOLVER\] cov_nugget: must be >= 0"):
        fx.load_deck(DEMO, [("SOLVER", "solver", "ANL"), ("SOLVER", "cov_nugget", "-1")])
