"""ASE calculators: any LAMMPS include file (a fitted potential or a classical one) as an `ase` Calculator.

`calculator("Si_pot.mod", ["Si"])` runs the include file in an in-process LAMMPS (its relative paths resolve
from its own folder) and returns energy (eV), forces (eV/Å) and, for cells periodic in all three directions,
stress in ASE's convention (Voigt, tension-positive, eV/Å³; see `units`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .units import bar_to_ase_stress


class LammpsCalculator(Calculator):
    """ASE calculator around a `LammpsEngine` (one serial LAMMPS instance, reused for every call)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, engine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from .data.frame import Frame

        super().calculate(atoms, properties, system_changes)
        frame = Frame(symbols=self.atoms.get_chemical_symbols(), positions=self.atoms.get_positions(),
                      cell=np.array(self.atoms.cell.array), pbc=tuple(bool(p) for p in self.atoms.pbc))
        energy, forces, stress = self.engine.compute(frame)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            self.results["stress"] = bar_to_ase_stress(stress)


def calculator(mod_path: "str | Path", elements, masses=None) -> LammpsCalculator:
    """An ASE calculator running the LAMMPS include file `mod_path`; `elements` are the atom types 1..n in order
    (as on the file's `pair_coeff * *` line); `masses` default to the elements' standard masses."""
    from .lammps_engine import LammpsEngine

    mod = Path(mod_path)
    if not mod.is_file():
        from .errors import FitsnapError

        raise FitsnapError(f"potential include file not found: {mod}")
    return LammpsCalculator(LammpsEngine(list(elements), str(mod), masses))
