"""scripts/slurm/ run as they are: a stand-in `sbatch` runs each job at once (array tasks one after another,
SLURM_ARRAY_TASK_ID set), so the scripts' own command lines, model lists and file hand-offs are what is tested."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, read_snapcoeff, run_cli
from test_generate_prepare import _deck as cp2k_deck, _fake_cp2k

SLURM = REPO / "scripts" / "slurm"

FAKE_SBATCH = r'''#!{python}
"""Stand-in for sbatch: runs the job now (output appended to FAKE_SBATCH_LOG.out); --array=a-b runs it once per
index; prints a job id (alone with --parsable)."""
import os, subprocess, sys
args, opts = sys.argv[1:], {}
while args and args[0].startswith("--"):
    key, _, value = args.pop(0)[2:].partition("=")
    opts[key] = value
env = dict(os.environ, SLURM_NTASKS="1")
if "wrap" in opts:
    cmd = ["bash", "-c", opts["wrap"]]
else:
    cmd = ["bash", *args]
first, _, last = opts.get("array", "").partition("-")
for task in range(int(first), int(last) + 1) if first else [None]:
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(task)
    with open(os.environ["FAKE_SBATCH_LOG"] + ".out", "a") as out:  # the job's output, as SLURM's --output
        out.write(f"=== job {os.path.basename(cmd[1]) if 'wrap' not in opts else 'wrap'} task {task}\n")
        out.flush()
        subprocess.run(cmd, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
with open(os.environ["FAKE_SBATCH_LOG"], "a") as log:
    log.write(" ".join(f"--{k}={v}" if v else f"--{k}" for k, v in opts.items()) + "\n")
print("4242" if "parsable" in opts else "Submitted batch job 4242")
'''


def _env(tmp_path):
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(FAKE_SBATCH.replace("{python}", sys.executable))
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    venv = REPO / ".venv" if (REPO / ".venv").is_dir() else os.path.dirname(os.path.dirname(sys.executable))
    return {**os.environ, "SBATCH": str(sbatch), "FITSNAP_EXT_VENV": str(venv), "OMP_NUM_THREADS": "1",
            "FAKE_SBATCH_LOG": str(tmp_path / "sbatch.log"),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}


def _run(script, args, tmp_path, env, **extra):
    proc = subprocess.run(["bash", str(SLURM / script), *map(str, args)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900, env={**env, **extra})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_fit_script_equals_the_command(tmp_path):
    """fit.sbatch on 2 ranks writes the coefficients the plain serial command writes (≤ 1e-10 relative)."""
    env = _env(tmp_path)
    (tmp_path / "job").mkdir()
    (tmp_path / "plain").mkdir()
    deck = REPO / "input_files" / "in.demo"
    keys = ["-k", "PROPERTIES", "properties", "eos"]
    _run("fit.sbatch", [deck, *keys], tmp_path / "job", env, SLURM_NTASKS="2")
    run_cli([deck, *keys], tmp_path / "plain")
    job, plain = (read_snapcoeff(tmp_path / d / "Si_demo_pot.snapcoeff") for d in ("job", "plain"))
    assert np.allclose(job, plain, rtol=1e-10, atol=1e-12) and len(job) == 31


def test_cp2k_array_job_labels_every_prepared_folder(tmp_path):
    """cp2k_prepare.sh: --prepare, one array task per folder (stand-in CP2K), then the parsing run."""
    exe, data = _fake_cp2k(tmp_path)
    deck = cp2k_deck(tmp_path, exe, data, "slurm")
    env = _env(tmp_path)
    proc = _run("cp2k_prepare.sh", [deck], tmp_path, env, CP2K=str(exe), FAKE_CP2K_LOG=str(tmp_path / "cp2k.log"))
    assert "submitted 3 CP2K runs" in proc.stdout, proc.stdout + (tmp_path / "sbatch.log.out").read_text()
    assert len((tmp_path / "cp2k.log").read_text().split()) == 3  # one CP2K call per folder, none rerun
    log = (tmp_path / "sbatch.log").read_text().splitlines()
    assert log[0].startswith("--parsable --array=1-3") and "--dependency=afterany:4242" in log[1]
    frames = (tmp_path / "slurm" / "r.xyz").read_text()
    assert frames.count("energy=") == 3


@pytest.mark.slow
def test_study_array_job_then_report_from_cache(tmp_path):
    """study_submit.sh on the quick Si ladder: one array task per rung, then the report job finds every stage
    cached (no fit in its log) and reports all four models."""
    env = _env(tmp_path)
    out = tmp_path / "study"
    proc = _run("study_submit.sh", [REPO / "input_files" / "study_si.in", "--quick", "--out", out], tmp_path, env)
    assert "submitted 4 rungs" in proc.stdout, proc.stdout
    log = (tmp_path / "sbatch.log").read_text().splitlines()
    assert log[0] == "--parsable --array=0-3" and log[1] == "--dependency=afterok:4242"
    jobs = (tmp_path / "sbatch.log.out").read_text()
    report = jobs[jobs.index("study_report.sbatch"):]
    assert report.count("fit cached") == 4 and "descriptors done" not in report, report
    rows = (out / "study.csv").read_text().splitlines()
    assert len(rows) == 5, rows
