"""One atomic configuration with its reference labels (metal units: eV, Å, bar)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..units import ase_stress_to_bar, bar_to_ase_stress


@dataclass
class Frame:
    """A labelled configuration.

    `cell` rows are the lattice vectors (Å); `stress` is the 3×3 stress tensor in **bar** with the
    LAMMPS/VASP sign convention (positive = compressive pressure, i.e. pressure = trace/3);
    `energy` is the total energy (eV). Missing labels are None.
    """

    symbols: list[str]
    positions: np.ndarray            # (N, 3) Å
    cell: np.ndarray                 # (3, 3) Å, rows are lattice vectors
    energy: float | None = None      # eV (total)
    forces: np.ndarray | None = None  # (N, 3) eV/Å
    stress: np.ndarray | None = None  # (3, 3) bar, pressure-positive
    pbc: tuple[bool, bool, bool] = (True, True, True)
    group: str = ""
    source: str = ""                 # the data file it came from, for error messages
    info: dict = field(default_factory=dict)
    index: int | None = None         # configuration index in its file (extended XYZ) or group (JSON)
    line: int | None = None          # first line of the configuration in a text file

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        self.cell = np.asarray(self.cell, dtype=float).reshape(3, 3)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=float).reshape(-1, 3)
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=float).reshape(3, 3)
        self.symbols = [str(s) for s in self.symbols]

    def where(self) -> dict:
        """DataError keywords naming this configuration: the file (with its line) and the configuration index."""
        path = self.source or self.group or None
        if path and self.line is not None:
            path = f"{path}:{self.line}"
        return dict(path=path, index=self.index)

    def label(self) -> str:
        """How errors name this configuration: 'file:line (configuration i)'."""
        where = self.where()
        index = f" (configuration {where['index']})" if where["index"] is not None else ""
        return f"{where['path'] or 'data'}{index}"

    @property
    def natoms(self) -> int:
        return len(self.symbols)

    @property
    def volume(self) -> float:
        return abs(float(np.linalg.det(self.cell)))

    def copy(self) -> "Frame":
        """A copy whose arrays and info can be changed without touching this frame."""
        return replace(self, positions=self.positions.copy(), cell=self.cell.copy(), info=dict(self.info),
                       forces=None if self.forces is None else self.forces.copy(),
                       stress=None if self.stress is None else self.stress.copy(), symbols=list(self.symbols))

    @classmethod
    def from_atoms(cls, atoms, group: str = "", split: str | None = None) -> "Frame":
        """A frame from ASE Atoms; its labels are the attached calculator's results (energy, forces, stress —
        those present), converted from ASE's conventions (stress tension-positive eV/Å³) to bar. `split`
        ("train" | "test") fixes the frame's side of the split whatever its group's sizes say."""
        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        stress = results.get("stress")
        info = {"split": split} if split else {}
        return cls(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(),
                   cell=np.array(atoms.cell.array), energy=results.get("energy"), forces=results.get("forces"),
                   stress=None if stress is None else ase_stress_to_bar(stress),
                   pbc=tuple(bool(p) for p in atoms.pbc), group=group, info=info)

    def to_atoms(self):
        """ASE Atoms with the labels attached as a SinglePointCalculator (stress in ASE's convention)."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)
        labels = {"energy": self.energy, "forces": self.forces,
                  "stress": None if self.stress is None else bar_to_ase_stress(self.stress)}
        labels = {k: v for k, v in labels.items() if v is not None}
        if labels:
            atoms.calc = SinglePointCalculator(atoms, **labels)
        atoms.info.update({"group": self.group} if self.group else {})
        return atoms
