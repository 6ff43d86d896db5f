"""Readers by format behind one function (ASE's io registry, in small): `read_frames(path)`.

A format knows its file suffixes, where a deck's group lives under [PATH] dataPath, and how to read it. The
[SCRAPER] scraper value names the format (JSON: FitSNAP's one file per configuration, a folder per group, stress
in bar; XYZ: extended XYZ, one file per group, the stress unit declared).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError
from .frame import Frame


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".json")


def _read_json(path: Path, stress_unit: str | None, group: str) -> list[Frame]:
    from .fitsnap_json import read_fitsnap_json

    files = _json_files(path) if path.is_dir() else [path]
    return [read_fitsnap_json(p, group, i) for i, p in enumerate(files)]


def _read_xyz(path: Path, stress_unit: str | None, group: str) -> list[Frame]:
    from .extxyz import read_extxyz

    return read_extxyz(path, stress_unit, group=group or None)


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]
    group_is_folder: bool                                        # a group: <dataPath>/<name>/ or <name><suffix>
    read: Callable[[Path, "str | None", str], list[Frame]]      # (path, stress unit, group) → frames

    def group_path(self, data_path: Path, group: str) -> Path | None:
        """The group's folder or file under `data_path`; None if absent."""
        if self.group_is_folder:
            folder = data_path / group
            return folder if folder.is_dir() else None
        return next((p for p in (data_path / f"{group}{s}" for s in self.suffixes) if p.is_file()), None)

    def files(self, path: Path) -> list[Path]:
        """The files a group's frames are read from."""
        return _json_files(path) if path.is_dir() else [path]


FORMATS = {"JSON": Format("JSON", (".json",), True, _read_json),
           "XYZ": Format("XYZ", (".xyz", ".extxyz"), False, _read_xyz)}


def guess_format(path: Path) -> Format:
    if path.is_dir():
        return FORMATS["JSON"]
    for fmt in FORMATS.values():
        if path.suffix.lower() in fmt.suffixes:
            return fmt
    raise DataError(f"cannot tell the format from the name (known: "
                    f"{', '.join(s for f in FORMATS.values() for s in f.suffixes)}, or a folder of .json); give "
                    f"format=", path)


def read_frames(path: "str | Path", format: str | None = None, stress_unit: str | None = None,
                group: str = "") -> list[Frame]:
    """Every configuration of a data file (or a folder of FitSNAP JSON files) as Frames, labels in metal units
    (stress in bar, pressure-positive). `format`: "XYZ" or "JSON" (default: from the name); `stress_unit` must be
    given for extended XYZ holding stresses (bar | kbar | GPa | eV/A3: never guessed)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    fmt = FORMATS.get(format.upper()) if format else guess_format(path)
    if fmt is None:
        raise DataError(f"unknown format {format!r} (known: {', '.join(FORMATS)})", path)
    return fmt.read(path, stress_unit, group)
