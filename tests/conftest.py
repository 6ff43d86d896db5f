"""Shared fixtures: paths to the repo, the shared data and a runner for the CLI (serial or mpirun)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def need_shared(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


def run_cli(args, cwd, nprocs=1, timeout=600, check=True):
    """Run `python -m fitsnap_ext ARGS` in `cwd`, under `mpirun -np N` when nprocs > 1."""
    cmd = [sys.executable, "-m", "fitsnap_ext", *map(str, args)]
    if nprocs > 1:
        mpirun = Path(sys.executable).with_name("mpirun")
        cmd = [str(mpirun if mpirun.exists() else shutil.which("mpirun")), "-np", str(nprocs), *cmd]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_snapcoeff(path) -> np.ndarray:
    """All coefficient values of a .snapcoeff file (every element, constant first)."""
    values = []
    lines = [l.split("#")[0].split() for l in Path(path).read_text().splitlines()]
    lines = [l for l in lines if l]
    nelem, ncoeff = map(int, lines[0])
    i = 1
    for _ in range(nelem):
        i += 1  # element line
        values += [float(l[0]) for l in lines[i:i + ncoeff]]
        i += ncoeff
    return np.array(values)


@pytest.fixture
def repo():
    return REPO
