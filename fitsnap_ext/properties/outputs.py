"""The files of a properties run: which they are, checks before any work, rank-0 writing that fails on every rank.

A run writes props.json, <stem>_curves.npz, <stem>_errors.json/.md (with a reference) and the folder
<stem>_files/ (LAMMPS outputs, logs, plots). Existing outputs are refused unless `overwrite` is given; an
unwritable place is refused before anything runs; a failed run removes the folders it created.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from fitsnap_ext.errors import FitsnapError
from fitsnap_ext.export.files import unwritable_reason
from fitsnap_ext.parallel import collective


def work_dir_for(out: Path) -> Path:
    """Folder for a run's LAMMPS outputs, logs and plots: next to props.json, named after it."""
    return out.parent / f"{out.stem}_files"


def curves_path(out: Path) -> Path:
    """Where run_properties puts the curves behind its plots (E–V, phonon DOS, g(r)/ADF, MSD/Arrhenius)."""
    return Path(out).with_name(Path(out).stem + "_curves.npz")


def errors_paths(out: Path) -> tuple[Path, Path]:
    """The comparison against a reference: <stem>_errors.json and <stem>_errors.md."""
    return out.with_name(out.stem + "_errors.json"), out.with_name(out.stem + "_errors.md")


def output_paths(out: Path) -> list[Path]:
    """Everything a run may write for `out` (props.json first)."""
    return [out, curves_path(out), *errors_paths(out), work_dir_for(out)]


def os_error(what: str, exc: OSError) -> FitsnapError:
    """An OSError as a one-line FitsnapError naming the path."""
    path = exc.filename if exc.filename is not None else "?"
    return FitsnapError(f"{what}: cannot write {path}: {exc.strerror or exc}")


def on_rank0(comm, stage: str, action) -> None:
    """Run `action()` on rank 0 as a collective stage: an OSError (or FitsnapError) there is raised on every rank,
    so no rank waits for one that failed."""
    with collective(comm, stage):
        if comm.Get_rank() == 0:
            try:
                action()
            except OSError as exc:
                raise os_error(stage, exc) from exc


def check_writable(folder: Path) -> None:
    """Refuse a folder that cannot be created or written (export.files.unwritable_reason)."""
    problem = unwritable_reason(folder)
    if problem:
        raise FitsnapError(f"cannot write into {folder}: {problem}")


def check_outputs(out: Path, overwrite: bool) -> None:
    """Before any work: refuse existing outputs of `out` without `overwrite`, and an unwritable folder."""
    existing = [p for p in output_paths(out) if p.exists()]
    if existing and not overwrite:
        raise FitsnapError(f"{existing[0]} exists (give --overwrite to replace "
                           f"{'it' if len(existing) == 1 else f'it and {len(existing) - 1} more output(s)'})")
    check_writable(out.parent)


class CreatedFolders:
    """Folders a run creates (rank 0), so that a failed run can remove them again and empty ones go."""

    def __init__(self):
        self.created: list[Path] = []

    def make(self, folder: Path) -> Path:
        """mkdir -p, remembering the topmost folder this call created."""
        folder = Path(folder)
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        if missing:
            self.created.append(missing[-1])
        return folder

    def remove_all(self) -> None:
        """After a failed run: remove every folder this run created, with what is in it (newest first)."""
        for folder in reversed(self.created):
            shutil.rmtree(folder, ignore_errors=True)
        self.created.clear()

    def remove_empty(self, root: Path) -> None:
        """After a run: remove the empty folders below `root` (a property that failed before writing)."""
        for folder in sorted((p for p in Path(root).rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()


def clear_outputs(out: Path) -> None:
    """Remove every output of `out` (the old ones before an --overwrite run, this run's after it failed)."""
    for path in output_paths(out):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
