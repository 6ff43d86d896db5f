"""Bad decks and data: one clear error naming file/line/key, non-zero exit, no hang, nothing written."""
import json
import shutil

import pytest

from conftest import REPO, need_shared, run_cli
from fitsnap_ext.config import load_settings
from fitsnap_ext.errors import DeckError

TA_DECK = REPO / "input_files" / "in.ta"


def _deck(tmp_path, text):
    path = tmp_path / "in.bad"
    path.write_text(text)
    return path


def test_unknown_section_names_file_and_line(tmp_path):
    deck = _deck(tmp_path, TA_DECK.read_text() + "\n[BOGUS]\nx = 1\n")
    with pytest.raises(DeckError) as err:
        load_settings(deck)
    n = len(TA_DECK.read_text().splitlines()) + 3
    assert f"in.bad:{n}" in str(err.value) and "[BOGUS]" in str(err.value)


def test_unknown_key_names_line_and_key(tmp_path):
    text = TA_DECK.read_text().replace("rfac0 = 0.99363", "rfac0 = 0.99363\nrfac1 = 2")
    with pytest.raises(DeckError) as err:
        load_settings(_deck(tmp_path, text))
    line = text.splitlines().index("rfac1 = 2") + 1
    assert f"in.bad:{line}" in str(err.value) and "[BISPECTRUM] rfac1" in str(err.value)


@pytest.mark.parametrize("old,new,words", [
    ("twojmax = 6", "twojmax = six", "'six' is not an integer"),
    ("rcutfac = 4.67637", "rcutfac = nan", "not a finite number"),
    ("solver = SVD", "solver = MAGIC", "unknown solver"),
    ("[BISPECTRUM]", "[BISPECTRUMX]", "missing section [BISPECTRUM]"),
])
def test_bad_values(tmp_path, old, new, words):
    with pytest.raises(DeckError, match=None) as err:
        load_settings(_deck(tmp_path, TA_DECK.read_text().replace(old, new)))
    assert words in str(err.value)


def test_xyz_requires_declared_stress_unit(tmp_path):
    text = TA_DECK.read_text().replace("scraper = JSON", "scraper = XYZ")
    with pytest.raises(DeckError) as err:
        load_settings(_deck(tmp_path, text))
    assert "stress_unit" in str(err.value)


def test_override_is_validated(tmp_path):
    with pytest.raises(DeckError) as err:
        load_settings(TA_DECK, [("BISPECTRUM", "twojmax", "x")])
    assert "twojmax" in str(err.value)


def _dataset(tmp_path, bad: dict | None, bad_name="Bad"):
    """Two Ta groups plus, optionally, a group with one bad configuration."""
    src = need_shared("ta_fitsnap", "JSON")
    data = tmp_path / "JSON"
    for group in ("Displaced_BCC", "Displaced_FCC"):
        shutil.copytree(src / group, data / group)
    groups = "Displaced_BCC = 1.0 0.0 100 1 1e-8\nDisplaced_FCC = 1.0 0.0 100 1 1e-8\n"
    if bad is not None:
        (data / bad_name).mkdir()
        base = json.loads((src / "Displaced_BCC" / "BCC_1.json").read_text().split("\n", 1)[1])
        base["Dataset"]["Data"][0].update(bad)
        (data / bad_name / "bad.json").write_text(json.dumps(base))
        groups += f"{bad_name} = 1.0 0.0 100 1 1e-8\n"
    text = TA_DECK.read_text()
    text = text.replace("dataPath = ../../shared/data/ta_fitsnap/JSON", "dataPath = JSON")
    text = text[:text.index("Displaced_A15 =")] + groups + "\n[MEMORY]\noverride = 0\n"
    return _deck(tmp_path, text)


def _assert_clean_failure(proc, tmp_path, *words):
    assert proc.returncode != 0
    errors = [l for l in proc.stderr.splitlines() if l.startswith("fitsnap_ext: error:")]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], errors[0]
    assert not list(tmp_path.glob("Ta_pot*")) and not list(tmp_path.glob("Ta_metrics*"))


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("bad,words", [
    ({"Forces": None}, ["bad.json", "forces"]),
    ({"AtomTypes": ["Ta"] * 53 + ["W"]}, ["bad.json", "W"]),
    ({"NumAtoms": 3}, ["bad.json", "NumAtoms"]),
])
def test_bad_data_fails_cleanly(tmp_path, nprocs, bad, words):
    deck = _dataset(tmp_path, bad)
    if bad == {"Forces": None}:
        text = (tmp_path / "JSON" / "Bad" / "bad.json").read_text().replace('"Forces": null, ', "")
        text = text.replace('"Forces": null', '"Forces": [[NaN, 0, 0]]')
        (tmp_path / "JSON" / "Bad" / "bad.json").write_text(text)
    proc = run_cli([deck], tmp_path, nprocs=nprocs, timeout=120, check=False)
    _assert_clean_failure(proc, tmp_path, *words)


def test_missing_and_empty_group(tmp_path):
    deck = _dataset(tmp_path, None)
    text = deck.read_text().replace("Displaced_FCC = ", "Nowhere = ")
    deck.write_text(text)
    proc = run_cli([deck], tmp_path, check=False)
    _assert_clean_failure(proc, tmp_path, "Nowhere", "not found")
    (tmp_path / "JSON" / "Nowhere").mkdir()
    proc = run_cli([deck], tmp_path, check=False)
    _assert_clean_failure(proc, tmp_path, "Nowhere", "no configurations")


@pytest.mark.mpi
def test_lammps_error_on_one_rank_does_not_hang(tmp_path):
    """A configuration so dense that LAMMPS' neighbor list overflows fails on the rank that holds it;
    the other rank must not hang, and the message names the file."""
    cell = [[0.4, 0, 0], [0, 0.4, 0], [0, 0, 0.4]]
    deck = _dataset(tmp_path, {"Lattice": cell, "Positions": [[0.0, 0.0, 0.0]], "Forces": [[0, 0, 0]],
                               "AtomTypes": ["Ta"], "NumAtoms": 1})
    proc = run_cli([deck], tmp_path, nprocs=2, timeout=120, check=False)
    _assert_clean_failure(proc, tmp_path, "bad.json", "LAMMPS")
