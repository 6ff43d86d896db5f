"""The README's first command works without ../shared, and 1 vs 2 MPI ranks give the same potential."""
import numpy as np
import pytest

from conftest import REPO, read_snapcoeff, run_cli


def _demo_deck(tmp_path):
    """in.demo without its [PROPERTIES] section, data path pointing at the repo's demo set."""
    text = (REPO / "input_files" / "in.demo").read_text()
    text = text[:text.index("[PROPERTIES]")].replace("dataPath = demo", f"dataPath = {REPO / 'input_files' / 'demo'}")
    deck = tmp_path / "in.demo"
    deck.write_text(text)
    return deck


@pytest.mark.mpi
def test_demo_serial_equals_two_ranks(tmp_path):
    deck = _demo_deck(tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    run_cli([deck], tmp_path / "one")
    run_cli([deck], tmp_path / "two", nprocs=2)
    a = read_snapcoeff(tmp_path / "one" / "Si_demo_pot.snapcoeff")
    b = read_snapcoeff(tmp_path / "two" / "Si_demo_pot.snapcoeff")
    assert a.shape == (31,)
    assert np.max(np.abs(a - b) / np.abs(a)) < 1e-10
    one, two = ((tmp_path / d / "Si_demo_metrics.csv").read_text().splitlines()[1:] for d in ("one", "two"))
    assert [r.split(",")[:5] for r in one] == [r.split(",")[:5] for r in two]
    np.testing.assert_allclose([[float(x) for x in r.split(",")[5:]] for r in one],
                               [[float(x) for x in r.split(",")[5:]] for r in two], rtol=1e-9)


def test_demo_deck_as_shipped_fits_and_runs_properties(tmp_path):
    """The README's first command: fit + quick EOS/elastic of the fitted SNAP; SW-taught values come back."""
    run_cli([REPO / "input_files" / "in.demo"], tmp_path, timeout=300)
    import json

    props = json.loads((tmp_path / "Si_demo_pot_props.json").read_text())
    # the teacher is Stillinger-Weber: a = 5.431 Å, E = -4.3366 eV/atom, B = 101.4 GPa (Stillinger & Weber 1985)
    assert props["lattice_constant_A"] == pytest.approx(5.431, abs=0.02)
    assert props["energy_per_atom_eV"] == pytest.approx(-4.3366, abs=0.01)
    assert props["bulk_modulus_GPa"] == pytest.approx(101.4, rel=0.08)
    rows = {tuple(r.split(",")[:3]): r.split(",") for r in (tmp_path / "Si_demo_metrics.csv").read_text().splitlines()}
    assert float(rows[("*ALL", "Test", "Force")][5]) < 0.25   # eV/Å: 2J=6 linear SNAP of SW Si incl. liquid
    assert float(rows[("*ALL", "Test", "Energy")][5]) < 0.01  # eV/atom
