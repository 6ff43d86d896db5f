"""The model-complexity study (`python -m fitsnap_ext study`): deck validation, caching, references and a
real quick study on the demo data (fit → LAMMPS properties → MD timing → report)."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, need_shared, run_cli
from fitsnap_ext.errors import DeckError, FitsnapError
from fitsnap_ext.study import (data_provenance, fit_key, ladder_models, model_settings, network_available,
                               parameter_count, rdf_numpy, read_study)

DECK = REPO / "input_files" / "study_si.in"


def write_deck(tmp_path, text: str) -> Path:
    p = tmp_path / "study.in"
    p.write_text(text.replace("DEMO", str(REPO / "input_files" / "in.demo")))
    return p


# ---------------------------------------------------------------- deck validation (fast)

def test_quick_deck_reads_the_quick_keys():
    spec = read_study(DECK, [("STUDY", "quick", "1")])
    assert spec.base_deck.name == "in.demo"
    assert [m.name for m in spec.models] == ["linear_2J4", "linear_2J6", "quadratic_2J4", "nn_8"]
    assert spec.properties == ("eos", "elastic") and spec.quick and spec.property_quick
    assert spec.md_cell == (2, 2, 2)
    assert spec.literature.name == "si_sw_teacher.json" and spec.volume_set is None
    nn = model_settings(spec, spec.models[-1])
    assert nn.network is not None and nn.network.hidden == (8,) and nn.network.num_epochs == 30


def test_model_sections_and_ladder(tmp_path):
    deck = write_deck(tmp_path, "[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6\n"
                                "[MODEL_ridge6]\ntwojmax = 6\nsolver = RIDGE\nalpha = 1e-4\n"
                                "[MODEL_quad]\nBISPECTRUM.quadraticflag = 1\nBISPECTRUM.twojmax = 2\n")
    spec = read_study(deck)
    assert [(m.name, m.kind) for m in spec.models] == [("linear_2J6", "linear"), ("ridge6", "linear"),
                                                         ("quad", "quadratic")]
    st = model_settings(spec, spec.models[1])
    assert st.solver.solver == "RIDGE" and st.solver.alpha == 1e-4
    q = model_settings(spec, spec.models[2])
    assert q.bispectrum.quadraticflag and q.bispectrum.twojmax == 2
    assert parameter_count(q) == 1 + 5 + 15  # constant + 5 linear (2J=2) + 15 quadratic


def test_property_settings_reach_the_engine(tmp_path):
    from fitsnap_ext.study import study_system

    deck = write_deck(tmp_path, "[STUDY]\nsystem = lgps\nbase_deck = DEMO\nladder = linear:6\n"
                                "property_settings = diffusion_prod_ps 50, diffusion_supercell 2 2 1\n")
    spec = read_study(deck)
    assert spec.property_settings == (("diffusion_prod_ps", "50"), ("diffusion_supercell", "2 2 1"))
    system = study_system(spec)
    assert system.full.diffusion_prod_ps == system.quick.diffusion_prod_ps == 50.0
    assert system.full.diffusion_supercell == (2, 2, 1) and system.full.diffusion_runs == 4


@pytest.mark.parametrize("body, where", [
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6 cubic:4\n", ":4: [STUDY] ladder: bad ladder entry 'cubic:4'"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6\nmd_stepz = 4\n", ":5: [STUDY] md_stepz: unknown key"),
    ("[STUDY]\nsystem = xx\nbase_deck = DEMO\nladder = linear:6\n", ":2: [STUDY] system: unknown system 'xx'"),
    ("[STUDY]\nsystem = si\nbase_deck = nothere.in\nladder = linear:6\n", ":3: [STUDY] base_deck: fitting deck not found"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6\nproperties = eos foo\n",
     ":5: [STUDY] properties: unknown property 'foo'"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\n[MODEL_a]\nwidth = 3\n", ":5: [MODEL_A] width: unknown key"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\n", "[STUDY]: no models"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = nn:8\nnn_patience = -1\n",
     ":5: [STUDY] nn_patience: must be >= 0"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = nn:8\nnn_ema_decay = 1\n",
     ":5: [STUDY] nn_ema_decay: must be in [0, 1)"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = nn:8\nnn_weight_decay = -1\n",
     ":5: [STUDY] nn_weight_decay: must be >= 0"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = nn:8\nnn_validation_fraction = -0.1\n",
     ":5: [STUDY] nn_validation_fraction: must be in [0, 1)"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6\nproperty_settings = liquid_prod_ps 5, melt_ps 3\n",
     ":5: [STUDY] property_settings: unknown run setting 'melt_ps'"),
    ("[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:6 linear:6\n", "model name(s) given twice"),
])
def test_deck_errors_name_file_line_key(tmp_path, body, where):
    deck = write_deck(tmp_path, body)
    with pytest.raises(DeckError) as err:
        read_study(deck)
    assert str(err.value).startswith(str(deck)) or "given twice" in where
    assert where in str(err.value)


def test_bad_model_override_names_the_model(tmp_path):
    deck = write_deck(tmp_path, "[STUDY]\nsystem = si\nbase_deck = DEMO\n[MODEL_bad]\ntwojmax = -2\n")
    with pytest.raises(DeckError, match=r"model 'bad' .*twojmax: must be >= 0"):
        read_study(deck)


def test_cli_error_is_one_line(tmp_path):
    deck = write_deck(tmp_path, "[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = nn:0\n")
    proc = run_cli(["study", deck], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "[STUDY] ladder" in proc.stderr
    assert not (tmp_path / "study_si").exists()


def test_lgps_deck_explains_missing_data(tmp_path):
    """The LGPS data are generated (gen_lgps.in): without them the study stops at once, naming the line."""
    deck = REPO / "input_files" / "study_lgps.in"
    out = ("STUDY", "out", str(tmp_path / "out"))  # not the deck's own out: the tracked benchmarks/results/lgps
    with pytest.raises(DeckError, match=r"study_lgps.in: \[ABINITIO\] volume_set: file not found: .*absent.xyz"):
        read_study(deck, [out, ("ABINITIO", "volume_set", str(tmp_path / "absent.xyz"))])
    volume_set = ("ABINITIO", "volume_set", str(REPO / "input_files" / "data" / "lgps" / "sevenn_md" / "volume.xyz"))
    with pytest.raises(DeckError, match=r"study_lgps.in:\d+: \[PATH\] dataPath: data folder not found"):
        read_study(deck, [out, volume_set, ("STUDY", "dataPath", str(tmp_path / "absent"))])
    (tmp_path / "md_600K.xyz").write_text("")
    with pytest.raises(DeckError, match=r"study_lgps.in:\d+: \[GROUPS\] volume: no data for group\(s\) "
                                        r"volume, volume_wide, strain_rattle, rattle_large, md_900K, md_1200K, active_1, "
                                        r"volume_expanded in .*gen_lgps.in"):
        read_study(deck, [volume_set, ("STUDY", "dataPath", str(tmp_path)),
                          ("STUDY", "out", str(tmp_path / "new" / "out"))])
    assert not (tmp_path / "new").exists()  # the inline fitting deck written for validation is gone again


def test_gan_inline_deck(tmp_path):
    """The GaN study deck carries its fitting deck inline (the generated CP2K data: stand-ins here)."""
    for group in ("volume", "md_300K", "md_2300K"):
        (tmp_path / f"{group}.xyz").write_text("")
    spec = read_study(REPO / "input_files" / "study_gan.in", [
        ("STUDY", "out", str(tmp_path / "gan")), ("STUDY", "dataPath", str(tmp_path)),
        ("ABINITIO", "volume_set", str(tmp_path / "volume.xyz"))])
    st = model_settings(spec, spec.models[0])
    assert st.bispectrum.types == ("Ga", "N") and st.scraper.stress_unit == "bar"
    assert [g.name for g in st.groups.groups] == ["volume", "md_300K", "md_2300K"]
    # a command-line override of a fitting section reaches every model (an added group, a changed weight)
    (tmp_path / "active_1.xyz").write_text("")
    spec2 = read_study(REPO / "input_files" / "study_gan.in", [
        ("STUDY", "out", str(tmp_path / "gan")), ("STUDY", "dataPath", str(tmp_path)),
        ("ABINITIO", "volume_set", str(tmp_path / "volume.xyz")), ("GROUPS", "active_1", "0.8 0.2 100 1 1e-4"),
        ("GROUPS", "md_300K", "0.8 0.2 100 0.5 1e-4"), ("PYTORCH", "patience", "0")])
    network = next(m for m in reversed(spec2.models) if m.kind == "nn")
    for m in (spec2.models[0], network):  # a linear and a network rung (nn_group_weights = relative for networks)
        groups = {g.name: g for g in model_settings(spec2, m).groups.groups}
        assert list(groups) == ["volume", "md_300K", "md_2300K", "active_1"]
    # the network's: each weight over the largest of its kind, energies times the study's energy_weight 10
    assert groups["active_1"].eweight == pytest.approx(100 / 1000 * 10) and groups["md_300K"].fweight == 0.5
    groups = {g.name: g for g in model_settings(spec2, spec2.models[0]).groups.groups}
    assert groups["active_1"].eweight == 100 and groups["md_300K"].fweight == 0.5
    # a [PYTORCH] key is the network rungs' only
    assert model_settings(spec2, network).network.patience == 0
    assert model_settings(spec2, spec2.models[0]).network is None
    spec3 = read_study(REPO / "input_files" / "study_gan.in", [
        ("STUDY", "out", str(tmp_path / "gan")), ("STUDY", "dataPath", str(tmp_path)),
        ("ABINITIO", "volume_set", str(tmp_path / "volume.xyz")), ("STUDY", "nn_patience", "7"),
        ("STUDY", "nn_ema_decay", "0.95"), ("STUDY", "nn_validation_fraction", "0.2"),
        ("STUDY", "nn_weight_decay", "0.05")])
    network = model_settings(spec3, next(m for m in spec3.models if m.kind == "nn")).network
    assert (network.patience, network.ema_decay, network.validation_fraction, network.weight_decay) == (
        7, 0.95, 0.2, 0.05)
    # the extracted fitting deck keeps the study deck's line numbers
    study_lines = (REPO / "input_files" / "study_gan.in").read_text().splitlines()
    base_lines = spec.base_deck.read_text().splitlines()
    i = next(k for k, l in enumerate(study_lines) if l.startswith("rcutfac"))
    assert base_lines[i] == study_lines[i]
    # its dataPath is relative to its own folder (a committed base_deck.in names no machine path)
    i = next(k for k, l in enumerate(study_lines) if l.startswith("dataPath"))
    assert base_lines[i] == f"dataPath = {os.path.relpath(REPO / 'input_files' / 'data' / 'gan', tmp_path / 'gan')}"


def test_cli_out_receives_the_inline_fitting_deck(tmp_path):
    """`--out DIR` is where everything goes, the extracted inline fitting deck included (it used to land in the
    deck's own [STUDY] out folder)."""
    from fitsnap_ext.study import main

    for group in ("volume", "md_300K", "md_2300K"):
        (tmp_path / f"{group}.xyz").write_text("")
    default_out = REPO / "benchmarks" / "results" / "gan"
    existed = default_out.exists()
    assert main([str(REPO / "input_files" / "study_gan.in"), "--check", "--out", str(tmp_path / "cli_out"),
                 "-k", "STUDY", "dataPath", str(tmp_path),
                 "-k", "ABINITIO", "volume_set", str(tmp_path / "volume.xyz")]) == 0
    assert (tmp_path / "cli_out" / "base_deck.in").is_file()
    assert default_out.exists() == existed


# ---------------------------------------------------------------- cache keys, references (fast)

def test_fit_key_changes_with_settings_and_data(tmp_path):
    spec = read_study(DECK, [("STUDY", "quick", "1")])
    a, b = (model_settings(spec, m) for m in spec.models[:2])
    assert fit_key(a) == fit_key(model_settings(spec, spec.models[0]))
    assert fit_key(a) != fit_key(b)
    # a copy of the data with one file touched → another key
    import shutil

    data = tmp_path / "demo"
    shutil.copytree(REPO / "input_files" / "demo", data)
    deck = tmp_path / "in.demo"
    deck.write_text((REPO / "input_files" / "in.demo").read_text())
    from fitsnap_ext.config import load_settings

    k1 = fit_key(load_settings(deck))
    (data / "README.md").write_text("a data card edited beside the data\n")  # not read by any group
    (data / "unused_group.xyz").write_text("")
    assert fit_key(load_settings(deck)) == k1
    f = data / "volume.xyz"
    f.write_text(f.read_text() + "\n")
    assert fit_key(load_settings(deck)) != k1


def test_data_provenance_counts_frames_and_names_the_labeler(tmp_path):
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.extxyz import read_extxyz

    demo = load_settings(REPO / "input_files" / "in.demo")
    rows = data_provenance(demo)
    assert [r["group"] for r in rows] == [g.name for g in demo.groups.groups]
    for r in rows:
        assert r["frames"] == len(read_extxyz(demo.data_path / r["file"], "bar")), r
        assert r["labelers"] == ["lammps (sw)"], r
    # a surrogate's note is carried; a missing group file is reported, not an error
    folder = tmp_path / "data"
    folder.mkdir()
    line = (REPO / "input_files" / "demo" / "volume.xyz").read_text().splitlines()
    natoms = int(line[0])
    header = line[1].replace('labeler="lammps"', 'labeler="sevenn" labeler_note="surrogate: test"')
    (folder / "volume.xyz").write_text("\n".join([line[0], header, *line[2:2 + natoms]]) + "\n")
    rows = data_provenance(load_settings(REPO / "input_files" / "in.demo", [("PATH", "dataPath", str(folder))]))
    assert rows[0]["frames"] == 1 and rows[0]["labelers"] == ["sevenn (sw) — surrogate: test"]
    assert rows[1] == {"group": "strain_rattle", "file": "missing", "frames": 0, "labelers": []}


def test_failed_properties_are_notes_of_the_model():
    from fitsnap_ext.study import ModelSpec, failure_lines, summary_row

    refs = {"volume_per_atom_A3": {"value": 20.0, "unit": "Å³/atom", "source": "x"},
            "bulk_modulus_GPa": {"value": 19.0, "unit": "GPa", "source": "x"}}
    props = {"props": {"volume_per_atom_A3": 20.2,
                       "failed_properties": {"eos_scan": "E-V curve has no minimum", "diffusion": "Lost atoms"}}}
    row = summary_row(ModelSpec("linear_2J6", "linear", ()), None, props, None, refs, "ok")
    assert row["volume_per_atom_A3_err"] == pytest.approx(0.2) and "bulk_modulus_GPa" not in row
    assert row["notes"] == "eos_scan: E-V curve has no minimum; diffusion: Lost atoms"
    # the report names both kinds: a model without any property (its crystal flew apart) and the partial failures
    blown = summary_row(ModelSpec("nn_32x32", "nn", ()), None, None, None, refs, "properties failed: flew apart")
    blown["n_params"] = 8324
    assert failure_lines([row, blown]) == [
        "- nn_32x32: properties failed: flew apart",
        "- linear_2J6: computed the others; failed: eos_scan: E-V curve has no minimum; diffusion: Lost atoms"]


def test_rdf_of_diamond():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    r, g, coord = rdf_numpy([atoms], rmax=4.0, dr=0.01)
    first = r[np.argmax(g > 0)]
    assert abs(first - 5.431 * math.sqrt(3) / 4) < 0.011
    assert coord[np.searchsorted(r, 3.0)] == pytest.approx(4.0, abs=1e-12)


def test_adf_numpy_equals_lammps_compute_adf():
    """The reference ADF (numpy, from DFT frames) and the engine's (LAMMPS compute adf) are the same function:
    checked on a rattled 64-atom diamond cell; the perfect crystal gives the tetrahedral angle only."""
    from ase.build import bulk

    from fitsnap_ext.data.frame import Frame
    from fitsnap_ext.lammps_session import LammpsSession
    from fitsnap_ext.properties.liquid import ADF_BOND_CUTOFF, adf_numpy

    crystal = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    theta, adf, per_atom = adf_numpy([crystal])
    assert theta[np.argmax(adf)] == 109.0 and adf.max() * 2.0 == pytest.approx(1.0)   # 108–110° bin
    assert per_atom[-1] == pytest.approx(6.0)                                       # C(4, 2) angles per atom
    rattled = crystal.copy()
    rattled.rattle(0.15, seed=3)
    theta, adf, per_atom = adf_numpy([rattled])
    session = LammpsSession()
    try:
        session.place(Frame(rattled.get_chemical_symbols(), rattled.positions, rattled.cell.array), ["Si"],
                      "metal", "atomic")
        session.commands(["pair_style zero 4.0", "pair_coeff * *", "mass 1 28.0855",
                          f"compute adf all adf 90 1 1 1 0.0 {ADF_BOND_CUTOFF} 0.0 {ADF_BOND_CUTOFF}", "run 0"])
        lammps = session.compute_array("adf")
    finally:
        session.close()
    np.testing.assert_allclose(theta, lammps[:, 0])
    np.testing.assert_allclose(adf, lammps[:, 1], atol=1e-12)
    np.testing.assert_allclose(per_atom, lammps[:, 2], atol=1e-12)
    assert 5 < np.count_nonzero(adf) < 60                                          # a spread, not one bin


def test_too_few_volume_frames_name_the_file(tmp_path):
    """A volume set still being labelled (3 frames) stops the study with the file and the count, not a fit error."""
    from fitsnap_ext.data.extxyz import read_extxyz, write_extxyz
    from fitsnap_ext.errors import DataError
    from fitsnap_ext.study import abinitio_reference

    frames = read_extxyz(REPO / "input_files" / "demo" / "volume.xyz", "bar")[:3]
    write_extxyz(tmp_path / "volume.xyz", frames)
    deck = write_deck(tmp_path, f"[STUDY]\nsystem = si\nbase_deck = DEMO\nout = {tmp_path / 'out'}\n"
                                f"ladder = linear:4\n[ABINITIO]\nvolume_set = {tmp_path / 'volume.xyz'}\n")
    spec = read_study(deck)
    with pytest.raises(DataError, match=r"volume.xyz: \[ABINITIO\] volume_set \(3 frames\): a Birch.Murnaghan fit "
                                        r"needs at least 5 frames"):
        abinitio_reference(spec, tmp_path)


def test_si_abinitio_reference_from_volume_set(tmp_path):
    need_shared("si_paper", "volume.xyz")
    from fitsnap_ext.study import abinitio_reference

    spec = read_study(DECK, [("STUDY", "out", str(tmp_path))])
    refs, curves = abinitio_reference(spec, tmp_path)
    assert 5.44 < refs["lattice_constant_A"]["value"] < 5.50       # PBE overestimates a (expt 5.431)
    assert 80 < refs["bulk_modulus_GPa"]["value"] < 100            # PBE ≈ 88-89 GPa
    assert 2.3 < refs["rdf_first_peak_A"]["value"] < 2.6
    assert 0.25 < refs["adf_small_angle_fraction"]["value"] < 0.4      # liquid Si: the ≈ 60° population
    assert refs["adf_peak_deg"]["compare"] is False
    assert curves["liquid_adf"].sum() * 2.0 == pytest.approx(1.0)
    assert all(v["source"] for v in refs.values())
    assert refs["dft_liquid_frames_density_g_cm3"]["compare"] is False


def test_gan_abinitio_reference_from_the_ac_grid(tmp_path):
    """GaN's volume set is a grid of (a, c) cells: a, c, B come from the E(a, c) surface (a Birch–Murnaghan fit of
    all cells against V alone had given B = 145 GPa) with one energy zero per k-mesh (kspacing 0.4 gives 5x3x3
    above c = 5.236 Å, 5x3x4 below), and agree with CP2K's own zero-stress cell (a 3.2314, c 5.2671 Å,
    input_files/reference/gan_pbe_cp2k.json, fixed 6x6x4 mesh) and its Voigt B from C_ij (170 GPa)."""
    from fitsnap_ext.study import abinitio_reference

    spec = read_study(REPO / "input_files" / "study_gan.in", [("STUDY", "out", str(tmp_path))])
    refs, curves = abinitio_reference(spec, tmp_path)
    assert refs["a_A"]["value"] == pytest.approx(3.2314, abs=0.002)
    assert refs["c_A"]["value"] == pytest.approx(5.2671, abs=0.006)  # 5.253 without a zero per k-mesh
    assert refs["bulk_modulus_GPa"]["value"] == pytest.approx(170, abs=8)
    assert "E(a, c)" in refs["a_A"]["source"] and "isotropic scaling" in refs["bulk_modulus_GPa"]["source"]
    assert "volume.xyz (input_files/data/gan/volume.xyz; labels: cp2k" in refs["a_A"]["source"]  # repo-relative
    assert "one energy zero per DFT k-mesh (energies of the 5x3x4 cells; 5x3x3 +1.1" in refs["a_A"]["source"]
    assert curves["eos_fit_e"].min() == pytest.approx(refs["energy_per_atom_eV"]["value"], abs=1e-4)


def test_every_reference_file_has_sources():
    from fitsnap_ext.study import load_literature

    files = sorted((REPO / "input_files" / "reference").glob("*.json"))
    assert files
    for f in files:
        assert load_literature(f)


# ---------------------------------------------------------------- the quick study itself (real runs)

@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "study"
    t0 = time.perf_counter()
    first = run_cli(["study", DECK, "--quick", "--out", out], cwd=REPO, timeout=900)
    t1 = time.perf_counter()
    second = run_cli(["study", DECK, "--quick", "--out", out], cwd=REPO, timeout=900)
    t2 = time.perf_counter()
    return out, first, second, t1 - t0, t2 - t1


def _rows(out):
    with open(out / "study.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_quick_study_report(quick_study):
    out, first, *_ = quick_study
    for f in ("study.md", "study.csv", "reference.json", "property_error_vs_force_error.png",
              "pareto_force_error_vs_md_cost.png", "parity.png", "curves_eos.png"):
        assert (out / f).is_file(), f
    rows = _rows(out)
    names = [r["model"] for r in rows]
    assert names == ["linear_2J4", "linear_2J6", "quadratic_2J4", "nn_8"]
    md = (out / "study.md").read_text()
    assert "Command: `python -m fitsnap_ext study" in md and "--quick" in md
    assert f"--out {os.path.relpath(out, REPO)}`" in md and str(REPO) not in md  # no machine paths in reports
    assert json.loads((out / "linear_2J6" / "props.json").read_text())["potential"] == "pot.mod"
    assert "Does lower fitting error buy better properties?" in md
    assert "| md_300K | md_300K.xyz | 40 | lammps (sw) |" in md and "surrogate" not in md
    for r in rows:
        if r["kind"] == "nn" and network_available():
            assert r["status"].startswith("skipped"), r
            continue
        assert r["status"] == "ok", r
        for key in ("n_params", "energy_test_rmse_meV_atom", "force_test_rmse_eV_A", "force_train_mae_eV_A",
                    "md_katom_steps_per_s", "lattice_constant_A", "lattice_constant_A_err", "C11_GPa_err",
                    "bulk_modulus_GPa"):
            assert math.isfinite(float(r[key])), (r["model"], key)
        assert float(r["md_katom_steps_per_s"]) > 0
        # the SW-labelled demo is learnt well: a within 0.05 Å of the teacher's
        assert abs(float(r["lattice_constant_A_err"])) < 0.05
    n = {r["model"]: int(r["n_params"]) for r in rows if r["n_params"]}
    assert n["linear_2J4"] == 15 and n["linear_2J6"] == 31 and n["quadratic_2J4"] == 15 + 14 * 15 // 2 + 0


@pytest.mark.slow
def test_rerun_skips_cached_models(quick_study):
    out, first, second, t_first, t_second = quick_study
    log = second.stdout
    for name in ("linear_2J4", "linear_2J6", "quadratic_2J4"):
        assert f"{name}: fit cached" in log and f"{name}: properties cached" in log and f"{name}: MD timing cached" in log
        assert f"{name}: fitting" not in log
    assert "fitting" not in log.replace("fit cached", "")
    assert t_second < 0.6 * t_first, (t_first, t_second)


@pytest.mark.slow
def test_linear_2j6_equals_a_direct_fit(quick_study, tmp_path):
    out, *_ = quick_study
    run_cli([REPO / "input_files" / "in.demo", "-k", "PROPERTIES", "properties", "eos"], cwd=tmp_path)
    with open(tmp_path / "Si_demo_metrics.csv") as fh:
        direct = {(r["group"], r["split"], r["quantity"]): r for r in csv.DictReader(fh)}
    stage = json.loads((out / "linear_2J6" / "stage_fit.json").read_text())
    assert len(stage["errors"]) == len(direct)
    for e in stage["errors"]:
        d = direct[(e["group"], e["split"], e["quantity"])]
        assert int(d["count"]) == e["count"]
        assert float(d["mae"]) == pytest.approx(e["mae"], rel=1e-9)
        assert float(d["rmse"]) == pytest.approx(e["rmse"], rel=1e-9)
    # and the report's numbers are those errors in report units
    row = next(r for r in _rows(out) if r["model"] == "linear_2J6")
    all_test_e = next(e for e in stage["errors"] if e["group"] == "*ALL" and e["split"] == "Test"
                      and e["quantity"] == "Energy")
    assert float(row["energy_test_rmse_meV_atom"]) == pytest.approx(1000 * all_test_e["rmse"], rel=1e-12)


def test_ladder_parser_rejects_garbage(tmp_path):
    from fitsnap_ext.config import RawDeck

    deck = write_deck(tmp_path, "[STUDY]\nladder = nn:8x\n")
    raw = RawDeck.read(deck)
    with pytest.raises(FitsnapError):
        ladder_models(["nn:8x"], raw)
    assert [m.name for m in ladder_models(["nn:16x8", "quadratic:2"], raw, [("PYTORCH", "num_epochs", "5")])] == ["nn_16x8", "quadratic_2J2"]


def test_network_group_weights_unit_and_relative(tmp_path):
    """NN rungs: unit weights (1/1/1, 0 stays 0), or the deck's weights relative to the largest of each kind."""
    demo = REPO / "input_files" / "in.demo"
    text = demo.read_text().replace("dataPath = demo", f"dataPath = {demo.parent / 'demo'}")
    text = text.replace("volume           = 0.8 0.2  100  1  1e-4", "volume = 0.8 0.2 1000 1 1e-4")
    text = text.replace("md_300K          = 0.8 0.2  100  1  1e-4", "md_300K = 0.8 0.2 100 0 0")
    (tmp_path / "base.in").write_text(text)
    deck = tmp_path / "study.in"
    deck.write_text("[STUDY]\nsystem = si\nbase_deck = base.in\nladder = nn:8\nnn_group_weights = relative\n")

    def weights(spec):
        return {g.name: (g.eweight, g.fweight, g.vweight) for g in model_settings(spec, spec.models[0]).groups.groups}

    # the study's energy/force weights (10, 1) are folded into the groups: FitSNAP's global weights would
    # override them
    relative = weights(read_study(deck))
    assert relative["volume"] == (10.0, 1.0, 1.0)
    assert relative["md_300K"] == (1.0, 0.0, 0.0) and relative["md_1200K"] == (1.0, 1.0, 1.0)
    deck.write_text("[STUDY]\nsystem = si\nbase_deck = base.in\nladder = nn:8\nnn_group_weights = unit\n"
                    "[MODEL_e100]\nsolver = PYTORCH\nlayer_sizes = num_desc 8 1\nenergy_weight = 100\n")
    unit = read_study(deck)
    assert weights(unit)["volume"] == (10.0, 1.0, 1.0) and weights(unit)["md_300K"] == (10.0, 0.0, 0.0)
    e100 = model_settings(unit, unit.models[1])
    assert {g.name: (g.eweight, g.fweight, g.vweight) for g in e100.groups.groups}["md_300K"] == (100.0, 0.0, 0.0)
    assert e100.network.energy_weight is None
    # every group weighing 1: the weights are FitSNAP's global ones (the keys the committed studies were cached with)
    (tmp_path / "base.in").write_text(demo.read_text().replace("dataPath = demo", f"dataPath = {demo.parent / 'demo'}"))
    plain = model_settings(read_study(deck), unit.models[0])
    assert {(g.eweight, g.fweight, g.vweight) for g in plain.groups.groups} == {(1.0, 1.0, 1.0)}
    assert (plain.network.energy_weight, plain.network.force_weight) == (10.0, 1.0)
    deck.write_text("[STUDY]\nsystem = si\nbase_deck = base.in\nladder = nn:8\nnn_group_weights = equal\n")
    with pytest.raises(DeckError, match=r":5: \[STUDY\] nn_group_weights: 'equal': one of unit, relative"):
        read_study(deck)
    deck.write_text("[STUDY]\nsystem = si\nbase_deck = base.in\nladder = nn:8\n")


def test_structure_key_replaces_the_preset_crystal(tmp_path):
    """[STUDY] structure: properties and MD timing start from that file (e.g. the data's own ordered LGPS cell),
    with the system preset's settings; a missing file is named."""
    from ase.build import bulk
    from ase.io import write

    from fitsnap_ext.study import study_system

    write(tmp_path / "si_prim.extxyz", bulk("Si", "diamond", a=5.5))
    plain = "[STUDY]\nsystem = si\nbase_deck = DEMO\nladder = linear:4\n"
    preset = study_system(read_study(write_deck(tmp_path, plain)))  # without the key: the preset's own crystal
    deck = write_deck(tmp_path, plain + "structure = si_prim.extxyz\n")
    system = study_system(read_study(deck))
    atoms = system.build()
    assert len(atoms) == 2 and atoms.cell.lengths()[0] == pytest.approx(5.5 / 2 ** 0.5)
    assert system.properties == preset.properties and system.liquid_T == 1750.0
    assert preset.build().cell.lengths()[0] != pytest.approx(5.5 / 2 ** 0.5)
    deck.write_text(deck.read_text().replace("si_prim.extxyz", "absent.extxyz"))
    with pytest.raises(DeckError, match=r":5: \[STUDY\] structure: file not found: .*absent.extxyz"):
        read_study(deck)


@pytest.mark.parametrize("deck,out", [("study_si.in", "si"), ("study_si_zuo.in", "si_zuo"), ("study_gan.in", "gan"),
                                      ("study_lgps.in", "lgps")])
def test_committed_studies_are_still_cached(deck, out):
    """Every ladder rung's fit key equals the one its committed results were cached with: the study reproduces from
    the cache (a changed key would mean a changed fit). GaN and LGPS read the repository's own data."""
    import json

    from fitsnap_ext.study import fit_key

    if deck.startswith("study_si"):
        need_shared("si_paper" if deck == "study_si.in" else "si_zuo")
    spec = read_study(REPO / "input_files" / deck)
    for model in spec.models:
        if model.name.startswith("chem_"):  # the chemflag rungs' results live in <out>_chemflag
            continue
        stage = REPO / "benchmarks" / "results" / out / model.name / "stage_fit.json"
        assert fit_key(model_settings(spec, model)) == json.loads(stage.read_text())["key"], model.name


def test_references_under_two_ranks(tmp_path):
    """Rank 0 alone reads the ab initio sets: ASE's read must not broadcast (it did under mpirun, and the study's
    own broadcast of the references then received ASE's message: a crash, or a hang)."""
    script = tmp_path / "refs.py"
    script.write_text(
        "from mpi4py import MPI\n"
        "from fitsnap_ext.study.deck import read_study\n"
        "from fitsnap_ext.study.stages import _references\n"
        f"spec = read_study({str(REPO / 'input_files' / 'study_gan.in')!r}, [('STUDY', 'out', {str(tmp_path)!r})])\n"
        "refs, _ = _references(spec, MPI.COMM_WORLD)\n"
        "rank = MPI.COMM_WORLD.rank\n"  # one file per rank (cwd: tmp_path): the ranks' stdout lines interleave
        "open(f'rank{rank}.txt', 'w').write(f\"rank {rank} {sorted(refs)[:2]} {round(refs['C44_GPa']['value'], 2)}\")\n")
    mpirun = Path(sys.executable).with_name("mpirun")
    proc = subprocess.run([str(mpirun if mpirun.exists() else shutil.which("mpirun")), "-np", "2", sys.executable,
                           str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert lines == [f"rank {r} ['C11_GPa', 'C11_clamped_ion_GPa'] 87.78" for r in (0, 1)]
