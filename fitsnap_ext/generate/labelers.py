"""Labelers: turn a configuration into energy, forces and stress (bar, pressure-positive).

Every labeler has a `name` and JSON-safe `settings`; both go into each frame's header so that a data set never
mixes labelers (different codes have different energy zeros).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import re

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, DeckError
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


class Labeler:
    name = "base"
    in_process = True     # True: can run on every MPI rank at once (LAMMPS, ASE calculators)
    note = ""

    def __init__(self):
        self.settings: dict = {}

    def header(self) -> dict:
        h = {"labeler": self.name, "labeler_settings": json.dumps(self.settings, sort_keys=True)}
        if self.note:
            h["labeler_note"] = self.note
        return h

    def label(self, frame: Frame) -> Frame:  # pragma: no cover - interface
        raise NotImplementedError

    def ase_calculator(self):
        raise DeckError(f"the {self.name} labeler has no ASE calculator for MD")

    def close(self):
        pass


def _labelled(frame: Frame, e, f, s) -> Frame:
    if not np.isfinite(e) or not np.all(np.isfinite(f)) or (s is not None and not np.all(np.isfinite(s))):
        raise DataError("labeler returned non-finite values", frame.info.get("config_id"))
    return Frame(symbols=list(frame.symbols), positions=frame.positions.copy(), cell=frame.cell.copy(),
                 energy=float(e), forces=np.asarray(f, float), stress=None if s is None else np.asarray(s, float),
                 pbc=tuple(frame.pbc), group=frame.group, source=frame.source, info=dict(frame.info))


# --------------------------------------------------------------------------------------------------- LAMMPS


class LammpsLabeler(Labeler):
    """A LAMMPS pair style as teacher (classical or already-fitted potential)."""

    name = "lammps"

    def __init__(self, s: LabelerSettings):
        super().__init__()
        from fitsnap_ext.lammps_engine import LammpsEngine
        import lammps
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
        return _labelled(frame, e, f, st)

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
        return _labelled(frame, e, f, s)

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


def make_labeler(s: LabelerSettings, workdir: str | None = None, progress=None) -> Labeler:
    """The deck's labeler; `progress` (a fitsnap_ext.progress.Progress) hears a CP2K labeler's notes."""
    if s.type == "lammps":
        return LammpsLabeler(s)
    if s.type == "ase":
        return AseLabeler(s)
    if s.type == "sevenn":
        return sevenn_labeler(s)
    if s.type == "cp2k":
        from fitsnap_ext.generate.cp2k import Cp2kLabeler
        return Cp2kLabeler(s, workdir=workdir, progress=progress)
    raise DeckError(f"unknown labeler {s.type!r}", section="LABELER", key="type")


def header_matches(info: dict, header: dict) -> bool:
    return all(str(info.get(k)) == str(v) for k, v in header.items() if k != "labeler_note")


_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")
