"""Extended XYZ input/output for labelled frames.

Reading goes through ASE (``ase.io.iread(..., format='extxyz')``) with a thin wrapper around ASE's comment-line
parser so that the raw ``stress`` of the file is kept exactly as written (ASE would otherwise turn it into a
calculator stress in Voigt form, dropping the lower triangle).  The stress unit is always declared by the caller:

* ``'bar'``, ``'kbar'``, ``'GPa'``: pressure-positive (VASP/LAMMPS sign: a compressed cell reads positive);
* ``'eV/A3'``: ASE's convention, tension-positive, eV/Å³.

Frames come back with stress in **bar, pressure-positive** (see :class:`fitsnap_ext.data.frame.Frame`).

Writing is done here (not by ASE) so that every float is written with ``repr`` (exact round-trip), the comment line
carries ``stress_unit=bar`` and a header (labeler name and settings), and files are never left half-written:
:func:`write_extxyz` writes a temporary file and renames it; :func:`append_extxyz` appends one whole frame with a
single ``write`` + ``fsync`` and drops a torn trailing frame (left by a killed writer) before appending.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from typing import Iterable

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError
from fitsnap_ext.units import PRESSURE_TO_BAR, STRESS_UNITS, ase_stress_to_bar, tensor

__all__ = [
    "STRESS_UNITS", "stress_to_bar", "read_extxyz", "write_extxyz", "append_extxyz", "repair_extxyz",
    "frame_to_text", "scan_extxyz",
]

# spellings of the units in fitsnap_ext.units.STRESS_UNITS
_UNIT_ALIASES = {
    "bar": "bar", "bars": "bar",
    "kbar": "kbar", "kb": "kbar",
    "gpa": "GPa",
    "ev/a3": "eV/A3", "ev/a^3": "eV/A3", "ev/ang3": "eV/A3", "ev/ang^3": "eV/A3", "ev/å3": "eV/A3",
    "ev/å^3": "eV/A3",
}

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_RESERVED_KEYS = {"Lattice", "Properties", "energy", "stress", "stress_unit", "pbc", "forces", "virial"}
_RAW_STRESS_KEY = "__fitsnap_raw_stress__"


def _canonical_unit(unit, path=None) -> str:
    if unit is None:
        raise DataError("stress unit not given (one of bar, kbar, GPa, eV/A3); it is never guessed", path)
    key = str(unit).strip().lower().replace(" ", "")
    if key not in _UNIT_ALIASES:
        raise DataError(f"unknown stress unit {unit!r} (expected one of {', '.join(STRESS_UNITS)})", path)
    return _UNIT_ALIASES[key]


def stress_to_bar(stress, unit: str) -> np.ndarray:
    """Convert a stress (3×3, or Voigt xx yy zz yz xz xy) in `unit` to a 3×3 tensor in bar, pressure-positive."""
    unit = _canonical_unit(unit)
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        s = tensor(s)
    elif s.shape == (9,):
        s = s.reshape(3, 3)
    if s.shape != (3, 3):
        raise ValueError(f"stress must have 6 or 9 components, got shape {np.shape(stress)}")
    if unit == "eV/A3":
        return ase_stress_to_bar(s)
    return s * PRESSURE_TO_BAR[unit]


# ----------------------------------------------------------------------------------------------------- reading


def _comment_parser(line: str) -> dict:
    """ASE's comment-line parser, but the raw stress is kept (row-major as written) out of ASE's calculator."""
    from ase.io.extxyz import key_val_str_to_dict

    d = key_val_str_to_dict(line)
    if "stress" in d:
        v = d.pop("stress")
        arr = np.array(v, dtype=float) if not isinstance(v, str) else None
        if arr is not None and arr.shape == (3, 3):
            # ASE reshapes the 9 numbers in Fortran order; .T gives back the row-major order of the file
            arr = arr.T
        d[_RAW_STRESS_KEY] = arr if arr is not None else v
    return d


def _quote_line(text: str, limit: int = 60) -> str:
    """A line for an error message: at most `limit` characters, quoted."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _is_count(text: str) -> bool:
    return re.fullmatch(r"[0-9]+", text.strip()) is not None


def _configurations(path: str):
    """(index, first line, text) of each configuration, from the file's structure (counts and atom lines).

    Every structural problem is a DataError naming the configuration it belongs to and the line: a count that
    is off (too small: atom lines follow where the next count should be; too large: the next count line comes
    among the atom lines, or the file ends), a line that is not UTF-8 text, a blank line inside the data.
    """
    try:
        with open(path, "rb") as fh:
            raw_lines = fh.read().split(b"\n")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", path) from None
    if raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()

    def text(i: int, index: int) -> str:
        try:
            line = raw_lines[i].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"not a text file (byte 0x{raw_lines[i][exc.start]:02x} is not UTF-8)",
                            f"{path}:{i + 1}", index) from None
        if "\0" in line:
            raise DataError("not a text file (it holds a NUL byte)", f"{path}:{i + 1}", index)
        return line.rstrip("\r")

    i, index, previous = 0, 0, None
    while i < len(raw_lines):
        line = text(i, index)
        if not line.strip():
            if all(not raw.strip() for raw in raw_lines[i:]):
                return
            raise DataError("blank line where the number of atoms should be", f"{path}:{i + 1}", index)
        if not _is_count(line):
            if previous is not None and len(line.split()) >= 4:
                count, first = previous
                raise DataError(f"the atom count {count} is too small: line {i + 1} holds another atom "
                                f"({_quote_line(line, 40)}) where the next count should be", f"{path}:{first}",
                                index - 1)
            raise DataError(f"expected the number of atoms, got {_quote_line(line)}", f"{path}:{i + 1}", index)
        natoms = int(line)
        for j in range(natoms + 1):
            k = i + 1 + j
            if k >= len(raw_lines):
                raise DataError(f"the atom count {natoms} is too large: the file ends after {max(j - 1, 0)} atom "
                                "lines", f"{path}:{i + 1}", index)
            atom = text(k, index)
            if j > 0 and _is_count(atom):
                raise DataError(f"the atom count {natoms} is too large: line {k + 1} holds the next count "
                                f"after {j - 1} atom lines", f"{path}:{i + 1}", index)
            if j > 0 and len(atom.split()) < 4:
                raise DataError(f"atom line with too few columns: {_quote_line(atom)}", f"{path}:{k + 1}", index)
        yield index, i + 1, "\n".join(text(k, index) for k in range(i, i + natoms + 2)) + "\n"
        previous = (natoms, i + 1)
        i += natoms + 2
        index += 1


def _parse_configuration(path: str, index: int, first: int, chunk: str):
    """ASE's Atoms of one configuration's text; ASE's errors become a DataError naming the configuration."""
    import io

    from ase.data import chemical_symbols
    from ase.io.extxyz import read_xyz

    _check_columns(path, index, first, chunk)
    try:
        return next(read_xyz(io.StringIO(chunk), index=0, properties_parser=_comment_parser))
    except DataError:
        raise
    except KeyError as exc:
        name = str(exc.args[0]) if exc.args else ""
        if name not in chemical_symbols:
            where = f"{path}:{_line_of(chunk, first, name, atoms_only=True)}"
            raise DataError(f"unknown element {name[:20]!r}", where, index) from None
        raise DataError(f"cannot parse extended XYZ: missing {name[:40]!r}", f"{path}:{first + 1}",
                        index) from None
    except Exception as exc:  # ASE's parse errors come in many types
        message = str(exc).splitlines()[0] if str(exc) else ""
        quoted = re.search(r"'([^']+)'", message)
        line = _line_of(chunk, first, quoted.group(1)) if quoted else first + 1
        message = message if len(message) <= 80 else message[:80] + "..."
        raise DataError(f"cannot parse extended XYZ: {type(exc).__name__}: {message}", f"{path}:{line}",
                        index) from None


_PROPERTIES_RE = re.compile(r'(?:^|\s)Properties\s*=\s*"?([^\s"]+)')


def _check_columns(path: str, index: int, first: int, chunk: str) -> None:
    """The columns that `Properties` declares are those of the first atom line (ASE would otherwise allocate
    whatever a corrupt count asks for before it notices)."""
    lines = chunk.split("\n")
    found = _PROPERTIES_RE.search(lines[1])
    if not found or len(lines) < 4:
        return
    fields = found.group(1).split(":")
    counts = fields[2::3]
    if len(fields) % 3 or not all(c.isdigit() and len(c) < 6 for c in counts):
        raise DataError(f"Properties {_quote_line(found.group(1), 40)} is not name:type:count triples",
                        f"{path}:{first + 1}", index)
    declared, columns = sum(int(c) for c in counts), len(lines[2].split())
    if declared != columns:
        raise DataError(f"Properties declares {declared} columns but the first atom line has {columns}",
                        f"{path}:{first + 1}", index)


def _line_of(chunk: str, first: int, token: str, atoms_only: bool = False) -> int:
    """The file line of a configuration's text (starting at line `first`) where `token` first appears as a
    word (as the first word of an atom line with `atoms_only`); the comment line when it appears nowhere."""
    for k, line in enumerate(chunk.splitlines()[1:], start=1):
        words = line.split()
        if (k >= 2 and words[:1] == [token]) if atoms_only else token in words:
            return first + k
    return first + 1


def read_extxyz(path, stress_unit, group=None, energy_key="energy", forces_key="forces",
                stress_key="stress") -> list[Frame]:
    """Read all configurations of an extended XYZ file as :class:`Frame` objects.

    `stress_unit` is the unit of the file's stress ('bar'|'kbar'|'GPa' pressure-positive, or 'eV/A3' in ASE's
    tension-positive convention). A file whose comment lines declare ``stress_unit=...`` that disagrees with it
    is refused. Any problem raises :class:`DataError` naming the file, the line and the configuration index
    (0-based).
    """
    path = os.fspath(path)
    unit = _canonical_unit(stress_unit, path)
    if not os.path.isfile(path):
        raise DataError("file not found", path)
    if stress_key != "stress":
        raise DataError("only the 'stress' key is supported for the stress", path)
    frames: list[Frame] = []
    for index, first, chunk in _configurations(path):
        atoms = _parse_configuration(path, index, first, chunk)
        frames.append(_atoms_to_frame(atoms, (path, first), index, unit, group, energy_key, forces_key))
    if not frames:
        raise DataError("no configurations in file", path)
    return frames


def _atoms_to_frame(atoms, source, index, unit, group, energy_key, forces_key) -> Frame:
    """The Frame of one parsed configuration; `source` is (file, first line), which errors name."""
    info = dict(atoms.info)
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    n = len(atoms)
    path = f"{source[0]}:{source[1]}"

    energy = results[energy_key] if energy_key in results else info.pop(energy_key, None)
    if energy is not None:
        try:
            energy = float(energy)
        except (TypeError, ValueError):
            raise DataError(f"energy {_quote_line(str(energy), 40)} is not a number", path, index)
        if not math.isfinite(energy):
            raise DataError(f"non-finite energy {energy}", path, index)

    forces = results.get(forces_key) if forces_key in results else atoms.arrays.get(forces_key)
    if forces is not None:
        forces = np.asarray(forces, dtype=float)
        if forces.ndim != 2 or forces.shape[1] != 3 or forces.shape[0] != n:
            raise DataError(f"forces have shape {forces.shape}, expected ({n}, 3)", path, index)
        if not np.all(np.isfinite(forces)):
            bad = int(np.argwhere(~np.isfinite(forces))[0][0])
            raise DataError(f"non-finite force on atom {bad}", path, index)

    file_unit = info.pop("stress_unit", None)
    if file_unit is not None:
        try:
            fu = _canonical_unit(file_unit)
        except DataError:
            raise DataError(f"file declares unknown stress_unit={_quote_line(str(file_unit), 40)}", path, index)
        if fu != unit:
            raise DataError(f"file declares stress_unit={file_unit} but the caller declared {unit}", path, index)

    stress = None
    raw = info.pop(_RAW_STRESS_KEY, None)
    if raw is None and "stress" in results:  # a stress that reached the calculator some other way
        raw = np.asarray(results["stress"], dtype=float)
    if raw is not None:
        if isinstance(raw, str):
            raise DataError(f"stress {_quote_line(raw, 40)} is not numeric", path, index)
        raw = np.asarray(raw, dtype=float)
        if raw.shape not in ((3, 3), (6,), (9,)):
            raise DataError(f"stress has {raw.size} numbers, expected 9 (or 6 Voigt)", path, index)
        if not np.all(np.isfinite(raw)):
            raise DataError("non-finite stress", path, index)
        stress = stress_to_bar(raw, unit)

    positions = np.asarray(atoms.get_positions(), dtype=float)
    if not np.all(np.isfinite(positions)):
        raise DataError("non-finite position", path, index)
    cell = np.asarray(atoms.cell.array, dtype=float)
    pbc = tuple(bool(x) for x in atoms.pbc)
    info.pop("comment", None)
    return Frame(symbols=list(atoms.get_chemical_symbols()), positions=positions, cell=cell, energy=energy,
                 forces=forces, stress=stress, pbc=pbc, group=group if group is not None else "", source=source[0],
                 info=info, index=index, line=source[1])


# ----------------------------------------------------------------------------------------------------- writing


def _f(x) -> str:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x}")
    return repr(x)


def _quote(s: str) -> str:
    s = str(s)
    if "\n" in s or "\r" in s:
        raise ValueError("header values must be single-line strings")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _info_value(v):
    """JSON-safe scalar to comment-line text, or None when it cannot be written."""
    if isinstance(v, (bool, np.bool_)):
        return "T" if v else "F"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _f(v)
    if isinstance(v, str):
        return _quote(v)
    return None


def frame_to_text(frame: Frame, header: dict | None = None) -> str:
    """The extended XYZ text of one frame (ends with a newline). Stress is written in bar, pressure-positive."""
    header = header or {}
    n = frame.natoms
    if frame.positions.shape != (n, 3):
        raise DataError(f"{frame.positions.shape[0]} positions for {n} atoms", frame.source or None)
    parts = ['Lattice="' + " ".join(_f(x) for x in np.asarray(frame.cell, float).reshape(9)) + '"']
    props = "species:S:1:pos:R:3"
    if frame.forces is not None:
        if frame.forces.shape != (n, 3):
            raise DataError(f"forces have shape {frame.forces.shape}, expected ({n}, 3)", frame.source or None)
        props += ":forces:R:3"
    parts.append("Properties=" + props)
    if frame.energy is not None:
        parts.append("energy=" + _f(frame.energy))
    if frame.stress is not None:
        parts.append('stress="' + " ".join(_f(x) for x in np.asarray(frame.stress, float).reshape(9)) + '"')
    parts.append("stress_unit=bar")
    parts.append('pbc="' + " ".join("T" if p else "F" for p in frame.pbc) + '"')
    extra = {}
    for k, v in (frame.info or {}).items():
        if k in _RESERVED_KEYS or k.startswith("__") or k in header:
            continue
        if _KEY_RE.match(str(k)) and _info_value(v) is not None:
            extra[k] = v
    for k, v in header.items():
        if not _KEY_RE.match(str(k)) or k in _RESERVED_KEYS:
            raise ValueError(f"bad header key {k!r}")
        extra[k] = v if isinstance(v, str) else str(v)
    for k, v in extra.items():
        parts.append(f"{k}={_info_value(v)}")
    lines = [str(n), " ".join(parts)]
    for i, sym in enumerate(frame.symbols):
        row = [sym] + [_f(x) for x in frame.positions[i]]
        if frame.forces is not None:
            row += [_f(x) for x in frame.forces[i]]
        lines.append(" ".join(row))
    return "\n".join(lines) + "\n"


def _frames_text(frames: Iterable[Frame], header) -> str:
    out = []
    for i, fr in enumerate(frames):
        try:
            out.append(frame_to_text(fr, header))
        except ValueError as exc:
            raise DataError(f"cannot write frame: {exc}", fr.source or None, i) from exc
    return "".join(out)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_extxyz(path, frames: Iterable[Frame], header: dict | None = None) -> None:
    """Write `frames` to `path` atomically (temporary file in the same folder, fsync, then ``os.replace``)."""
    path = os.fspath(path)
    text = _frames_text(list(frames), header or {})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    _VALID_SIZE[os.path.abspath(path)] = os.path.getsize(path)


# ---------------------------------------------------------------------------------------- appending and repair

# size of each file as this process last left it complete (so an append need not rescan the whole file)
_VALID_SIZE: dict[str, int] = {}


def scan_extxyz(path) -> tuple[list[tuple[int, int]], int, int]:
    """Scan the frame structure of a file without parsing numbers.

    Returns ``(spans, valid_end, size)``: byte spans (start, end) of complete frames, the byte offset where the
    last complete frame ends, and the file size. A trailing incomplete frame (a torn append) is not an error;
    a malformed frame followed by more data is (DataError).
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    size = len(data)
    spans = []
    pos = 0
    index = 0
    while pos < size:
        start = pos
        nl = data.find(b"\n", pos)
        if nl < 0:
            break  # torn: count line without newline
        count_line = data[pos:nl].strip()
        if not count_line and nl + 1 >= size:
            # a lone trailing blank line after the last frame: accept as end of data
            pos = nl + 1
            break
        try:
            natoms = int(count_line)
            if natoms < 0:
                raise ValueError
        except ValueError:
            raise DataError(f"expected the number of atoms, got {count_line[:40]!r}", path, index)
        pos = nl + 1
        complete = True
        for j in range(natoms + 1):
            nl = data.find(b"\n", pos)
            if nl < 0:
                complete = False
                break
            if j > 0 and len(data[pos:nl].split()) < 4:
                if nl + 1 >= size:  # a short last line: torn
                    complete = False
                    break
                raise DataError(f"atom line {j} has too few columns", path, index)
            pos = nl + 1
        if not complete:
            pos = start
            break
        spans.append((start, pos))
        index += 1
    valid_end = spans[-1][1] if spans else 0
    return spans, valid_end, size


def repair_extxyz(path) -> int:
    """Drop a torn trailing frame (left by a killed writer). Returns the number of bytes removed."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return 0
    spans, valid_end, size = scan_extxyz(path)
    removed = 0
    if valid_end < size:
        tail = None
        with open(path, "rb") as fh:
            fh.seek(valid_end)
            tail = fh.read()
        if tail.strip():  # real torn data (not just trailing whitespace)
            with open(path, "r+b") as fh:
                fh.truncate(valid_end)
                fh.flush()
                os.fsync(fh.fileno())
            removed = size - valid_end
    _VALID_SIZE[os.path.abspath(path)] = os.path.getsize(path)
    return removed


def append_extxyz(path, frame: Frame, header: dict | None = None) -> None:
    """Append one complete frame: a torn tail is dropped first, the frame text goes in one ``write``, then fsync.

    A kill leaves either the whole frame or a torn tail that the next append (or :func:`repair_extxyz`) drops.
    """
    path = os.fspath(path)
    key = os.path.abspath(path)
    try:
        text = frame_to_text(frame, header or {}).encode("utf-8")
    except ValueError as exc:
        raise DataError(f"cannot write frame: {exc}", frame.source or path) from exc
    exists = os.path.exists(path)
    if exists and _VALID_SIZE.get(key) != os.path.getsize(path):
        repair_extxyz(path)
    folder = os.path.dirname(key)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(text)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exists:
        _fsync_dir(folder)
    _VALID_SIZE[key] = os.path.getsize(path)
