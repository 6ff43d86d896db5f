"""The labeler registry: a deck's [LABELER] type -> the labeler that serves it."""
from __future__ import annotations

from fitsnap_ext.errors import DeckError
from fitsnap_ext.generate.base import Labeler
from fitsnap_ext.generate.cp2k import Cp2kLabeler
from fitsnap_ext.generate.deck import LabelerSettings
from fitsnap_ext.generate.labelers import AseLabeler, LammpsLabeler, sevenn_labeler

LABELERS = {
    "lammps": lambda s, workdir, progress: LammpsLabeler(s),
    "ase": lambda s, workdir, progress: AseLabeler(s),
    "sevenn": lambda s, workdir, progress: sevenn_labeler(s),
    "cp2k": lambda s, workdir, progress: Cp2kLabeler(s, workdir=workdir, progress=progress),
}


def make_labeler(s: LabelerSettings, workdir: str | None = None, progress=None) -> Labeler:
    """The deck's labeler; `progress` (a fitsnap_ext.progress.Progress) hears a CP2K labeler's notes."""
    if s.type not in LABELERS:
        raise DeckError(f"unknown labeler {s.type!r}", section="LABELER", key="type")
    return LABELERS[s.type](s, workdir, progress)
