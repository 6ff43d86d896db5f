"""Generator: resume after a real SIGKILL gives the same bytes, no mixing of labelers, samplers, deck errors."""
import os
import shutil

import numpy as np
import pytest

import mpi4py.MPI  # noqa: F401  (before lammps)

from conftest import SW_LABELER, run_generate, write_gen_deck
from fitsnap_ext.data.extxyz import frame_to_text, read_extxyz
from fitsnap_ext.errors import DeckError

SMALL_GROUPS = """
[GROUP strained]
sampler = strain_rattle
structure = si_diamond
strain_mode = random
strain = 0.03
rattle = 0.1
n_frames = 6

[GROUP vol]
sampler = strain_rattle
structure = si_diamond_primitive
strain_mode = isotropic_grid
strain = 0.05
n_frames = 3

[GROUP md]
sampler = lammps_md
structure = si_diamond
temperatures = 600 1500
equilibration = 100
interval = 20
n_frames = 3

[GROUP amd]
sampler = ase_md
structure = si_diamond_primitive
supercell = 2 1 1
temperatures = 900
timestep = 0.002
equilibration = 10
interval = 5
n_frames = 2
"""


def _deck(tmp_path, name="gen.in", output="out", labeler=SW_LABELER, groups=SMALL_GROUPS, extra=""):
    """This file's decks: the small groups above unless others are given."""
    return write_gen_deck(tmp_path, name, output, labeler, groups, extra)


def _files(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder)) if not f.startswith(".")}


def test_resume_after_kill_gives_identical_files(tmp_path):
    ref = _deck(tmp_path, "ref.in", "ref")
    r = run_generate(ref)
    assert r.returncode == 0, r.stderr
    want = _files(tmp_path / "ref")
    assert set(want) == {"strained.xyz", "vol.xyz", "md.xyz", "amd.xyz"}
    assert "ETA" in r.stdout and "s/config" in r.stdout

    deck = _deck(tmp_path, "gen.in", "out")
    # killed (SIGKILL, no cleanup) after 4 frames, then after 3 more of the resumed run
    for k, expect_frames in ((4, 4), (3, 7)):
        r = run_generate(deck, kill_after=k)
        assert r.returncode == -9, (r.returncode, r.stderr)
        got = _files(tmp_path / "out")
        n = sum(v.count(b"config_id=") for v in got.values())
        assert n == expect_frames
    # a torn tail as a kill in the middle of a write would leave: half a frame at the end of a file
    md = read_extxyz(tmp_path / "ref" / "md.xyz", "bar")
    torn = frame_to_text(md[0], {"labeler": "lammps"}).encode()
    with open(tmp_path / "out" / "strained.xyz", "ab") as fh:
        fh.write(torn[: len(torn) // 2])
    r = run_generate(deck)
    assert r.returncode == 0, r.stderr
    assert "dropped a torn trailing frame" in r.stdout
    assert _files(tmp_path / "out") == want  # byte for byte
    # a rerun of a complete set does nothing
    r = run_generate(deck)
    assert r.returncode == 0 and "0 configurations to label" in r.stdout
    assert _files(tmp_path / "out") == want

    # no duplicates, ids in order, labels present, header recorded
    frames = read_extxyz(tmp_path / "out" / "md.xyz", "bar")
    assert [f.info["config_id"] for f in frames] == [f"md:{i}" for i in range(6)]
    assert [f.info["temperature"] for f in frames] == [600.0] * 3 + [1500.0] * 3
    assert all(f.info["labeler"] == "lammps" for f in frames)
    assert all(f.forces.shape == (8, 3) and f.stress.shape == (3, 3) for f in frames)


def test_groups_option_labels_a_subset_with_the_same_files(tmp_path):
    """--groups: passes over subsets of the groups give the files of one full run; a group's input that does not
    exist yet (MD snapshots still being sampled) does not stop the others; an unknown name is one clear error."""
    ref = _deck(tmp_path, "ref.in", "ref")
    assert run_generate(ref).returncode == 0
    deck = _deck(tmp_path, "gen.in", "out", groups=SMALL_GROUPS + "\n[GROUP later]\nsampler = file\n"
                                                                  "structure = not_yet.xyz\nn_frames = 2\n")
    for subset in ("vol,md", "strained,amd"):
        r = run_generate(deck, args=["--groups", subset])
        assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")
    r = run_generate(deck, args=["--groups", "vol,volume"])
    assert r.returncode == 1 and "--groups volume: no such [GROUP]" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.mpi
def test_mpirun_gives_the_same_files(tmp_path):
    ref = _deck(tmp_path, "ref.in", "ref")
    assert run_generate(ref).returncode == 0
    deck = _deck(tmp_path, "gen.in", "out")
    r = run_generate(deck, mpi=2)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "on 2 rank(s)" in r.stdout
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")


def test_refuses_other_labeler_and_extends(tmp_path):
    deck = _deck(tmp_path)
    assert run_generate(deck).returncode == 0
    before = _files(tmp_path / "out")
    other = SW_LABELER.replace("pair_style = sw", "pair_style = tersoff").replace("Si.sw", "Si.tersoff")
    deck2 = _deck(tmp_path, "gen2.in", labeler=other)
    r = run_generate(deck2)
    assert r.returncode == 1
    assert "refusing to append" in r.stderr and "labeler_settings" in r.stderr and "strained.xyz" in r.stderr
    assert _files(tmp_path / "out") == before
    # other sampler settings for the same ids are refused too
    deck3 = _deck(tmp_path, "gen3.in", groups=SMALL_GROUPS.replace("rattle = 0.1", "rattle = 0.2"))
    r = run_generate(deck3)
    assert r.returncode == 1 and "sampler_settings" in r.stderr
    # raising n_frames of a random-strain group extends it (the first frames are unchanged)
    deck4 = _deck(tmp_path, "gen4.in", groups=SMALL_GROUPS.replace("n_frames = 6", "n_frames = 8"))
    r = run_generate(deck4)
    assert r.returncode == 0, r.stderr
    after = (tmp_path / "out" / "strained.xyz").read_bytes()
    assert after.startswith(before["strained.xyz"]) and after.count(b"config_id=") == 8


def test_time_limit_stops_cleanly(tmp_path):
    deck = _deck(tmp_path, extra="time_limit = 1e-9")
    r = run_generate(deck)
    assert r.returncode == 75 and "rerun" in r.stdout
    got = _files(tmp_path / "out")
    assert sum(v.count(b"config_id=") for v in got.values()) == 1


def test_labels_match_lammps_and_physics(tmp_path):
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    deck = load_deck(_deck(tmp_path))
    deck.generate.progress = False
    assert run(deck) == 0
    vol = read_extxyz(tmp_path / "out" / "vol.xyz", "bar")
    # isotropic grid -5 %, 0, +5 % on the 2-atom cell: compressed -> positive pressure, stretched -> negative
    p = [np.trace(f.stress) / 3 for f in vol]
    assert p[0] > 0 > p[2]
    assert vol[1].energy / 2 == pytest.approx(-4.3366, abs=1e-4)  # SW diamond cohesive energy
    # pressure = -dE/dV (bar) by finite differences along the grid
    e = [f.energy for f in vol]
    v = [f.volume for f in vol]
    dEdV = (e[2] - e[0]) / (v[2] - v[0])
    assert -dEdV * 1602176.634 == pytest.approx(p[1], abs=0.05 * abs(p[0]) + 50)
    # strained frames carry a random symmetric strain and rattle: forces nonzero, sum ~ 0
    st = read_extxyz(tmp_path / "out" / "strained.xyz", "bar")
    assert all(np.abs(f.forces).max() > 0.1 for f in st)
    assert all(np.abs(f.forces.sum(axis=0)).max() < 1e-8 for f in st)


def test_deck_errors_name_section_key_and_line(tmp_path):
    from fitsnap_ext.generate.deck import load_deck
    p = _deck(tmp_path, groups=SMALL_GROUPS.replace("strain = 0.03", "strain = 0.03\nbogus = 1"))
    with pytest.raises(DeckError) as ei:
        load_deck(p)
    line = p.read_text().splitlines().index("bogus = 1") + 1
    assert ei.value.section == "GROUP strained" and ei.value.key == "bogus" and ei.value.line == line
    assert f"gen.in:{line}: [GROUP strained] bogus: unknown key" in str(ei.value)


@pytest.mark.parametrize("part, old, new, where", [
    ("groups", "n_frames = 6", "n_frames = six", r"\[GROUP strained\] n_frames.*integer"),
    ("groups", "sampler = lammps_md", "sampler = metadynamics", r"\[GROUP md\] sampler"),
    ("labeler", "type = lammps", "type = vasp", r"\[LABELER\] type"),
    ("groups", "structure = si_diamond_primitive", "structure = nope.cif", r"\[GROUP vol\] structure"),
    ("labeler", "elements = Si\n", "", r"\[LABELER\] elements"),
    ("groups", "temperatures = 600 1500", "temperatures = 600 1500\nrelax_fmax = 0.01",
     r"\[GROUP md\] relax_fmax.*strain_rattle"),
    ("groups", "n_frames = 6", "n_frames = 6\nstrain_min = -0.01", r"\[GROUP strained\] strain_min.*isotropic"),
])
def test_bad_deck_value_names_its_section_and_key(tmp_path, part, old, new, where):
    from fitsnap_ext.generate.deck import load_deck
    text = {"groups": SMALL_GROUPS, "labeler": SW_LABELER}[part]
    assert old in text
    with pytest.raises(DeckError, match=where):
        load_deck(_deck(tmp_path, **{part: text.replace(old, new)}))


def test_bad_deck_value_exits_2_from_the_cli(tmp_path):
    r = run_generate(_deck(tmp_path, groups=SMALL_GROUPS.replace("temperatures = 600 1500", "temperatures = -3")))
    assert r.returncode == 1 and "temperatures" in r.stderr and "Traceback" not in r.stderr


def _write_mods(folder):
    """Three Si models as .mod include files with paths relative to their folder (as an exporter writes)."""
    from fitsnap_ext.lammps_engine import lammps_potentials_dir
    pot = lammps_potentials_dir()
    folder.mkdir()
    for f in ("Si.sw", "Si.tersoff", "Si_Zuo_JPCA2020.snapcoeff", "Si_Zuo_JPCA2020.snapparam"):
        shutil.copy(os.path.join(pot, f), folder / f)
    (folder / "sw.mod").write_text("pair_style sw\npair_coeff * * Si.sw Si\n")
    (folder / "tersoff.mod").write_text("pair_style tersoff\npair_coeff * * Si.tersoff Si\n")
    (folder / "snap.mod").write_text("pair_style snap\n"
                                     "pair_coeff * * Si_Zuo_JPCA2020.snapcoeff Si_Zuo_JPCA2020.snapparam Si\n")
    return [folder / "sw.mod", folder / "tersoff.mod", folder / "snap.mod"]


def test_active_learning_picks_largest_disagreement(tmp_path):
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    from fitsnap_ext.generate.samplers import _lammps_md_stream, force_disagreement
    mods = _write_mods(tmp_path / "models")
    groups = """
[GROUP al]
sampler = active
structure = si_diamond
ensemble_mods = models/sw.mod models/tersoff.mod models/snap.mod
temperatures = 300 2000
equilibration = 50
interval = 20
n_candidates = 6
n_frames = 4
"""
    deck = load_deck(_deck(tmp_path, groups=groups))
    deck.generate.progress = False
    cwd = os.getcwd()
    assert run(deck) == 0
    assert os.getcwd() == cwd
    frames = read_extxyz(tmp_path / "out" / "al.xyz", "bar")
    assert len(frames) == 4
    # recompute the disagreement of all candidates independently: the picked ones are the 4 largest
    g = deck.groups[0]
    cands = [fr for _, fr in _lammps_md_stream(deck, g, str(mods[0]), [], lambda i: True, g.temperatures, 6)]
    spread = force_disagreement(cands, [str(m) for m in mods], ["Si"])
    top = sorted(np.argsort(-spread)[:4].tolist())
    assert [f.info["candidate"] for f in frames] == top
    assert [f.info["force_std_max"] for f in frames] == pytest.approx(spread[top].tolist(), rel=1e-12)
    # hot snapshots disagree more than cold ones
    assert spread[6:].mean() > spread[:6].mean()
    assert np.allclose(frames[0].positions, cands[top[0]].positions)
    # candidates from a file: the 2 most disputed of the 4 picked above
    groups2 = """
[GROUP al2]
sampler = active
candidates = out/al.xyz
ensemble_mods = models/sw.mod models/tersoff.mod models/snap.mod
n_frames = 2
"""
    deck2 = load_deck(_deck(tmp_path, "al2.in", groups=groups2))
    deck2.generate.progress = False
    assert run(deck2) == 0
    f2 = read_extxyz(tmp_path / "out" / "al2.xyz", "bar")
    s4 = [f.info["force_std_max"] for f in frames]
    assert [f.info["candidate"] for f in f2] == sorted(np.argsort(-np.array(s4))[:2].tolist())
    assert sorted(f.info["force_std_max"] for f in f2) == pytest.approx(sorted(s4)[2:], rel=1e-9)


def test_relaxed_volume_group_labels_have_relaxed_ions(tmp_path):
    """relax_fmax: each strained cell's ions are relaxed (FIRE, the labeler's own calculator) before labelling,
    so an E–V group carries relaxed-ion energies below the clamped ones and forces under the tolerance."""
    from ase.build import bulk
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    si = bulk("Si", "diamond", a=5.431, cubic=True)
    si.rattle(0.08, seed=3)
    si.write(tmp_path / "si_rattled.extxyz")
    group = """
[GROUP {name}]
sampler = strain_rattle
structure = si_rattled.extxyz
strain_mode = isotropic_grid
strain = 0.03
n_frames = 3
"""
    groups = group.format(name="clamped") + group.format(name="relaxed") + "relax_fmax = 0.005\n"
    deck = load_deck(_deck(tmp_path, groups=groups))
    deck.generate.progress = False
    assert run(deck) == 0
    clamped = read_extxyz(tmp_path / "out" / "clamped.xyz", "bar")
    relaxed = read_extxyz(tmp_path / "out" / "relaxed.xyz", "bar")
    for c, r in zip(clamped, relaxed):
        assert np.allclose(c.cell, r.cell)
        assert np.abs(c.forces).max() > 0.3 and np.linalg.norm(r.forces, axis=1).max() < 0.005
        assert r.energy < c.energy - 0.05
        assert r.info["relax_steps"] > 0 and r.info["relax_max_force"] < 0.005
    # a deck without relax_fmax records the same sampler settings as before the key existed
    assert "relax_fmax" not in deck.groups[0].fingerprint() and "relax_fmax" in deck.groups[1].fingerprint()


def test_expanded_cells_from_strain_min(tmp_path):
    """strain_min moves the isotropic grid's lower end: expanded cells only (+5 ... +26 % in lattice, the
    volume range where a network must learn that separated atoms cost energy)."""
    from ase.build import bulk
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    bulk("Si", "diamond", a=5.431, cubic=True).write(tmp_path / "si.extxyz")
    group = """
[GROUP {name}]
sampler = strain_rattle
structure = si.extxyz
strain_mode = isotropic_grid
strain = 0.26
n_frames = 3
"""
    deck = load_deck(_deck(tmp_path, groups=group.format(name="symmetric")
                           + group.format(name="expanded") + "strain_min = 0.05\n"))
    deck.generate.progress = False
    assert run(deck) == 0
    for name, scales in (("symmetric", [0.74, 1.0, 1.26]), ("expanded", [1.05, 1.155, 1.26])):
        frames = read_extxyz(tmp_path / "out" / f"{name}.xyz", "bar")
        assert [f.cell[0, 0] / 5.431 for f in frames] == pytest.approx(scales, abs=1e-12)
    expanded = read_extxyz(tmp_path / "out" / "expanded.xyz", "bar")
    assert expanded[0].energy < expanded[2].energy  # SW: stretching costs energy
    assert "strain_min" not in deck.groups[0].fingerprint() and "strain_min" in deck.groups[1].fingerprint()


def test_ase_md_and_ase_labeler(tmp_path):
    """ASE MD driven by the labeler (LAMMPS via an ASE calculator), and a plain ASE calculator labeler (EMT)."""
    from ase.build import bulk
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    groups = """
[GROUP amd]
sampler = ase_md
structure = si_diamond
temperatures = 500
timestep = 0.002
equilibration = 20
interval = 10
n_frames = 3
"""
    deck = load_deck(_deck(tmp_path, groups=groups))
    deck.generate.progress = False
    assert run(deck) == 0
    a1 = (tmp_path / "out" / "amd.xyz").read_bytes()
    fr = read_extxyz(tmp_path / "out" / "amd.xyz", "bar")
    assert len(fr) == 3 and fr[0].info["step"] == 30 and fr[2].info["step"] == 50
    assert fr[0].energy / 8 > -4.3366  # above the minimum: atoms moved
    (tmp_path / "out" / "amd.xyz").unlink()
    assert run(deck) == 0
    assert (tmp_path / "out" / "amd.xyz").read_bytes() == a1  # deterministic

    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "cu.xyz")
    emt = """
[LABELER]
type = ase
calculator = ase.calculators.emt:EMT
"""
    groups = """
[GROUP cu]
sampler = strain_rattle
structure = cu.xyz
supercell = 2 1 1
strain = 0.02
rattle = 0.05
n_frames = 3
"""
    deck = load_deck(_deck(tmp_path, "emt.in", "emt_out", labeler=emt, groups=groups))
    deck.generate.progress = False
    assert run(deck) == 0
    fr = read_extxyz(tmp_path / "emt_out" / "cu.xyz", "bar")
    from ase.calculators.emt import EMT
    from fitsnap_ext.generate.structures import frame_to_atoms
    at = frame_to_atoms(fr[1])
    at.calc = EMT()
    assert fr[1].energy == pytest.approx(at.get_potential_energy(), abs=1e-10)
    assert np.allclose(fr[1].forces, at.get_forces(), atol=1e-10)
    from ase import units
    assert np.allclose(fr[1].stress, -at.get_stress(voigt=False) / units.bar, atol=1e-6)
    assert fr[1].natoms == 8 and fr[1].info["labeler"] == "ase"


def test_sevenn_labeler_is_marked_surrogate(tmp_path):
    pytest.importorskip("sevenn")
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run
    lab = "\n[LABELER]\ntype = sevenn\nmodel = 7net-0\n"
    groups = """
[GROUP s7]
sampler = strain_rattle
structure = si_diamond
strain = 0.02
rattle = 0.05
n_frames = 2
"""
    deck = load_deck(_deck(tmp_path, labeler=lab, groups=groups))
    deck.generate.progress = False
    assert run(deck) == 0
    fr = read_extxyz(tmp_path / "out" / "s7.xyz", "bar")
    assert "surrogate" in fr[0].info["labeler_note"] and fr[0].info["labeler"] == "sevenn"
    assert -5.6 < fr[0].energy / 8 < -5.2  # PBE-like energy scale (eV/atom), not SW's -4.34
    assert np.abs(fr[0].forces.sum(axis=0)).max() < 1e-3
