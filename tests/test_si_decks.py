"""The shipped Si decks run on the shared DFT data and give errors typical of a 2J=8 linear SNAP."""
import pytest

from conftest import REPO, need_shared, run_cli


def _errors(csv_path):
    rows = csv_path.read_text().splitlines()[1:]
    return {tuple(r.split(",")[:3]): (int(r.split(",")[4]), float(r.split(",")[5])) for r in rows}


@pytest.mark.slow
def test_si_paper_deck(tmp_path):
    need_shared("si_paper")
    run_cli([REPO / "input_files" / "in.si"], tmp_path, nprocs=2, timeout=900)
    e = _errors(tmp_path / "Si_metrics.csv")
    assert e[("*ALL", "Train", "Energy")][0] + e[("*ALL", "Test", "Energy")][0] == 50 + 600 + 528
    assert e[("*ALL", "Test", "Energy")][1] < 0.03    # eV/atom
    assert e[("*ALL", "Test", "Force")][1] < 0.35     # eV/Å (liquid and 1500 K solid)


def test_si_zuo_deck(tmp_path):
    need_shared("si_zuo")
    run_cli([REPO / "input_files" / "in.si_zuo"], tmp_path, timeout=600)
    e = _errors(tmp_path / "Si_zuo_metrics.csv")
    assert e[("*ALL", "Train", "Energy")][0] + e[("*ALL", "Test", "Energy")][0] == 214
    assert e[("*ALL", "Test", "Energy")][1] < 0.03
    assert e[("*ALL", "Test", "Force")][1] < 0.2


def test_si_nn_ensemble_deck_is_si_nn_plus_two_keys():
    """in.si_nn_ensemble (issue 20's recipe) differs from in.si_nn in ensemble_size, validation_fraction and the
    output names only: the recipe cannot drift from the network it is measured against."""
    import dataclasses

    from fitsnap_ext.config import load_settings

    single, ensemble = (load_settings(REPO / "input_files" / name) for name in ("in.si_nn", "in.si_nn_ensemble"))
    assert (ensemble.network.ensemble_size, ensemble.network.validation_fraction) == (4, 0.0)
    assert dataclasses.replace(ensemble.network, ensemble_size=1, validation_fraction=0.1,
                               save_state_output=single.network.save_state_output) == single.network
    for part in ("bispectrum", "calculator", "solver", "scraper", "data_path", "groups", "reference", "eshift"):
        assert getattr(ensemble, part) == getattr(single, part), part


@pytest.mark.slow
def test_si_nn_ensemble_recipe_reaches_the_force_target(tmp_path):
    """The recipe on the decks' own split (seed 7): test force MAE ≤ 0.065 eV/Å, issue 20's target
    (benchmarks/results/bench_zuo_ensemble.md: 0.0610 on this split; one network of in.si_nn 0.0672)."""
    need_shared("si_zuo")
    run_cli([REPO / "input_files" / "in.si_nn_ensemble"], tmp_path, nprocs=2, timeout=1200)
    e = _errors(tmp_path / "Si_nn_ens_metrics.csv")
    assert e[("*ALL", "Test", "Force")][1] <= 0.065
    assert (tmp_path / "Si_nn_ens_pot.member3.mod").exists()
