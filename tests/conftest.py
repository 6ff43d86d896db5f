"""Shared fixtures: paths to the repo, the shared data, a runner for the CLI (serial or mpirun) and generator decks."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# [BISPECTRUM] of the Si_Zuo_JPCA2020 SNAPs that ship with LAMMPS (linear: rcutfac 4.9, quadratic: 4.8)
ZUO_BISPECTRUM = """numTypes = 1
twojmax = 8
rcutfac = {rcutfac}
rfac0 = 0.99363
rmin0 = 0
wj = 1
radelem = 0.5
type = Si
bzeroflag = 0
quadraticflag = 0"""

SW_LABELER = """
[LABELER]
type = lammps
pair_style = sw
pair_coeff = * * {potentials}/Si.sw Si
elements = Si
masses = 28.0855
"""


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


def fit_in_process(deck, keys, work: Path):
    """Fit `deck` with `keys` overrides ((SECTION, key, value) triples) in a new folder `work`, in this process;
    the FitResult (linear or network)."""
    import io

    from fitsnap_ext.config import load_settings
    from fitsnap_ext.pipeline import Progress, run_fit
    from fitsnap_ext.parallel import world

    settings = load_settings(deck, keys)
    work.mkdir()
    comm = world()
    return run_fit(settings.in_folder(work), comm, overwrite=False, progress=Progress(comm, stream=io.StringIO()))


def write_gen_deck(folder: Path, name="gen.in", output="out", labeler=SW_LABELER, groups="", extra="") -> Path:
    """A generator deck `folder/name`: [GENERATE] (output, seed 7, `extra` lines), `labeler`, then `groups`."""
    path = folder / name
    path.write_text(f"[GENERATE]\noutput = {output}\nseed = 7\n{extra}\n{labeler}\n{textwrap.dedent(groups)}")
    return path


def run_generate(deck, env_extra=None, args=(), mpi=0, kill_after=0) -> subprocess.CompletedProcess:
    """Run the generator CLI on `deck` (under `mpirun -np mpi` when mpi > 0); the result, whatever its exit code.

    kill_after=K (serial runs): the process SIGKILLs itself, with no cleanup as a killed job, right after the K-th
    frame of this run is appended (the test wraps the runner's writer; exit code -9)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "fitsnap_ext", "generate", *args, str(deck)]
    if kill_after:
        cmd[1:4] = ["-c", textwrap.dedent(f"""
            import os, signal, sys
            import mpi4py.MPI  # before lammps
            from fitsnap_ext.cli import main
            from fitsnap_ext.generate import runner
            append, appended = runner.append_extxyz, []
            def append_then_kill(*a, **k):
                append(*a, **k)
                appended.append(1)
                if len(appended) == {int(kill_after)}:
                    sys.stdout.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            runner.append_extxyz = append_then_kill
            sys.exit(main(["generate", *sys.argv[1:]]))""")]
    if mpi:
        cmd = [os.path.join(os.path.dirname(sys.executable), "mpirun"), "-np", str(mpi)] + cmd
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


# command-line keys that make a linear fit dump FitSNAP's A, b, w and its dataframe (Descriptors.npy, ...)
DUMP_KEYS = [arg for key in ("dump_descriptors", "dump_truth", "dump_weights", "dump_dataframe")
             for arg in ("-k", "EXTRAS", key, "1")]


def read_dumped_rows(folder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, b, w) a fit run with DUMP_KEYS wrote into `folder`."""
    return tuple(np.load(Path(folder) / name) for name in ("Descriptors.npy", "Truth-Ref.npy", "Weights.npy"))


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


@pytest.fixture(scope="session")
def sw_mod(tmp_path_factory) -> Path:
    """A .mod running Stillinger-Weber Si (the Si.sw that ships with LAMMPS, absolute path)."""
    from fitsnap_ext.lammps_session import potentials_dir

    path = tmp_path_factory.mktemp("sw") / "Si_sw.mod"
    path.write_text(f"pair_style sw\npair_coeff * * {potentials_dir() / 'Si.sw'} Si\n")
    return path


def lammps_energy_forces(session, frame, types, mod, pressure=False):
    """Energy and forces (and, if asked, the virial pressure tensor xx yy zz yz xz xy in bar) from LAMMPS."""
    from fitsnap_ext.lammps_session import include_commands

    session.place(frame, types)
    session.commands([*include_commands(mod), "compute pv all pressure NULL virial", "run 0"])
    n = frame.natoms
    out = (float(session.lmp.get_thermo("pe")), np.array(session.lmp.numpy.extract_atom("f")[:n], dtype=float))
    return out + (session.compute_vector("pv")[[0, 1, 2, 5, 4, 3]],) if pressure else out


def xyz_refit_deck(bispectrum: str, potential: str, groups: str) -> str:
    """A linear SVD fitting deck over the extended-XYZ groups in ./data (stress in bar; energy, force and stress
    rows), writing <potential>.* and <potential>_metrics.md: the teacher-recovery tests' deck."""
    return f"""[BISPECTRUM]
{bispectrum.strip()}

[CALCULATOR]
energy = 1
force = 1
stress = 1

[SOLVER]
solver = SVD

[SCRAPER]
scraper = XYZ
stress_unit = bar

[PATH]
dataPath = data

[OUTFILE]
metrics = {potential}_metrics.md
potential = {potential}

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
{groups}
"""
