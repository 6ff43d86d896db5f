"""Shared by the CP2K reference scripts: single points cached by tag in a JSON file (so a rerun resumes where
it stopped) and a fixed-cell ionic relaxation driven by those cached single points."""
import json
import os
import time

import numpy as np


class CachedSinglePoints:
    """`labeler` single points (energy eV, forces eV/Å, tension-positive stress GPa), stored in `runs_path`
    under a tag after each run (atomically). Stresses from the labeler are bar, pressure-positive."""

    def __init__(self, labeler, runs_path: str):
        self.labeler = labeler
        self.runs_path = runs_path
        self.runs = json.load(open(runs_path)) if os.path.exists(runs_path) else {}

    def __call__(self, tag: str, atoms):
        from fitsnap_ext.data.frame import Frame

        if tag not in self.runs:
            frame = Frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array, info={"config_id": tag})
            t0 = time.time()
            r = self.labeler.label(frame)
            self.runs[tag] = {"energy": r.energy, "forces": r.forces.tolist(), "stress_bar": r.stress.tolist(),
                              "positions": atoms.positions.tolist(), "cell": atoms.cell.array.tolist(),
                              "seconds": time.time() - t0}
            os.makedirs(os.path.dirname(os.path.abspath(self.runs_path)), exist_ok=True)
            tmp = self.runs_path + ".tmp"
            json.dump(self.runs, open(tmp, "w"))
            os.replace(tmp, self.runs_path)
            print(f"{tag}: {self.runs[tag]['seconds']:.0f} s", flush=True)
        r = self.runs[tag]
        return r["energy"], np.array(r["forces"]), -np.array(r["stress_bar"]) * 1e-4

    def seconds(self) -> float:
        return sum(r["seconds"] for r in self.runs.values())


def relax(atoms, evaluate, fmax=1e-3, max_steps=30):
    """Positions relaxed at fixed cell by BFGS on CP2K forces (`evaluate(atoms, step)` → (E, F, σ), cached);
    returns (σ, relaxed atoms) of the last evaluated structure."""
    from ase.calculators.calculator import Calculator, all_changes
    from ase.optimize import BFGS

    state = {"step": 0}

    class Driver(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            energy, forces, state["stress"] = evaluate(self.atoms, state["step"])
            state["step"] += 1
            self.results = {"energy": energy, "forces": forces}

    atoms = atoms.copy()
    atoms.calc = Driver()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=max_steps)
    return state["stress"], atoms
