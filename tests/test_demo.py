"""The README's first command works without ../shared, and 1 vs 2 MPI ranks give the same potential; the one-command
demo (scripts/demo.py, `make demo`) prints the teacher's values beside the fitted potential's."""
import json
import subprocess
import sys

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


def _demo(out, *args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=300)


def test_demo_script_prints_the_teacher_beside_the_fit(tmp_path):
    out = tmp_path / "demo"
    proc = _demo(out, "--properties", "eos,elastic")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    rows = {" ".join(l.split()[:3]): l.split() for l in proc.stdout.splitlines()
            if l.startswith(("lattice constant", "bulk modulus", "elastic constant"))}
    props = json.loads((out / "props.json").read_text())
    # columns: name (3 words), unit, SW's value, the fitted potential's, difference in %
    for name, key, sw, tol in (("lattice constant a", "lattice_constant_A", 5.4309, 0.005),
                               ("elastic constant C11", "C11_GPa", 151.4, 0.08),
                               ("elastic constant C12", "C12_GPa", 76.4, 0.08),
                               ("elastic constant C44", "C44_GPa", 56.4, 0.08)):
        sw_shown, fit_shown, diff = (float(x) for x in rows[name][4:7])
        assert sw_shown == sw
        assert fit_shown == pytest.approx(props[key], abs=0.06) and fit_shown == pytest.approx(sw, rel=tol)
        assert diff == pytest.approx(100 * (props[key] - sw) / sw, abs=0.01)
    assert "201 silicon configurations" in proc.stdout
    assert (out / "demo_vs_teacher.png").stat().st_size > 10_000
    assert {r["property"] for r in json.loads((out / "props_errors.json").read_text())["rows"]} >= {
        "lattice_constant_A", "C11_GPa", "C12_GPa", "C44_GPa"}
    # a second run starts afresh in the demo's own folder; a folder the demo did not write is refused, untouched
    (out / "Si_demo_pot.mod").write_text("stale")
    assert _demo(out, "--properties", "eos").returncode == 0 and "pair_style" in (out / "Si_demo_pot.mod").read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    proc = _demo(mine)
    assert proc.returncode == 1 and "holds files the demo did not write" in proc.stderr
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
