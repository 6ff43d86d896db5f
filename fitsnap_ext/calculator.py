"""ASE calculators: any LAMMPS include file (a fitted potential or a classical one), or a fitted estimator, as an
`ase` Calculator.

`calculator("Si_pot.mod", ["Si"])` runs the include file in an in-process LAMMPS (its relative paths resolve
from its own folder) and returns energy (eV), forces (eV/Å) and, for cells periodic in all three directions,
stress in ASE's convention (Voigt, tension-positive, eV/Å³; see `units`). `calculator(model)` does the same through
a fitted LinearSNAP / NetworkSNAP's `predict`, and adds its predictive σ where it has one (an ANL fit, an
ensemble): `results["energy_std"]` (eV) and `results["forces_std"]` (per atom, eV/Å).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .units import bar_to_ase_stress


class _FrameCalculator(Calculator):
    """An ASE calculator whose `evaluate(frame)` gives the results of the atoms as an unlabelled `Frame`."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from .data.frame import Frame

        super().calculate(atoms, properties, system_changes)
        self.results = self.evaluate(Frame.from_atoms(self.atoms))  # self.atoms: a copy without a calculator


class LammpsCalculator(_FrameCalculator):
    """ASE calculator around a `LammpsEngine` (one serial LAMMPS instance, reused for every call)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, engine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine

    def evaluate(self, frame) -> dict:
        energy, forces, stress = self.engine.compute(frame)
        results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            results["stress"] = bar_to_ase_stress(stress)
        return results


class EstimatorCalculator(_FrameCalculator):
    """ASE calculator around a fitted estimator (its `predict`, in this process), with its σ where it has one."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def evaluate(self, frame) -> dict:
        from .units import tensor

        out = self.model.predict([frame], return_std=self.model.has_std)
        energy, forces, stress = float(out[0][0]), out[1][0], out[2][0]
        results = {"energy": energy, "free_energy": energy, "forces": forces}
        if np.all(np.isfinite(stress)):
            results["stress"] = bar_to_ase_stress(tensor(stress))
        if self.model.has_std:
            results.update(energy_std=float(out[3][0]), forces_std=out[4][0])
        return results


def calculator(potential, elements=None, masses=None):
    """An ASE calculator: `potential` is a LAMMPS include file (`elements` are its atom types 1..n in order, as on its
    `pair_coeff * *` line; `masses` default to the elements' standard masses) or a fitted estimator."""
    from .estimator import SnapEstimator

    if isinstance(potential, SnapEstimator):
        return EstimatorCalculator(potential)
    if elements is None:
        from .errors import FitsnapError

        raise FitsnapError("calculator(mod_path, elements): name the elements of the include file's atom types")
    return _lammps_calculator(potential, elements, masses)


def _lammps_calculator(mod_path: "str | Path", elements, masses=None) -> LammpsCalculator:
    from .lammps_engine import LammpsEngine

    mod = Path(mod_path)
    if not mod.is_file():
        from .errors import FitsnapError

        raise FitsnapError(f"potential include file not found: {mod}")
    return LammpsCalculator(LammpsEngine(list(elements), str(mod), masses))
