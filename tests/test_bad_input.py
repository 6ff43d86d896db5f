"""The bad-input suite for the fit command: decks, command line, outputs, injection, silent wrong results.

Each case asserts the one error line `fitsnap_ext: error: <file>:<line>: [SECTION] key: ...`, exit status 1,
no output file, and (for the MPI cases) that every rank is out within the subprocess timeout. The data readers'
cases are in test_data_trust.py, the network's in test_network_trust.py, the properties command's in
test_properties_trust.py; docs/reliability.md lists them all.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from conftest import REPO, need_shared, run_cli
from fitsnap_ext.config import load_settings
from fitsnap_ext.ini import UNSAFE_CHARACTERS
from fitsnap_ext.errors import DeckError

DEMO = REPO / "input_files" / "in.demo"
OUTPUTS = ("Si_demo_pot*", "Si_demo_metrics*", "*.json", "*_files")


def demo_deck(tmp_path, replace=(), append=""):
    """in.demo (Si, 2J=6, its data in input_files/demo) copied to tmp_path with text replaced; no [PROPERTIES]."""
    text = DEMO.read_text().replace("dataPath = demo", f"dataPath = {REPO / 'input_files' / 'demo'}")
    text = text[:text.index("[PROPERTIES]")] if "[PROPERTIES]" in text else text
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "in.bad"
    path.write_text(text + append)
    return path


def line_of(path, start):
    return next(i for i, l in enumerate(path.read_text().splitlines(), 1) if l.startswith(start))


def assert_one_error(proc, tmp_path, *words):
    """Exit 1, exactly one `fitsnap_ext: error:` line holding `words`, no traceback, and no output written."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    errors = [l for l in proc.stderr.splitlines() if l.startswith("fitsnap_ext: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in errors[0], errors[0]
    written = [p.name for pattern in OUTPUTS for p in tmp_path.glob(pattern)]
    assert not written, written
    return errors[0]


def test_binary_deck_one_line(tmp_path):
    deck = tmp_path / "in.bin"
    deck.write_bytes(b"[BISPECTRUM]\ntype = Si\n\xff\xfe\x00garbage\n")
    proc = run_cli([deck], tmp_path, check=False)
    assert_one_error(proc, tmp_path, "in.bin:3:", "not a text deck")


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_override_cannot_inject_a_lammps_command(tmp_path, nprocs):
    """`-k OUTFILE potential $'pot\\nshell touch X\\n#'` would put a `shell` line into the .mod."""
    deck = demo_deck(tmp_path)
    proc = run_cli([deck, "-k", "OUTFILE", "potential", f"pot\nshell touch {tmp_path}/X\n#"], tmp_path,
                   nprocs=nprocs, timeout=60, check=False)
    assert_one_error(proc, tmp_path, "[OUTFILE] potential", "newline")
    assert not (tmp_path / "X").exists() and not list(tmp_path.glob("pot*"))


@pytest.mark.parametrize("section,old,new,key", [
    ("REFERENCE", "pair_style = zero 10.0", "pair_style = zero 10.0 ${x}", "pair_style"),
    ("REFERENCE", "pair_coeff = * *", "pair_coeff = * * & ", "pair_coeff"),
    ("OUTFILE", "potential = Si_demo_pot", "potential = Si demo pot", "potential"),
    ("OUTFILE", "potential = Si_demo_pot", "potential = Si'pot", "potential"),
    ("REFERENCE", "atom_style = atomic", "atom_style = atomic $x", "atom_style"),
])
def test_values_that_reach_lammps_are_validated(tmp_path, section, old, new, key):
    deck = demo_deck(tmp_path, [(old, new)])
    with pytest.raises(DeckError) as err:
        load_settings(deck)
    assert f"in.bad:{line_of(deck, new.split(' =')[0])}: [{section}] {key}:" in str(err.value)


@hyp_settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_any_potential_stem_is_safe_or_refused(tmp_path_factory, stem):
    """Whatever a user puts in `potential`, the .mod either gets one safe word or the deck is refused."""
    deck = demo_deck(tmp_path_factory.mktemp("h"))
    try:
        settings = load_settings(deck, [("OUTFILE", "potential", stem)])
    except DeckError as exc:
        assert "[OUTFILE] potential" in str(exc)
        return
    name = settings.output.potential
    assert not set(name) & UNSAFE_CHARACTERS and name.split() == [name] and name.isprintable()


@pytest.mark.parametrize("old,new,key,words", [
    ("radelem = 0.5", "radelem = -0.5", "radelem", "must be > 0"),
    ("rcutfac = 4.7", "rcutfac = 0", "rcutfac", "must be > 0"),
    ("rfac0 = 0.99363", "rfac0 = 1.5", "rfac0", "(0, 1]"),
    ("rmin0 = 0.0", "rmin0 = -0.1", "rmin0", ">= 0"),
    ("wj = 1.0", "wj = 0", "wj", "must be > 0"),
    ("type = Si", "type = Si Xx", "type", "unknown element 'Xx'"),
    ("twojmax = 6", "twojmax = 40", "twojmax", "above 20"),
    ("solver = SVD", "solver = SVD\nrcond = 0", "rcond", "(0, 1)"),
])
def test_ranges(tmp_path, old, new, key, words):
    deck = demo_deck(tmp_path, [(old, new), ("numTypes = 1\n", "")] if "Xx" in new else [(old, new)])
    with pytest.raises(DeckError) as err:
        load_settings(deck)
    message = str(err.value)
    assert f"in.bad:{line_of(deck, key)}:" in message and f"] {key}:" in message and words in message, message


def test_rank_deficient_fit_is_loud(tmp_path):
    """rcutfac = 0.01 leaves no neighbour inside the cutoff: one coefficient (the constant) is all the data
    determine; the log and the metrics say so."""
    deck = demo_deck(tmp_path, [("rcutfac = 4.7", "rcutfac = 0.01")])
    proc = run_cli([deck], tmp_path, timeout=120)
    assert re.search(r"WARNING: rank-deficient fit: the data determine 1 of 31 coefficients", proc.stdout), \
        proc.stdout
    assert "rank-deficient" in (tmp_path / "Si_demo_metrics.md").read_text()


def test_full_rank_fit_has_no_warning(tmp_path):
    proc = run_cli([demo_deck(tmp_path)], tmp_path, timeout=120)
    assert "rank 31 of 31" in proc.stdout and "WARNING" not in proc.stdout
    assert "rank-deficient" not in (tmp_path / "Si_demo_metrics.md").read_text()


@pytest.mark.parametrize("key,value,words", [
    ("metrics", "Si_demo_pot.mod", "[OUTFILE] metrics: 'Si_demo_pot.mod' is also a file of [OUTFILE] potential"),
    ("metrics", "m.csv", "[OUTFILE] metrics: 'm.csv' is also a file of [OUTFILE] metrics"),
])
def test_outputs_must_not_collide(tmp_path, key, value, words):
    deck = demo_deck(tmp_path, [("metrics = Si_demo_metrics.md", f"metrics = {value}")])
    with pytest.raises(DeckError) as err:
        load_settings(deck)
    assert words in str(err.value) and f"in.bad:{line_of(deck, 'metrics')}:" in str(err.value)


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_unwritable_output_refused_before_any_work(tmp_path, nprocs):
    """A path below a regular file cannot be created (root ignores chmod, not this)."""
    (tmp_path / "afile").write_text("x")
    deck = demo_deck(tmp_path, [("potential = Si_demo_pot", "potential = afile/Si_demo_pot")])
    proc = run_cli([deck], tmp_path, nprocs=nprocs, timeout=60, check=False)
    line = assert_one_error(proc, tmp_path, f"in.bad:{line_of(deck, 'potential')}: [OUTFILE] potential:",
                            "is not a folder")
    assert "descriptors" not in proc.stdout, "checked after the work"
    assert line


def test_existing_outputs_refused_without_overwrite(tmp_path):
    deck = demo_deck(tmp_path)
    (tmp_path / "Si_demo_pot.mod").write_text("keep me\n")
    proc = run_cli([deck], tmp_path, check=False)
    assert proc.returncode == 1 and "Si_demo_pot.mod" in proc.stderr and "--overwrite" in proc.stderr
    assert (tmp_path / "Si_demo_pot.mod").read_text() == "keep me\n"
    assert not (tmp_path / "Si_demo_pot.snapcoeff").exists()


def test_usage_errors_are_one_line_exit_1(tmp_path):
    for args in (["--bogus"], [], ["properties"], ["generate", "--upto", "x", "deck"]):
        proc = run_cli(args, tmp_path, check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("fitsnap_ext: error:"), \
            proc.stderr


def test_version(tmp_path):
    proc = run_cli(["--version"], tmp_path)
    assert re.fullmatch(r"fitsnap_ext \d+\.\d+\.\d+\S*\n", proc.stdout)


def test_stale_temp_files_are_removed(tmp_path):
    """A killed run leaves `.NAME.tmpPID`; the next write of the same output removes those of dead processes."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".Si_demo_pot.snapcoeff.tmp{dead}"
    live = tmp_path / f".Si_demo_pot.snapcoeff.tmp{os.getpid()}"
    stale.write_text("half")
    live.write_text("another run still writing")
    run_cli([demo_deck(tmp_path)], tmp_path, timeout=120)
    assert not stale.exists() and live.exists()


def test_fitsnap_per_atom_keys(tmp_path):
    """FitSNAP's network decks state bikflag/dgradflag/per_atom_energy: accepted where they agree."""
    net = need_shared("ta_fitsnap", "JSON") and REPO / "input_files" / "in.ta_nn"
    settings = load_settings(net)
    assert settings.network is not None and settings.network.hidden == (64, 64)
    assert any("dump_configs" in n for n in settings.notes)
    deck = demo_deck(tmp_path, [("quadraticflag = 0", "quadraticflag = 0\nbikflag = 1")])
    with pytest.raises(DeckError) as err:
        load_settings(deck)
    assert f"in.bad:{line_of(deck, 'bikflag')}: [BISPECTRUM] bikflag: per-atom descriptors are for networks" \
        in str(err.value)


def test_fitsnap_ta_network_deck_runs(tmp_path):
    """FitSNAP's own Ta_PyTorch_NN deck (data path changed only) fits; 2 epochs here to keep the suite short."""
    need_shared("ta_fitsnap", "JSON")
    proc = run_cli([REPO / "input_files" / "in.ta_nn", "-k", "PYTORCH", "num_epochs", "2"], tmp_path, timeout=300)
    assert "dump_configs = 1 is accepted but not written" in proc.stdout
    lines = [l for l in (tmp_path / "Ta_pot.mliap.model").read_text().splitlines() if l and l[0] != "#"]
    assert lines[0].split() == ["1", str(64 * 31 + 64 * 65 + 65)]  # 1 element; weights + biases of 30-64-64-1
    model = " ".join(lines).split()
    assert np.isfinite(float(model[-1]))


def test_unwritable_properties_out_refused_before_the_fit(tmp_path):
    """[PROPERTIES] out in a folder that cannot exist: refused before the fit, not after it."""
    (tmp_path / "afile").write_text("x")
    deck = demo_deck(tmp_path, append="\n[PROPERTIES]\nsystem = si\nproperties = eos\nquick = 1\n"
                                      "out = afile/props.json\n")
    proc = run_cli([deck], tmp_path, timeout=60, check=False)
    assert_one_error(proc, tmp_path, f"in.bad:{line_of(deck, 'out =')}: [PROPERTIES] out:", "not a folder")


@pytest.mark.mpi
def test_mpi_error_line_always_arrives(tmp_path):
    """Under mpirun the one line reaches stderr every time (it was lost in 6 of 16 runs): 6 runs of each kind."""
    deck = tmp_path / "in.bin"
    deck.write_bytes(b"\xff\xfe")
    (tmp_path / "afile").write_text("x")
    unwritable = demo_deck(tmp_path, [("potential = Si_demo_pot", "potential = afile/Si_demo_pot")])
    for _ in range(6):
        for args, words in (([deck], "not a text deck"), ([unwritable], "is not a folder")):
            proc = run_cli(args, tmp_path, nprocs=2, timeout=60, check=False)
            assert_one_error(proc, tmp_path, words)
