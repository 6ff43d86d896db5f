"""What every labeler shares: the `Labeler` interface, its frame header and the checked labelled frame.

Labels are energy (eV), forces (eV/Å) and stress (bar, pressure-positive, or None for a non-periodic frame).
Every labeler has a `name` and JSON-safe `settings`; both go into each frame's header so that a data set never
mixes labelers (different codes have different energy zeros).
"""
from __future__ import annotations

import json

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, DeckError


class Labeler:
    """Interface: `label(frame) -> Frame` with the labels set; `header()` for the frames it writes."""

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


def labelled(frame: Frame, e, f, s) -> Frame:
    """A copy of `frame` with energy `e`, forces `f` and stress `s` (None: no stress); refuses non-finite labels."""
    if not np.isfinite(e) or not np.all(np.isfinite(f)) or (s is not None and not np.all(np.isfinite(s))):
        raise DataError("labeler returned non-finite values", frame.info.get("config_id"))
    return Frame(symbols=list(frame.symbols), positions=frame.positions.copy(), cell=frame.cell.copy(),
                 energy=float(e), forces=np.asarray(f, float), stress=None if s is None else np.asarray(s, float),
                 pbc=tuple(frame.pbc), group=frame.group, source=frame.source, info=dict(frame.info))


def header_matches(info: dict, header: dict) -> bool:
    """Whether a frame's header `info` was written by the labeler whose header is `header` (its note aside)."""
    return all(str(info.get(k)) == str(v) for k, v in header.items() if k != "labeler_note")
