"""CP2K labeler (Quickstep, GTH pseudopotentials, MOLOPT basis, PBE by default).

Each configuration is written as a CP2K input and run as its own MPI job
(``OMP_NUM_THREADS=1 mpirun -np <ranks> cp2k.psmp -i in -o out``); energy, forces and the analytical stress
tensor are parsed from the output. Units: CP2K prints energy in Hartree, forces in Hartree/bohr and the stress
in GPa with the *pressure-positive* sign (the opposite of ASE's); it is converted to bar, pressure-positive.

Runs elsewhere (an HPC array job, another machine): ``generate --prepare`` writes each configuration's input into
its run folder; a run folder whose ``cp2k.out`` finished for exactly the input this labeler would write is parsed,
not rerun.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, DeckError
from fitsnap_ext.generate.deck import LabelerSettings
from fitsnap_ext.generate.base import Labeler, labelled
from fitsnap_ext.progress import Progress

HARTREE_EV = 27.211386245988       # CODATA 2018 (as CP2K 2023 and ASE)
BOHR_ANG = 0.529177210903
GPA_BAR = 1.0e4


def find_data_dir(hint: str = "") -> str:
    """Folder with BASIS_MOLOPT and GTH_POTENTIALS: the deck's data_dir, $CP2K_DATA_DIR, or Debian's."""
    for d in (hint, os.environ.get("CP2K_DATA_DIR", ""), "/usr/share/cp2k/data", "/usr/share/cp2k"):
        if d and os.path.isfile(os.path.join(d, "BASIS_MOLOPT")) and os.path.isfile(
                os.path.join(d, "GTH_POTENTIALS")):
            return d
    raise DeckError("CP2K data files (BASIS_MOLOPT, GTH_POTENTIALS) not found: set data_dir", section="LABELER",
                    key="data_dir")


def kpoint_mesh(cell: np.ndarray, s: LabelerSettings) -> list[int]:
    if s.kspacing and s.kspacing > 0:
        rec = 2 * np.pi * np.linalg.inv(np.asarray(cell, float)).T  # rows: reciprocal vectors (1/Å)
        return [max(1, int(math.ceil(np.linalg.norm(b) / s.kspacing - 1e-9))) for b in rec]
    return list(s.kpoints)


def labelled_kpoint_mesh(info: dict, cell: np.ndarray) -> tuple[int, ...] | None:
    """The k-mesh a frame labelled by this labeler was computed with (its header's kpoints or kspacing and its
    cell); None for frames of other labelers."""
    if info.get("labeler") != "cp2k":
        return None
    settings = json.loads(info.get("labeler_settings") or "{}")
    s = LabelerSettings(type="cp2k", kpoints=settings.get("kpoints") or [1, 1, 1],
                        kspacing=settings.get("kspacing") or 0.0)
    return tuple(kpoint_mesh(cell, s))


def _scf_section(s: LabelerSettings, guess_file: str) -> str:
    """&SCF: the guess, the convergence and the solver (diagonalisation with Broyden mixing, or OT), smearing."""
    smear = ""
    if s.smearing > 0:
        smear = (f"      &SMEAR ON\n        METHOD FERMI_DIRAC\n        ELECTRONIC_TEMPERATURE [K] {s.smearing!r}\n"
                 f"      &END SMEAR\n")
    added = f"      ADDED_MOS {s.added_mos}\n" if (s.added_mos or s.smearing > 0) else ""
    if s.smearing > 0 and not s.added_mos:
        added = "      ADDED_MOS 20\n"
    if s.scf == "ot":  # orbital transformation: direct minimisation, for Γ-only insulators (validated in the deck)
        solver = (f"      &OT ON\n        MINIMIZER DIIS\n        PRECONDITIONER FULL_SINGLE_INVERSE\n      &END OT\n"
                  f"      &OUTER_SCF\n        MAX_SCF 10\n        EPS_SCF {s.eps_scf!r}\n      &END OUTER_SCF\n")
    else:
        solver = (f"{added}      &DIAGONALIZATION ON\n        ALGORITHM STANDARD\n      &END DIAGONALIZATION\n"
                  f"      &MIXING\n        METHOD BROYDEN_MIXING\n        ALPHA {s.mixing_alpha!r}\n        NBROYDEN 8\n"
                  f"      &END MIXING\n")
    return (f"    &SCF\n      SCF_GUESS {'RESTART' if guess_file else 'ATOMIC'}\n      EPS_SCF {s.eps_scf!r}\n"
            f"      MAX_SCF {s.max_scf}\n{solver}{smear}    &END SCF\n")


def _kpoints_section(kp: list[int]) -> str:
    """&KPOINTS for a Monkhorst-Pack mesh; nothing at Γ only."""
    if kp == [1, 1, 1]:
        return ""
    return ("    &KPOINTS\n      SCHEME MONKHORST-PACK " + " ".join(str(k) for k in kp) +
            "\n      SYMMETRY OFF\n      FULL_GRID OFF\n    &END KPOINTS\n")


def _dft_section(frame: Frame, s: LabelerSettings, data_dir: str, guess_file: str) -> str:
    """&DFT: basis and pseudopotential files, grids, SCF, k-points, functional."""
    restart = f"    WFN_RESTART_FILE_NAME {guess_file}\n" if guess_file else ""
    return f"""  &DFT
{restart}    BASIS_SET_FILE_NAME {os.path.join(data_dir, 'BASIS_MOLOPT')}
    POTENTIAL_FILE_NAME {os.path.join(data_dir, 'GTH_POTENTIALS')}
    &MGRID
      CUTOFF {s.cutoff!r}
      REL_CUTOFF {s.rel_cutoff!r}
      NGRIDS 4
    &END MGRID
    &QS
      EPS_DEFAULT {s.eps_default!r}
      EXTRAPOLATION USE_GUESS
    &END QS
{_scf_section(s, guess_file)}{_kpoints_section(kpoint_mesh(frame.cell, s))}    &XC
      &XC_FUNCTIONAL {s.xc}
      &END XC_FUNCTIONAL
    &END XC
  &END DFT
"""


def _subsys_section(frame: Frame, s: LabelerSettings) -> str:
    """&SUBSYS: the cell (Å, its periodic directions), the Cartesian coordinates (Å), one &KIND per element."""
    cell_lines = "\n".join(f"      {'ABC'[i]} {' '.join(repr(float(x)) for x in frame.cell[i])}"
                           for i in range(3))
    periodic = "".join("XYZ"[i] for i in range(3) if frame.pbc[i]) or "NONE"
    coords = "\n".join(f"      {sym} {' '.join(repr(float(x)) for x in pos)}"
                       for sym, pos in zip(frame.symbols, frame.positions))
    kind_blocks = "\n".join(f"    &KIND {k}\n      BASIS_SET {s.basis}\n      POTENTIAL {s.potential}\n    &END KIND"
                            for k in sorted(set(frame.symbols)))
    return f"""  &SUBSYS
    &CELL
{cell_lines}
      PERIODIC {periodic}
    &END CELL
    &COORD
{coords}
    &END COORD
{kind_blocks}
  &END SUBSYS
"""


def cp2k_input(frame: Frame, s: LabelerSettings, data_dir: str, project: str = "fx", guess_file: str = "") -> str:
    """The CP2K input text for one ENERGY_FORCE calculation with the analytical stress tensor.

    guess_file: a wavefunction restart file (.wfn at Γ, .kp with k-points) of the same atoms and k-mesh to start
    the SCF from; CP2K falls back to the atomic guess when it does not exist."""
    return f"""&GLOBAL
  PROJECT {project}
  RUN_TYPE ENERGY_FORCE
  PRINT_LEVEL LOW
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  STRESS_TENSOR ANALYTICAL
{_dft_section(frame, s, data_dir, guess_file)}{_subsys_section(frame, s)}  &PRINT
    &FORCES ON
    &END FORCES
    &STRESS_TENSOR ON
    &END STRESS_TENSOR
  &END PRINT
&END FORCE_EVAL
"""


_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"


def parse_cp2k_output(text: str, natoms: int, where=None):
    """(energy eV, forces eV/Å (N,3), stress bar pressure-positive 3×3 or None) from a CP2K output."""
    if "SCF run NOT converged" in text:
        raise DataError("CP2K SCF did not converge (raise max_scf, lower mixing_alpha or add smearing)", where)
    m = re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[(?:a\.u\.|hartree)\]:\s+(" + _FLOAT + ")", text)
    if not m:
        raise DataError("no total energy in the CP2K output", where)
    energy = float(m[-1].replace("D", "E")) * HARTREE_EV
    # forces block: "ATOMIC FORCES in [a.u.]" ... lines "  1  1  Si  fx fy fz" ... "SUM OF ATOMIC FORCES"
    i = text.rfind("ATOMIC FORCES in")
    if i < 0:
        raise DataError("no ATOMIC FORCES block in the CP2K output", where)
    block = text[i:text.find("SUM OF ATOMIC FORCES", i)]
    rows = re.findall(r"^\s*(\d+)\s+\d+\s+[A-Za-z_]\w*\s+(" + _FLOAT + r")\s+(" + _FLOAT + r")\s+(" + _FLOAT
                      + r")\s*$", block, flags=re.M)
    if len(rows) != natoms:
        raise DataError(f"{len(rows)} force rows for {natoms} atoms in the CP2K output", where)
    forces = np.zeros((natoms, 3))
    for r in rows:
        forces[int(r[0]) - 1] = [float(x.replace("D", "E")) for x in r[1:]]
    forces *= HARTREE_EV / BOHR_ANG
    stress = None
    j = text.rfind("STRESS| Analytical stress tensor [GPa]")
    if j >= 0:
        lines = text[j:].splitlines()[1:6]
        vals = {}
        for ln in lines:
            mm = re.match(r"^\s*STRESS\|\s+([xyz])\s+(" + _FLOAT + r")\s+(" + _FLOAT + r")\s+(" + _FLOAT + r")\s*$",
                          ln)
            if mm:
                vals["xyz".index(mm.group(1))] = [float(mm.group(k)) for k in (2, 3, 4)]
        if len(vals) == 3:
            stress = np.array([vals[0], vals[1], vals[2]]) * GPA_BAR
    if stress is None:
        k = text.rfind("STRESS TENSOR [GPa]")
        if k >= 0:
            rows = re.findall(r"^\s*([XYZ])\s+(" + _FLOAT + r")\s+(" + _FLOAT + r")\s+(" + _FLOAT + r")\s*$",
                              text[k:k + 800], flags=re.M)
            if len(rows) >= 3:
                stress = np.array([[float(x) for x in r[1:]] for r in rows[:3]]) * GPA_BAR
    return energy, forces, stress


def scf_steps(text: str) -> int:
    """SCF steps of a CP2K run: the outer loop's total (OT) or the inner loop's count (diagonalisation)."""
    outer = re.findall(r"outer SCF loop converged in\s+\d+ iterations or\s+(\d+) steps", text)
    if outer:
        return int(outer[-1])
    inner = re.findall(r"SCF run converged in\s+(\d+) steps", text)
    return int(inner[-1]) if inner else 0


def _mpi_command(s: LabelerSettings, exe: str) -> list[str]:
    if s.mpi_ranks <= 1 and not s.mpi_command:
        return []
    if s.mpi_command:
        return s.mpi_command.replace("{ranks}", str(s.mpi_ranks)).split()
    # Debian's cp2k.psmp is built with OpenMPI: use the mpirun that sits next to it, not the venv's (MPICH)
    folder = os.path.dirname(os.path.realpath(shutil.which(exe) or exe))
    for cand in (os.path.join(os.path.dirname(shutil.which(exe) or exe), "mpirun.openmpi"),
                 os.path.join(folder, "mpirun.openmpi"), "/usr/bin/mpirun.openmpi", "/usr/bin/mpirun"):
        if os.path.exists(cand):
            return [cand, "--allow-run-as-root", "--oversubscribe", "-np", str(s.mpi_ranks)]
    return []


def _clean_env() -> dict:
    """Environment for the CP2K job: one OpenMP thread, and none of the launcher variables of an outer mpirun."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "OMPI_", "MPIR_", "HYDRA_", "MPICH_", "I_MPI_"))}
    env["OMP_NUM_THREADS"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def _without_guess(inp: str) -> str:
    """An input with its SCF-guess lines removed: a restart guess changes the SCF path, not the converged labels."""
    return "\n".join(ln for ln in inp.splitlines()
                     if not ln.strip().startswith(("SCF_GUESS", "WFN_RESTART_FILE_NAME")))


def _write_atomically(path: str, text: str) -> None:
    with open(path + ".part", "w") as fh:
        fh.write(text)
    os.replace(path + ".part", path)


def cp2k_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"CP2K version\s+(\S+)", out)
    return m.group(1) if m else ""


class Cp2kLabeler(Labeler):
    name = "cp2k"
    in_process = False  # CP2K is its own MPI job: the generator runs serially

    def __init__(self, s: LabelerSettings, workdir: str | None = None, progress: Progress | None = None):
        super().__init__()
        self.s = s
        self.progress = progress or Progress(prefix="generate")
        self.exe = shutil.which(s.executable) or (s.executable if os.path.isfile(s.executable) else None)
        if not self.exe:
            raise DeckError(f"CP2K executable {s.executable!r} not found on PATH (Debian: apt-get install cp2k)",
                            section="LABELER", key="executable")
        self.data_dir = find_data_dir(s.data_dir)
        self.workdir = os.path.abspath(workdir or s.workdir or "cp2k_runs")
        self.mpi = _mpi_command(s, self.exe)
        self.version = cp2k_version(self.exe)
        self.settings = {"code": "CP2K", "version": self.version, "xc": s.xc, "basis": s.basis,
                         "potential": s.potential, "cutoff_Ry": s.cutoff, "rel_cutoff_Ry": s.rel_cutoff,
                         "kpoints": list(s.kpoints) if not s.kspacing else None,
                         "kspacing": s.kspacing or None, "eps_scf": s.eps_scf, "eps_default": s.eps_default,
                         "smearing_K": s.smearing, "added_mos": s.added_mos}
        for key, default in (("scf", "diagonalization"), ("scf_guess", "atomic")):
            if getattr(s, key) != default:  # recorded only when not the default, so older datasets keep their header
                self.settings[key] = getattr(s, key)
        self.last_seconds = 0.0
        self.last_scf_steps = 0
        self.meshes: dict[str, tuple] = {}  # group -> the k-mesh of its first configuration in this run
        self.mesh_change_noted: set[str] = set()  # groups whose mesh change was said (once per group and run)

    def run_dir(self, tag: str) -> str:
        return os.path.join(self.workdir, re.sub(r"[^A-Za-z0-9_.\-]", "_", tag))

    def prepare(self, frame: Frame) -> str:
        """Write the configuration's input (atomic guess) into its run folder, to be run elsewhere; returns it."""
        d = self.run_dir(str(frame.info.get("config_id", "config")))
        os.makedirs(d, exist_ok=True)
        _write_atomically(os.path.join(d, "cp2k.inp"), cp2k_input(frame, self.s, self.data_dir))
        return d

    def finished_output(self, d: str, inp: str) -> str:
        """The output of a finished run in folder d made from this input (up to the SCF guess), else ''."""
        try:
            with open(os.path.join(d, "cp2k.inp")) as fh:
                done_inp = fh.read()
            with open(os.path.join(d, "cp2k.out")) as fh:
                text = fh.read()
        except OSError:
            return ""
        if _without_guess(done_inp) != _without_guess(inp) or "PROGRAM ENDED AT" not in text:
            return ""
        return text

    def run_text(self, inp: str, tag: str) -> str:
        d = self.run_dir(tag)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cp2k.inp"), "w") as fh:
            fh.write(inp)
        cmd = self.mpi + [self.exe, "-i", "cp2k.inp", "-o", "cp2k.out"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=d, env=_clean_env(), capture_output=True, text=True)
        self.last_seconds = time.monotonic() - t0
        out_path = os.path.join(d, "cp2k.out")
        text = open(out_path).read() if os.path.exists(out_path) else ""
        if proc.returncode != 0:
            tail = (proc.stderr or "")[-800:] + text[-800:]
            raise DataError(f"CP2K failed (exit {proc.returncode}) in {d}: {tail.strip()}", tag)
        return text

    def guess_path(self, frame: Frame) -> str:
        """Where the wavefunction of the last configuration with these atoms and this k-mesh is kept."""
        kp = kpoint_mesh(frame.cell, self.s)
        key = hashlib.sha256(repr((list(frame.symbols), kp)).encode()).hexdigest()[:16]
        return os.path.join(self.workdir, f"guess-{key}" + (".wfn" if kp == [1, 1, 1] else ".kp"))

    def note_mesh_change(self, frame: Frame) -> None:
        """Say when a k-point spacing gives a group's configurations different meshes: each mesh has its own
        k-point error, i.e. its own energy zero (GaN, kspacing 0.4: 5x3x3 above c = 5.236 Å, 5x3x4 below, 1.1
        meV/atom apart)."""
        group = str(frame.info.get("config_id", "")).split(":")[0]
        mesh = tuple(kpoint_mesh(frame.cell, self.s))
        first = self.meshes.setdefault(group, mesh)
        if mesh != first and group not in self.mesh_change_noted:
            self.progress.note(
                f"note: {frame.info.get('config_id')} gets the k-mesh {'x'.join(map(str, mesh))}, earlier "
                f"configurations of {group} {'x'.join(map(str, first))}: their energies differ by the two meshes' "
                f"k-point errors (fixed kpoints, or a kspacing that rounds alike over the group, avoid it)")
            self.mesh_change_noted.add(group)

    def label(self, frame: Frame) -> Frame:
        tag = str(frame.info.get("config_id", "config"))
        if self.s.kspacing:
            self.note_mesh_change(frame)
        run_dir = self.run_dir(tag)
        guess = self.guess_path(frame) if self.s.scf_guess == "restart" else ""
        inp = cp2k_input(frame, self.s, self.data_dir, guess_file=guess if guess and os.path.exists(guess) else "")
        text = self.finished_output(run_dir, inp)
        if text:
            self.progress.note(f"{tag}: finished CP2K run found in {run_dir}, parsed (not rerun)")
        else:
            text = self.run_text(inp, tag)
        e, f, st = parse_cp2k_output(text, frame.natoms, tag)
        self.last_scf_steps = scf_steps(text)
        if guess:  # keep this wavefunction for the next configuration (copied, then renamed: never half-written)
            written = os.path.join(run_dir, "fx-RESTART" + os.path.splitext(guess)[1])
            if os.path.exists(written):
                shutil.copyfile(written, guess + ".part")
                os.replace(guess + ".part", guess)
        if not all(frame.pbc):
            st = None
        if not self.s.keep_files:
            shutil.rmtree(run_dir, ignore_errors=True)
        return labelled(frame, e, f, st)
