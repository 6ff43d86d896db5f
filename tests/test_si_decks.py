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
