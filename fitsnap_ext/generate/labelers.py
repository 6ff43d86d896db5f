"""In-process labelers: LAMMPS pair styles, any ASE calculator, SevenNet (a PBE surrogate).

Each turns a configuration into energy (eV), forces (eV/Å) and stress (bar, pressure-positive); the interface and
frame header are in generate/base.py, CP2K in generate/cp2k.py, the deck's type -> labeler in generate/registry.py.
"""
from __future__ import annotations

import hashlib
import importlib
import os

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DeckError
from fitsnap_ext.generate.base import Labeler, labelled
from fitsnap_ext.generate.deck import LabelerSettings
from fitsnap_ext.units import ase_stress_to_bar


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files_in(text: str) -> list[str]:
    """Existing files named in LAMMPS commands (after placeholder expansion)."""
    from fitsnap_ext.lammps_engine import expand_placeholders
    out = []
    for tok in expand_placeholders(text).split():
        if os.path.isfile(tok):
            out.append(tok)
    return out


def mod_file_digest(mod_path: str) -> dict:
    """sha256 of a .mod file and of the files it names (relative to its folder): records a fitted model."""
    folder = os.path.dirname(os.path.abspath(mod_path))
    d = {os.path.basename(mod_path): _sha256(mod_path)}
    with open(mod_path) as fh:
        for tok in fh.read().split():
            p = tok if os.path.isabs(tok) else os.path.join(folder, tok)
            if os.path.isfile(p) and os.path.basename(p) not in d:
                d[os.path.basename(p)] = _sha256(p)
    return d


# --------------------------------------------------------------------------------------------------- LAMMPS


class LammpsLabeler(Labeler):
    """A LAMMPS pair style as teacher (classical or already-fitted potential)."""

    name = "lammps"

    def __init__(self, s: LabelerSettings):
        super().__init__()
        from fitsnap_ext.lammps_engine import LammpsEngine
        from fitsnap_ext.lammps_session import lammps_module

        lammps = lammps_module()
        if s.mod:
            potential = s.mod
            files = mod_file_digest(s.mod)
            self.settings = {"mod": os.path.basename(s.mod), "files_sha256": files}
        else:
            potential = [f"pair_style {s.pair_style}"] + [
                ln if ln.startswith("pair_coeff") else f"pair_coeff {ln}" for ln in s.pair_coeff] + list(
                s.pair_commands)
            files = {}
            for ln in potential:
                for p in _files_in(ln):
                    files[os.path.basename(p)] = _sha256(p)
            self.settings = {"pair_style": s.pair_style, "pair_coeff": list(s.pair_coeff),
                             "pair_commands": list(s.pair_commands), "files_sha256": files}
        self.settings.update({"elements": list(s.elements), "masses": list(s.masses),
                              "lammps_version": str(getattr(lammps, "__version__", ""))})
        self.engine = LammpsEngine(s.elements, potential, s.masses or None)

    def label(self, frame: Frame) -> Frame:
        e, f, st = self.engine.compute(frame)
        return labelled(frame, e, f, st)

    def ase_calculator(self):
        from fitsnap_ext.calculator import LammpsCalculator

        return LammpsCalculator(self.engine)

    def close(self):
        self.engine.close()


# ------------------------------------------------------------------------------------------------------ ASE


class AseLabeler(Labeler):
    """Any ASE calculator; stress converted from ASE's tension-positive eV/Å³ to bar pressure-positive."""

    name = "ase"

    def __init__(self, s: LabelerSettings | None = None, calc=None, name=None, settings=None, note=""):
        super().__init__()
        if calc is None:
            mod, cls = s.calculator.split(":")
            try:
                klass = getattr(importlib.import_module(mod), cls)
            except (ImportError, AttributeError) as exc:
                raise DeckError(f"cannot import {s.calculator}: {exc}", section="LABELER", key="calculator")
            calc = klass(**s.calculator_kwargs)
            settings = {"calculator": s.calculator, "calculator_kwargs": s.calculator_kwargs}
        self.calc = calc
        if name:
            self.name = name
        self.settings = settings or {}
        self.note = note

    def label(self, frame: Frame) -> Frame:
        from fitsnap_ext.generate.structures import frame_to_atoms
        atoms = frame_to_atoms(frame)
        atoms.calc = self.calc
        e = atoms.get_potential_energy()
        f = atoms.get_forces()
        s = None
        if all(frame.pbc):
            try:
                v = atoms.get_stress(voigt=False)
                s = ase_stress_to_bar(v)
            except Exception:  # calculator without stress
                s = None
        return labelled(frame, e, f, s)

    def ase_calculator(self):
        return self.calc


def sevenn_labeler(s: LabelerSettings) -> AseLabeler:
    """SevenNet-0: a fast *surrogate* for PBE (a graph network trained on PBE data), never DFT itself."""
    try:
        import sevenn
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise DeckError(f"the sevenn labeler needs the `sevenn` package (pip install -c scripts/constraints.txt "
                        f"sevenn): {exc}", section="LABELER", key="type")
    calc = SevenNetCalculator(model=s.model, device=s.device)
    settings = {"model": s.model, "sevenn_version": getattr(sevenn, "__version__", ""), "surrogate_of": "PBE"}
    return AseLabeler(calc=calc, name="sevenn", settings=settings,
                      note=f"surrogate: SevenNet {s.model} machine-learned PBE surrogate, not DFT")
