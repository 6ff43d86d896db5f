"""CP2K runs made elsewhere (an array job, another machine): `generate --prepare` writes the inputs; a later run
parses each finished output made from exactly its input and reruns the others. Uses a stand-in `cp2k.psmp` (a
script printing CP2K's output format), so it runs without CP2K."""
import os
import stat
import subprocess
import sys

from conftest import run_generate, write_gen_deck

FAKE_CP2K = r'''#!{python}
"""Stand-in for cp2k.psmp: energy and forces from the coordinates, CP2K's output format; logs each call."""
import os, sys
if "--version" in sys.argv:
    print(" CP2K version 2023.1 (stand-in)")
    sys.exit(0)
inp = open(sys.argv[sys.argv.index("-i") + 1]).read()
coords = inp.split("&COORD")[1].split("&END COORD")[0].split("\n")[1:-1]
xyz = [[float(v) for v in ln.split()[1:]] for ln in coords]
cutoff = float(inp.split("CUTOFF ")[1].split()[0])
with open(os.environ["FAKE_CP2K_LOG"], "a") as log:
    log.write(os.path.basename(os.getcwd()) + "\n")
e = -30.0 - 1e-3 * sum(x * x for p in xyz for x in p) - 1e-6 * cutoff
lines = [" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:   %.15f" % e, "", " ATOMIC FORCES in [a.u.]", "",
         " # Atom   Kind   Element          X              Y              Z"]
for i, p in enumerate(xyz):
    lines.append("  %d  1  Si  %.8f  %.8f  %.8f" % (i + 1, 2e-3 * p[0], 2e-3 * p[1], 2e-3 * p[2]))
lines += [" SUM OF ATOMIC FORCES  0.0 0.0 0.0 0.0", "", " STRESS| Analytical stress tensor [GPa]",
          " STRESS|   x   y   z", " STRESS|  x  1.0E-01  0.0E+00  0.0E+00",
          " STRESS|  y  0.0E+00  1.0E-01  0.0E+00", " STRESS|  z  0.0E+00  0.0E+00  1.0E-01",
          "  **** **** ******  **  PROGRAM ENDED AT                 2026-12-04 16:53:00.765"]
open(sys.argv[sys.argv.index("-o") + 1], "w").write("\n".join(lines) + "\n")
'''


def _fake_cp2k(tmp_path):
    exe = tmp_path / "cp2k.psmp"
    exe.write_text(FAKE_CP2K.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    data = tmp_path / "cp2kdata"
    data.mkdir()
    for name in ("BASIS_MOLOPT", "GTH_POTENTIALS"):
        (data / name).write_text("")
    return exe, data


def _deck(tmp_path, exe, data, output):
    labeler = (f"[LABELER]\ntype = cp2k\nexecutable = {exe}\ndata_dir = {data}\nkpoints = 1 1 1\nmpi_ranks = 1\n"
               f"cutoff = 300\n")
    groups = "[GROUP r]\nsampler = strain_rattle\nstructure = si_diamond\nrattle = 0.05\nn_frames = 3\n"
    return write_gen_deck(tmp_path, name=f"gen_{output}.in", output=output, labeler=labeler, groups=groups)


def test_prepared_inputs_run_elsewhere_are_parsed_not_rerun(tmp_path):
    exe, data = _fake_cp2k(tmp_path)
    log = tmp_path / "calls.log"
    env = {"FAKE_CP2K_LOG": str(log)}

    # the reference: an ordinary run
    direct = _deck(tmp_path, exe, data, "direct")
    assert run_generate(direct, env).returncode == 0
    assert log.read_text().split() == ["r_0", "r_1", "r_2"]
    log.unlink()

    deck = _deck(tmp_path, exe, data, "out")
    r = run_generate(deck, env, args=("--prepare",))
    assert r.returncode == 0, r.stderr
    work = tmp_path / "out" / ".cp2k"
    folders = (work / "prepared.txt").read_text().split()
    assert folders == ["r_0", "r_1", "r_2"]
    assert not (tmp_path / "out" / "r.xyz").exists() and not log.exists()  # nothing labelled

    # "elsewhere": r_0 finishes; r_1 is killed (no PROGRAM ENDED); r_2 ran from an input of other settings
    for name in folders:
        subprocess.run([str(exe), "-i", "cp2k.inp", "-o", "cp2k.out"], cwd=work / name, env={**os.environ, **env},
                       check=True)
    out1 = work / "r_1" / "cp2k.out"
    out1.write_text(out1.read_text().split("  ****")[0])
    inp2 = work / "r_2" / "cp2k.inp"
    inp2.write_text(inp2.read_text().replace("CUTOFF 300.0", "CUTOFF 250.0"))
    subprocess.run([str(exe), "-i", "cp2k.inp", "-o", "cp2k.out"], cwd=work / "r_2", env={**os.environ, **env},
                   check=True)
    log.unlink()

    r = run_generate(deck, env)
    assert r.returncode == 0, r.stderr
    assert "r:0: finished CP2K run found" in r.stdout
    assert log.read_text().split() == ["r_1", "r_2"]  # only the unfinished and the mismatched run are rerun
    assert (tmp_path / "out" / "r.xyz").read_bytes() == (tmp_path / "direct" / "r.xyz").read_bytes()
    assert not os.path.exists(work / "r_0")  # parsed run folders are cleaned like local ones


def test_prepare_needs_a_labeler_that_runs_as_its_own_job(tmp_path):
    deck = write_gen_deck(tmp_path, groups="[GROUP r]\nsampler = strain_rattle\nstructure = si_diamond\n"
                                            "n_frames = 1\n")
    r = run_generate(deck, args=("--prepare",))
    assert r.returncode == 1
    assert "[LABELER] type: --prepare writes inputs for a labeler that runs as its own job" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_kspacing_that_rounds_to_another_mesh_within_a_group_is_noted(tmp_path, monkeypatch, capsys):
    """GaN's volume grid with kspacing 0.4: 5x3x4 below c = 5.236 Å, 5x3x3 above; the log says so once."""
    import numpy as np

    from fitsnap_ext.data.frame import Frame
    from fitsnap_ext.generate.cp2k import Cp2kLabeler
    from fitsnap_ext.generate.deck import LabelerSettings

    exe, data = _fake_cp2k(tmp_path)
    lab = Cp2kLabeler(LabelerSettings(type="cp2k", executable=str(exe), data_dir=str(data), kspacing=0.4,
                                      mpi_ranks=1), workdir=str(tmp_path / "w"))
    monkeypatch.setenv("FAKE_CP2K_LOG", str(tmp_path / "calls.log"))
    notes = []
    for i, c in enumerate((5.20, 5.22, 5.25, 5.20, 5.25)):
        cell = np.diag([3.23, 5.59, c])
        fr = Frame(symbols=["Si"], positions=np.zeros((1, 3)), cell=cell, energy=None, forces=None, stress=None,
                   info={"config_id": f"volume:{i}"})
        lab.label(fr)
        notes.append(capsys.readouterr().out)
    assert not notes[0] and not notes[1]
    assert "volume:2 gets the k-mesh 5x3x3, earlier configurations of volume 5x3x4" in notes[2]
    assert not notes[3] and not notes[4]  # once per group
