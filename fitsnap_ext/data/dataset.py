"""Groups of configurations → training/testing entries with their row weights.

The data path holds one folder of FitSNAP JSON files per group (scraper JSON) or one extended-XYZ
file per group, `<group>.xyz` or `<group>.extxyz` (scraper XYZ). The split follows FitSNAP: sizes below 1
(or exactly 1.0) are fractions of the group, larger ones counts; without random sampling the first
configurations (sorted by file name / file order) train and the last ones test.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..settings import GroupSettings, Settings
from ..errors import DataError
from .frame import Frame
from .io import FORMATS

@dataclass
class Entry:
    """A configuration in the fit: the frame, its split and its row weights."""

    frame: Frame
    test: bool
    eweight: float
    fweight: float
    vweight: float
    index: int = 0  # position in the deck's order (groups, then configurations)


def _split_counts(group: GroupSettings, n: int) -> tuple[int, int]:
    def count(size: float, is_training: bool) -> int:
        if size < 1 or (size == 1.0 and is_training):
            return n if size == 1.0 else (0 if size == 0 else max(1, int(size * n + 0.5)))
        if not float(size).is_integer():
            raise DataError(f"group {group.name}: size {size} is neither a fraction < 1 nor a count")
        return int(size)

    train = count(group.training_size, True)
    test = count(group.testing_size, False)
    if train + test > n:
        test = max(0, n - train)
    return train, test


def group_file(settings: Settings, group: GroupSettings) -> Path | None:
    """The group's data: <dataPath>/<name>/ (JSON scraper) or <dataPath>/<name>.xyz|.extxyz; None if absent."""
    return FORMATS[settings.scraper.scraper].group_path(settings.data_path, group.name)


def group_files(settings: Settings, group: GroupSettings) -> list[Path]:
    """The files a group's frames are read from: the JSON files of its folder or its one extended-XYZ file (none
    when absent) — what a study's cache key hashes."""
    path = group_file(settings, group)
    return [] if path is None else FORMATS[settings.scraper.scraper].files(path)


def _group_frames(settings: Settings, group: GroupSettings) -> list[Frame]:
    fmt = FORMATS[settings.scraper.scraper]
    path = group_file(settings, group)
    if path is None:
        where = settings.data_path / group.name if fmt.group_is_folder else settings.data_path
        what = "folder" if fmt.group_is_folder else " or ".join(f"{group.name}{s}" for s in fmt.suffixes)
        raise DataError(f"group {group.name!r}: {what} not found", where)
    frames = fmt.read(path, settings.scraper.stress_unit, group.name)
    if not frames:
        raise DataError(f"group {group.name!r} has no configurations", settings.data_path / group.name)
    return frames


MIN_DISTANCE = 0.1  # Å: two atoms closer than this (periodic images included) are one atom given twice


def closest_pair(frame: Frame, cutoff: float = MIN_DISTANCE) -> tuple[int, int, float] | None:
    """The closest two atoms nearer than `cutoff` (periodic images along `frame.pbc` included): (i, j, Å) or None.

    Positions are wrapped into the cell; images are added only for atoms within `cutoff` of a periodic face.
    """
    from scipy.spatial import cKDTree

    x, owner = frame.positions, np.arange(frame.natoms)
    periodic = np.asarray(frame.pbc, dtype=bool)
    if periodic.any():
        frac = x @ np.linalg.inv(frame.cell)
        frac[:, periodic] -= np.floor(frac[:, periodic])
        x = frac @ frame.cell
        normals = np.cross(frame.cell[[1, 2, 0]], frame.cell[[2, 0, 1]])
        margin = cutoff * np.linalg.norm(normals, axis=1) / frame.volume  # cutoff in fractional units
        parts, owners = [x], [owner]
        for shift in np.array(np.meshgrid(*[[-1, 0, 1] if p else [0] for p in periodic])).reshape(3, -1).T:
            if shift.any():
                moved = frac + shift
                near = np.all((moved >= -margin) & (moved < 1 + margin), axis=1)
                parts.append(moved[near] @ frame.cell)
                owners.append(owner[near])
        x, owner = np.concatenate(parts), np.concatenate(owners)
    pairs = cKDTree(x).query_pairs(cutoff, output_type="ndarray")
    if not len(pairs):
        return None
    d = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1)
    k = int(np.argmin(d))
    i, j = sorted((int(owner[pairs[k, 0]]), int(owner[pairs[k, 1]])))
    return i, j, float(d[k])


def _check_geometry(frame: Frame, settings: Settings) -> None:
    """A cell LAMMPS can hold, a stress only where a volume is defined, no atom given twice."""
    where = frame.where()
    if not np.all(np.isfinite(frame.positions)) or not np.all(np.isfinite(frame.cell)):
        raise DataError("non-finite positions or cell", **where)
    pbc = " ".join("T" if p else "F" for p in frame.pbc)
    if any(frame.pbc) and frame.volume < 1e-8:
        raise DataError(f"cell has zero volume (pbc = {pbc})", **where)
    if not all(frame.pbc) and settings.calculator.stress:
        raise DataError(f"a configuration that is not periodic in every direction (pbc = {pbc}) has no stress "
                        "to fit; set [CALCULATOR] stress = 0 or drop the configuration", **where)
    pair = closest_pair(frame)
    if pair is not None:
        i, j, d = pair
        what = f"atom {i} and a periodic image of itself" if i == j else f"atoms {i} and {j}"
        raise DataError(f"{what} are {d:.3g} Å apart (closer than {MIN_DISTANCE} Å: the same atom twice?)",
                        **where)


def _validate(frame: Frame, settings: Settings) -> None:
    calc = settings.calculator
    where = frame.where()
    unknown = sorted(set(frame.symbols) - set(settings.bispectrum.types))
    if unknown:
        raise DataError(f"element(s) {', '.join(unknown)} not in [BISPECTRUM] type "
                        f"({' '.join(settings.bispectrum.types)})", **where)
    if frame.energy is None or not math.isfinite(frame.energy):
        raise DataError(f"energy is missing or not finite ({frame.energy})", **where)
    if calc.force:
        if frame.forces is None or frame.forces.shape != (frame.natoms, 3):
            shape = None if frame.forces is None else frame.forces.shape
            raise DataError(f"forces have shape {shape}, expected ({frame.natoms}, 3)", **where)
        if not np.all(np.isfinite(frame.forces)):
            atom = int(np.argwhere(~np.isfinite(frame.forces))[0, 0])
            raise DataError(f"non-finite force on atom {atom}", **where)
    if calc.stress:
        if frame.stress is None or not np.all(np.isfinite(frame.stress)):
            raise DataError("stress is missing or not finite", **where)
    _check_geometry(frame, settings)


def _check_types_present(settings: Settings, entries: list[Entry]) -> None:
    """Every element of [BISPECTRUM] type occurs in the fit's data (else its coefficients are left at zero)."""
    present = {s for e in entries for s in e.frame.symbols}
    absent = [t for t in settings.bispectrum.types if t not in present]
    if absent:
        raise settings.error(f"element {absent[0]!r} is in type but in none of the {len(entries)} configurations "
                             f"of the fit (data: {', '.join(sorted(present))})", "BISPECTRUM", "type")


# Weights of frames given in memory whose group has no [GROUPS] row: energy (eV/atom) and force (eV/Å) rows
# alike; stress rows in bar scaled so that a 1 GPa error weighs as much as 1 eV/Å.
IN_MEMORY_WEIGHTS = (1.0, 1.0, 1.0e-4)


def _groups_in_memory(settings: Settings, frames: list[Frame]) -> list[tuple[GroupSettings, list[Frame]]]:
    """Frames given in memory, by their `group` (default "frames"): a group with a [GROUPS] row is split and
    weighted by it; any other trains whole with IN_MEMORY_WEIGHTS."""
    rows = {g.name: g for g in settings.groups.groups}
    by_name: dict[str, list[Frame]] = {}
    for i, frame in enumerate(frames):
        frame.group = frame.group or "frames"
        frame.source = frame.source or "<frames>"
        frame.index = i if frame.index is None else frame.index
        by_name.setdefault(frame.group, []).append(frame)
    return [(rows.get(name, GroupSettings(name, 1.0, 0.0, *IN_MEMORY_WEIGHTS)), group)
            for name, group in by_name.items()]


def load_entries(settings: Settings, frames: list[Frame] | None = None) -> list[Entry]:
    """Read every group (or take `frames`), split it and attach weights (FitSNAP's semantics, incl. smartweights).

    A frame whose `info["split"]` is "train" or "test" goes there whatever its group's sizes say."""
    groups = settings.groups
    if frames is None:
        if not groups.groups:
            raise settings.error("missing section [GROUPS] (it lists the groups to read from [PATH] dataPath)",
                                 "GROUPS")
        grouped = [(group, _group_frames(settings, group)) for group in groups.groups]
    else:
        grouped = _groups_in_memory(settings, [f.copy() for f in frames])
    rng = random.Random(groups.random_seed)
    entries: list[Entry] = []
    for group, frames_of_group in grouped:
        order = list(range(len(frames_of_group)))
        if groups.random_sampling:
            rng.shuffle(order)
        n_train, n_test = _split_counts(group, len(frames_of_group))
        if n_train + n_test == 0:
            raise DataError(f"group {group.name!r}: training and testing sizes select no configuration",
                            settings.data_path)
        for rank, i in enumerate(order[:n_train + n_test]):
            frame = frames_of_group[i]
            _validate(frame, settings)
            for el in frame.symbols:
                frame.energy += settings.eshift.get(el, 0.0)
            test = {"test": True, "train": False}.get(frame.info.get("split"), rank >= n_train)
            e, f, v = group.eweight, group.fweight, group.vweight
            if groups.smartweights:
                size = n_test if test else n_train
                e, f, v = e / size, f / size / (3 * frame.natoms), v / size / 6
            entries.append(Entry(frame, test, e, f, v, len(entries)))
    _check_types_present(settings, entries)
    return entries
