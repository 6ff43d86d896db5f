"""Run a deck from lammps_scripts/ through the LAMMPS Python module, on every rank of a communicator.

Python only fills `-var` variables and reads back the files the deck writes; the decks stay runnable by hand
(`lmp -in lammps_scripts/in.eos -var pot ... -var data ... -var out ...`). Paths inside a `.mod` are relative to
its folder (FitSNAP convention): the decks include a copy with those paths made absolute (`<logs>/potential.mod`,
written before the first run), so LAMMPS runs where it was started and every path handed to a deck is absolute.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.errors import FitsnapError
from fitsnap_ext.lammps_session import LammpsSession, include_commands, lammps_frame
from fitsnap_ext.parallel import comm_or_world
from fitsnap_ext.properties.outputs import on_rank0


def installed_scripts_dirs() -> list[Path]:
    """Where an installed wheel put the decks (pyproject data-files → <prefix>/share/fitsnap_ext/lammps_scripts),
    read from the distribution's file list so that any install scheme (venv, --user, --prefix) is found."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("fitsnap_ext").files or []
    except PackageNotFoundError:
        return []
    return list(dict.fromkeys(Path(f.locate()).resolve().parent for f in files
                              if f.name == "in.eos" and f.parent.name == "lammps_scripts"))


def scripts_dir() -> Path:
    """Folder of the LAMMPS decks: lammps_scripts/ at the root of a source checkout (editable install: edits are
    live), else the copy a wheel installed; a clear error naming both places if neither holds the decks."""
    candidates = [Path(__file__).resolve().parents[2] / "lammps_scripts", *installed_scripts_dirs()]
    for path in candidates:
        if (path / "in.eos").is_file():
            return path
    raise FitsnapError("LAMMPS decks (lammps_scripts/in.*) not found; looked in: "
                       + ", ".join(str(p) for p in candidates)
                       + " (reinstall fitsnap_ext, or run from a source checkout)")


@dataclass
class DeckRunner:
    """Runs decks for one potential; `logs` (an existing folder by the first run) collects one LAMMPS log per run
    and the potential with absolute paths (`potential.mod`, the decks' `pot`). `monitor`, if given, hears
    `started(run_name)` and `ended(run_name, seconds)` of every run (progress lines)."""

    pot_mod: Path
    logs: Path
    comm: object = None
    monitor: object = None

    def __post_init__(self):
        self.pot_mod = Path(self.pot_mod).resolve()
        self.logs = Path(self.logs).resolve()
        self.comm = comm_or_world(self.comm)
        if not self.pot_mod.is_file():
            raise FitsnapError(f"potential include file not found: {self.pot_mod}")
        self.pot_commands = include_commands(self.pot_mod)
        self.pot_file: Path | None = None

    def resolved_potential(self) -> Path:
        """`<logs>/potential.mod`: the potential's commands with its files' paths made absolute (rank 0 writes it
        once; every rank calls this)."""
        if self.pot_file is None:
            path = self.logs / "potential.mod"
            text = f"# {self.pot_mod.name} with the paths of its files made absolute (fitsnap_ext)\n"
            on_rank0(self.comm, f"writing {path}", lambda: path.write_text(text + "\n".join(self.pot_commands) + "\n"))
            self.pot_file = path
        return self.pot_file

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    def run(self, deck: str, run_name: str, **variables) -> None:
        """Run lammps_scripts/in.<deck> with `-var pot <resolved potential>` plus `variables`; LAMMPS errors →
        LammpsError naming the deck, the run and the potential."""
        path = scripts_dir() / f"in.{deck}"
        pot = self.resolved_potential()
        if self.monitor is not None:
            self.monitor.started(run_name)
        t0 = time.perf_counter()
        with LammpsSession(self.comm, log=self.logs / f"log.{run_name}.lammps",
                           variables={"pot": pot, **variables}) as lmp:
            lmp.file(path, what=f"deck {path.name} ({run_name}) with {self.pot_mod.name}")
        self.comm.Barrier()
        if self.monitor is not None:
            self.monitor.ended(run_name, time.perf_counter() - t0)


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a cell (rows = vectors) to LAMMPS' lower-triangular form; returns (new cell, R) with cell @ R = new."""
    placed = lammps_frame(cell, np.zeros((0, 3)))
    return placed.cell.T, placed.rotation.T


def write_data(path: Path, atoms, elements: tuple[str, ...], masses: tuple[float, ...]) -> None:
    """Write an ase.Atoms as a LAMMPS atomic data file: types follow `elements`, Masses section included."""
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(elements))
    if unknown:
        raise FitsnapError(f"structure has elements {unknown} not in the system's element list {list(elements)}")
    cell, _ = lammps_cell(atoms.cell.array)
    frac = atoms.get_scaled_positions(wrap=True)
    pos = frac @ cell
    lines = [f"LAMMPS data file written by fitsnap_ext ({atoms.get_chemical_formula()})", "",
             f"{len(atoms)} atoms", f"{len(elements)} atom types", "",
             f"0.0 {cell[0, 0]:.12f} xlo xhi", f"0.0 {cell[1, 1]:.12f} ylo yhi", f"0.0 {cell[2, 2]:.12f} zlo zhi"]
    if np.abs(cell[[1, 2, 2], [0, 0, 1]]).max() > 1e-12:
        lines.append(f"{cell[1, 0]:.12f} {cell[2, 0]:.12f} {cell[2, 1]:.12f} xy xz yz")
    lines += ["", "Masses", ""]
    lines += [f"{i + 1} {m:.6f}  # {e}" for i, (e, m) in enumerate(zip(elements, masses))]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {elements.index(s) + 1} {p[0]:.12f} {p[1]:.12f} {p[2]:.12f}"
              for i, (s, p) in enumerate(zip(symbols, pos))]
    Path(path).write_text("\n".join(lines) + "\n")


def read_data(path: Path, elements: tuple[str, ...]):
    """Read back a LAMMPS atomic data file (as written by `write_data`) into ase.Atoms, sorted by atom id."""
    from ase import Atoms

    text = Path(path).read_text().splitlines()
    lo = np.zeros(3)
    length = np.zeros(3)
    tilt = np.zeros(3)                  # xy xz yz
    atoms_at = None
    for i, line in enumerate(text):
        words = line.split("#")[0].split()
        for k, d in enumerate("xyz"):
            if words[2:4] == [f"{d}lo", f"{d}hi"]:
                lo[k], length[k] = float(words[0]), float(words[1]) - float(words[0])
        if words[3:6] == ["xy", "xz", "yz"]:
            tilt = np.array([float(w) for w in words[:3]])
        if words[:1] == ["Atoms"]:
            atoms_at = i
    if atoms_at is None:
        raise FitsnapError(f"{path}: no Atoms section")
    rows = []
    for line in text[atoms_at + 2:]:
        words = line.split()
        if not words:
            break
        rows.append(words)
    rows.sort(key=lambda w: int(w[0]))
    cell = np.array([[length[0], 0, 0], [tilt[0], length[1], 0], [tilt[1], tilt[2], length[2]]])
    pos = np.array([[float(x) for x in w[2:5]] for w in rows]) - lo
    symbols = [elements[int(w[1]) - 1] for w in rows]
    return Atoms(symbols=symbols, positions=pos, cell=cell, pbc=True)


def read_keyvals(path: Path) -> dict[str, float]:
    """Parse a deck's `print` output of `key value` lines (last occurrence wins)."""
    out: dict[str, float] = {}
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if len(words) == 2 and not line.startswith("#"):
            out[words[0]] = float(words[1])
    return out
