"""FitSNAP JSON reader: one configuration per file, stress in bar (FitSNAP's metal convention)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from .frame import Frame


def read_fitsnap_json(path: str | Path, group: str = "") -> Frame:
    """Read one FitSNAP JSON file (an optional comment first line, then {"Dataset": {"Data": [...]}})."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", path) from None
    if not text.lstrip().startswith("{"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        dataset = json.loads(text)["Dataset"]
        (data,) = dataset["Data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"not a FitSNAP JSON configuration ({type(exc).__name__}: {exc})", path) from None
    for key in ("Positions", "Lattice", "Energy", "AtomTypes"):
        if key not in data:
            raise DataError(f"missing key {key!r}", path)
    try:
        frame = Frame(
            symbols=list(data["AtomTypes"]),
            positions=np.asarray(data["Positions"], dtype=float),
            cell=np.asarray(data["Lattice"], dtype=float),
            energy=float(data["Energy"]),
            forces=np.asarray(data["Forces"], dtype=float) if "Forces" in data else None,
            stress=np.asarray(data["Stress"], dtype=float) if "Stress" in data else None,
            group=group, source=str(path))
    except (ValueError, TypeError) as exc:
        raise DataError(f"malformed arrays: {exc}", path) from None
    n = data.get("NumAtoms", frame.natoms)
    if int(n) != frame.natoms or len(frame.positions) != frame.natoms:
        raise DataError(f"NumAtoms = {n} but {len(frame.positions)} positions and "
                        f"{frame.natoms} AtomTypes", path)
    return frame
