"""FitSNAP JSON reader: one configuration per file, stress in bar (FitSNAP's metal convention)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from .frame import Frame


def _text(path: Path, index) -> tuple[str, int]:
    """The file's JSON text and the number of lines before it (a FitSNAP comment first line is skipped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", path, index) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"not a text file (byte 0x{data[exc.start]:02x} is not UTF-8)", f"{path}:{line}",
                        index) from None
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise DataError("not a text file (it holds a NUL byte)", f"{path}:{line}", index)
    if text.lstrip().startswith("{"):
        return text, 0
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    if not rest.strip():
        raise DataError("not a FitSNAP JSON configuration: no JSON object after the first line (a comment, as it "
                        "does not start with '{')", f"{path}:1", index)
    return rest, 1


def read_fitsnap_json(path: str | Path, group: str = "", index: int | None = None) -> Frame:
    """Read one FitSNAP JSON file (an optional comment first line, then {"Dataset": {"Data": [...]}}).

    `index` is the configuration's index in its group, named by every DataError (with the line where known).
    """
    from ase.data import chemical_symbols

    path = Path(path)
    text, skipped = _text(path, index)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", f"{path}:{exc.lineno + skipped}",
                        index) from None
    try:
        (data,) = document["Dataset"]["Data"]
        missing = [key for key in ("Positions", "Lattice", "Energy", "AtomTypes") if key not in data]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"not a FitSNAP JSON configuration: expected {{\"Dataset\": {{\"Data\": [one "
                        f"configuration]}}}} ({type(exc).__name__}: {str(exc)[:80]})", path, index) from None
    if missing:
        raise DataError(f"missing key {missing[0]!r}", path, index)
    if not isinstance(data["AtomTypes"], list):
        raise DataError(f"AtomTypes must be a list of element symbols, got {str(data['AtomTypes'])[:40]!r}",
                        path, index)
    unknown = [s for s in data["AtomTypes"] if s not in chemical_symbols[1:]]
    if unknown:
        raise DataError(f"unknown element {str(unknown[0])[:20]!r}", path, index)
    try:
        frame = Frame(
            symbols=list(data["AtomTypes"]),
            positions=np.asarray(data["Positions"], dtype=float),
            cell=np.asarray(data["Lattice"], dtype=float),
            energy=float(data["Energy"]),
            forces=np.asarray(data["Forces"], dtype=float) if "Forces" in data else None,
            stress=np.asarray(data["Stress"], dtype=float) if "Stress" in data else None,
            group=group, source=str(path), index=index)
        n = int(data.get("NumAtoms", frame.natoms))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"malformed arrays: {str(exc)[:120]}", path, index) from None
    if n != frame.natoms or len(frame.positions) != frame.natoms:
        raise DataError(f"NumAtoms = {n} but {len(frame.positions)} positions and "
                        f"{frame.natoms} AtomTypes", path, index)
    return frame
