"""The properties command a user can trust: outputs checked before any work, no rank left waiting when rank 0
cannot write, nothing left behind by a failed run, progress and cost estimate, physically suspect values flagged.

Known numbers: SW Si's quick liquid (64 atoms) has coordination 5.6 and its elastic constants are C11 151.4,
C12 76.4, C44 56.4 GPa (tests/test_properties.py); the demo potential (2J=6 SNAP fitted to SW labels of crystal,
strained and MD frames up to 2500 K, no liquid) gives a quick-liquid coordination of 13.7.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fitsnap_ext.errors import FitsnapError
from fitsnap_ext.properties.sanity import suspect_flags

REPO = Path(__file__).resolve().parents[1]
MPIRUN = Path(sys.executable).with_name("mpirun")


def _cli(args, cwd, nprocs=1, timeout=120):
    cmd = [sys.executable, "-m", "fitsnap_ext", "properties", *map(str, args)]
    if nprocs > 1:
        cmd = [str(MPIRUN), "-np", str(nprocs), *cmd]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


SW_SI = {"C11_GPa": 151.4, "C12_GPa": 76.4, "C44_GPa": 56.4, "phonon_min_THz": -1.4e-7,
         "coordination_number": 5.59, "liquid_temperature_K": 1726.7, "melting_coexistence_ok": True,
         "melting_point_K": 1564.4, "melting_crystal_fraction_end": 0.81, "thermal_conductivity_W_mK": 8.4}


def test_suspect_flags_on_known_numbers():
    si = dict(symmetry="cubic", liquid_coordination=(4.0, 8.0), liquid_temperature=1750.0)
    assert suspect_flags(SW_SI, **si) == {}
    flags = suspect_flags({**SW_SI, "coordination_number": 13.6741}, **si)
    assert flags == {"coordination_number": "liquid coordination 13.7 is outside 4-8, far from any liquid of this "
                                            "system (was the potential fitted to liquid configurations?)"}
    flags = suspect_flags({**SW_SI, "C12_GPa": -12.5}, **si)
    assert list(flags) == ["C12_GPa"] and "C12 = -12.5 GPa is negative" in flags["C12_GPa"]
    flags = suspect_flags({**SW_SI, "C11_GPa": 70.0, "C44_GPa": -3.0}, **si)      # C11 - C12 = -6.4
    assert flags["elastic_stability"] == ("Born stability criteria violated: C11 - C12 > 0 fails (-6.4); "
                                          "C44 > 0 fails (-3)")
    flags = suspect_flags({**SW_SI, "phonon_min_THz": -1.234}, **si)
    assert flags["phonon_min_THz"].startswith("imaginary phonon mode of 1.23i THz (below -0.1 THz)")
    assert suspect_flags({**SW_SI, "phonon_min_THz": -0.05}, **si) == {}           # finite-difference noise
    flags = suspect_flags({**SW_SI, "melting_coexistence_ok": False, "melting_crystal_fraction_end": 1.0,
                           "melting_point_K": 1609.0}, **si)
    assert flags["melting_point_K"].startswith("crystal fraction 1 at the end of the coexistence run: the box froze, "
                                               "so 1609 K")
    flags = suspect_flags({**SW_SI, "liquid_temperature_K": 1500.0}, **si)
    assert "1500 K is not the thermostat's 1750 K" in flags["liquid_temperature_K"]
    # Tersoff GaN (tests/test_properties.py) is stable; C13 = 320 GPa breaks (C11 + C12) C33 > 2 C13^2:
    # 502 x 379.4 - 2 x 320^2 = -14341.2
    gan = {"C11_GPa": 344.6, "C12_GPa": 157.4, "C13_GPa": 122.6, "C33_GPa": 379.4, "C44_GPa": 82.0, "C66_GPa": 93.6}
    assert suspect_flags(gan, "hexagonal") == {}
    assert suspect_flags({**gan, "C13_GPa": 320.0}, "hexagonal")["elastic_stability"] == (
        "Born stability criteria violated: (C11 + C12) C33 - 2 C13^2 > 0 fails (-1.434e+04)")
    # all 21 constants: positive definite or not
    full = {f"C{i}{j}_GPa": (100.0 if i == j else 10.0 if j <= 3 else 0.0) for i in range(1, 7) for j in range(i, 7)}
    assert suspect_flags(full, "none") == {}
    flags = suspect_flags({**full, "C12_GPa": 120.0}, "none")              # (1, -1, 0, ...): 100 - 120
    assert flags == {"elastic_stability": "Born stability criteria violated: smallest eigenvalue of C > 0 fails (-20)"}


def test_raise_if_failed_names_every_failure():
    from fitsnap_ext.properties.engine import raise_if_failed

    raise_if_failed({"C11_GPa": 151.4})
    with pytest.raises(FitsnapError, match=r"^properties failed: liquid: deck in.liquid: boom; melting: lost atoms$"):
        raise_if_failed({"failed_properties": {"liquid": "deck in.liquid: boom", "melting": "lost atoms"}})


def test_planned_atom_steps_and_speed_parsing(tmp_path):
    from fitsnap_ext.properties.cost import duration, loop_speed, planned_runs, speed_replication
    from fitsnap_ext.properties.systems import get_preset

    runs = {r.run_name: r for r in planned_runs(get_preset("si"), True, ["eos", "liquid", "melting", "thermal"], 2, 8)}
    assert (runs["liquid"].natoms, runs["liquid"].steps) == (64, 5000)           # 2x2x2 cubic, 1.5+1.5+2 ps
    assert (runs["melt"].natoms, runs["melt"].steps) == (128, 4500)              # 2x2x4, 1 + 1 + 0.5 + 2 ps
    assert (runs["thermal_run3"].natoms, runs["thermal_run3"].steps) == (192, 2500)   # 2x1x12, 0.5 + 1 + 1 ps
    assert "thermal_run4" not in runs                                            # 3 velocity seeds
    assert sum(r.atom_steps for r in runs.values() if r.md) == 1_376_000 + 2 * 480_000
    lgps = planned_runs(get_preset("lgps"), True, ["eos", "diffusion"], 50, 50)
    assert [r.run_name for r in lgps][1:3] == ["diffusion_T600_run1", "diffusion_T600_run2"]
    assert len(lgps) == 1 + 4 * 2 and lgps[1].steps == 5500                      # 1 + 10 ps at 2 fs
    assert speed_replication((5.43, 5.43, 5.43), 8) == (2, 2, 2)
    assert speed_replication((8.69, 8.69, 12.6), 50) == (2, 1, 1)
    log = tmp_path / "log.speed.lammps"
    log.write_text("Loop time of 0.01 on 1 procs for 10 steps with 64 atoms\n\n"
                   "Loop time of 0.2 on 2 procs for 50 steps with 64 atoms\n")
    assert loop_speed(log) == pytest.approx(16000.0)
    assert [duration(s) for s in (0.3, 12.4, 185, 7500)] == ["<1 s", "12 s", "3 min 05 s", "2 h 05 min"]


def test_progress_estimate_and_suspect_flag_end_to_end(sw_mod, tmp_path):
    """SW's quick liquid (coordination 5.6) against a range that excludes it: the flag reaches props.json and the
    log; the log has the estimate (measured speed) and a line per property and per MD run."""
    from fitsnap_ext.properties import run_properties
    from fitsnap_ext.properties.systems import get_preset

    log = io.StringIO()
    system = replace(get_preset("si"), liquid_coordination=(6.0, 8.0))
    props = run_properties(sw_mod, system, ["eos", "elastic", "liquid"], quick=True, out=tmp_path / "p.json",
                           stream=log)
    text = log.getvalue()
    assert props["coordination_number"] == pytest.approx(5.59, abs=0.4)
    assert props["suspect"] == {"coordination_number": f"liquid coordination {props['coordination_number']:.3g} is "
                                "outside 6-8, far from any liquid of this system (was the potential fitted to liquid "
                                "configurations?)"}
    assert json.loads((tmp_path / "p.json").read_text())["suspect"] == props["suspect"]
    assert f"warning: suspect coordination_number: liquid coordination {props['coordination_number']:.3g}" in text
    speed = props["timing_s"]["md_speed_atom_steps_per_s"]
    assert speed > 1e4
    assert f"estimated cost at {speed / 1e3:.1f} katom-step/s (measured: 64 atoms x 50 MD steps)" in text
    assert re.search(r"; eos <1 s \(0.0016 M atom-steps\), elastic (<1|\d+) s \(0.0208 M atom-steps\), liquid "
                     r"(<1|\d+) s \(0.32 M atom-steps\)$", text, re.MULTILINE)
    assert "liquid: LAMMPS run 'liquid' started: 64 atoms x 5000 steps" in text
    for name in ("eos", "elastic", "liquid"):
        assert f"] {name}: done in " in text
    assert all(line.startswith("[properties ") for line in text.splitlines())


def test_unwritable_out_is_one_line_before_any_work(sw_mod, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file\n")
    proc = _cli([sw_mod, "--system", "si", "--out", blocker / "props.json"], tmp_path)
    assert proc.returncode == 1
    assert _error_lines(proc) == [f"fitsnap_ext: error: cannot write into {blocker}: {blocker} is not a folder"]
    assert proc.stdout == ""                       # refused before the first progress line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(not MPIRUN.exists(), reason="no mpirun next to the interpreter")
def test_unwritable_out_under_mpirun_every_rank_exits(sw_mod, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file\n")
    proc = _cli([sw_mod, "--system", "si", "--out", blocker / "props.json"], tmp_path, nprocs=2, timeout=90)
    assert proc.returncode == 1
    lines = _error_lines(proc)
    assert len(lines) == 1 and lines[0] == f"fitsnap_ext: error: cannot write into {blocker}: {blocker} is not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(not MPIRUN.exists(), reason="no mpirun next to the interpreter")
def test_rank0_write_failure_is_raised_on_every_rank(tmp_path):
    """What guards every file run_properties writes (props.json, plots, data files): an OSError on rank 0 comes
    out as the same FitsnapError on rank 1, which would otherwise wait in the next collective call."""
    (tmp_path / "afile").write_text("x")
    script = ("from mpi4py import MPI\n"
              "from fitsnap_ext.errors import FitsnapError\n"
              "from fitsnap_ext.properties.outputs import on_rank0\n"
              "comm = MPI.COMM_WORLD\n"
              "try:\n"
              f"    on_rank0(comm, 'writing props.json', lambda: open({str(tmp_path / 'afile' / 'p.json')!r}, 'w'))\n"
              "except FitsnapError as exc:\n"
              "    print(f'rank {comm.rank}: {exc}', flush=True)\n"
              "comm.Barrier()\n")
    proc = subprocess.run([str(MPIRUN), "-np", "2", sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    # the two ranks' lines may arrive interleaved through mpirun's forwarding: find each one in the whole output
    said = proc.stdout.replace("\n", "")
    line0 = f"rank 0: writing props.json: cannot write {tmp_path / 'afile' / 'p.json'}: Not a directory"
    line1 = f"rank 1: writing props.json: cannot write {tmp_path / 'afile' / 'p.json'}: Not a directory " \
            "(rank 0, during writing props.json)"
    assert line0 in said and line1 in said and len(said) == len(line0) + len(line1), proc.stdout


def test_existing_outputs_refused_without_overwrite(sw_mod, tmp_path):
    out = tmp_path / "props.json"
    out.write_text('{"mine": 1}\n')
    proc = _cli([sw_mod, "--system", "si", "--properties", "eos", "--out", out], tmp_path)
    assert proc.returncode == 1
    assert _error_lines(proc) == [f"fitsnap_ext: error: {out} exists (give --overwrite to replace it)"]
    assert out.read_text() == '{"mine": 1}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["props.json"]
    out.unlink()
    (tmp_path / "props_files").mkdir()           # a sibling output alone is refused too
    proc = _cli([sw_mod, "--system", "si", "--properties", "eos", "--out", out], tmp_path)
    assert proc.returncode == 1 and "props_files exists" in proc.stderr
    proc = _cli([sw_mod, "--system", "si", "--properties", "eos", "--out", out, "--overwrite"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["lattice_constant_A"] == pytest.approx(5.431, abs=2e-3)


def test_failed_runs_leave_no_files_or_empty_folders(sw_mod, tmp_path, monkeypatch):
    from fitsnap_ext.properties import report, run_properties

    # the crystal flies apart (tests/test_properties.py): nothing at all is left, not even the new parent folder
    mod = tmp_path / "repulsive.mod"
    mod.write_text("pair_style soft 4.0\npair_coeff * * 0.05\n")
    with pytest.raises(FitsnapError, match="flew apart"):
        run_properties(mod, "si", ["eos", "elastic"], quick=True, out=tmp_path / "new" / "p.json", stream=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repulsive.mod"]
    # writing props.json fails after all the work: the error names the file; no outputs stay
    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(report, "write_json", refuse)
    out = re.escape(str(tmp_path / "p.json"))
    with pytest.raises(FitsnapError, match=rf"^writing {out}: cannot write {out}: Permission denied$"):
        run_properties(sw_mod, "si", ["eos"], quick=True, out=tmp_path / "p.json", stream=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repulsive.mod"]
    monkeypatch.undo()
    # a property that fails before writing anything (its deck stops at once) leaves no empty folder behind
    broken = tmp_path / "sw_liquid_breaks.mod"
    broken.write_text(sw_mod.read_text() + 'if "$(is_defined(variable,Thot))" then "not_a_lammps_command"\n')
    props = run_properties(broken, "si", ["eos", "liquid"], quick=True, out=tmp_path / "q.json", stream=io.StringIO())
    assert "not_a_lammps_command" in props["failed_properties"]["liquid"]
    folders = [p for p in (tmp_path / "q_files").rglob("*") if p.is_dir()]
    assert folders and all(any(p.iterdir()) for p in folders)
    assert not (tmp_path / "q_files" / "liquid").exists()


@pytest.mark.slow
def test_demo_potential_quick_liquid_is_flagged(tmp_path):
    """The issue's case: the demo fit has no liquid data; its quick liquid's coordination (13.7 measured) is far
    outside liquid Si's and props.json says so. (~40 s on an idle core: the fit, the EOS, a 64-atom liquid.)"""
    from conftest import run_cli

    run_cli([REPO / "input_files" / "in.demo"], tmp_path, timeout=300)
    proc = _cli(["Si_demo_pot.mod", "--system", "si", "--quick", "--properties", "liquid", "--out", "liq.json"],
                tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    props = json.loads((tmp_path / "liq.json").read_text())
    assert props["coordination_number"] > 9.0
    assert props["suspect"]["coordination_number"].startswith(
        f"liquid coordination {props['coordination_number']:.3g} is outside 4-8")
    assert "warning: suspect coordination_number" in proc.stdout
