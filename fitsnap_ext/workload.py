"""The first two stages of every fit: rank 0 reads the configurations (or takes them from memory) and deals them to
the ranks balanced by atom count; each rank computes its share's descriptors with its own LAMMPS."""
from __future__ import annotations

import time

from .settings import Settings
from .data.dataset import Entry, load_entries
from .parallel import collective, split_by_atoms


def distribute(settings: Settings, comm, progress, frames=None) -> tuple[list[Entry], int]:
    """Rank 0 reads and splits the data (or takes `frames`); each rank receives its configurations."""
    parts = None
    with collective(comm, "reading data"):
        if comm.rank == 0:
            entries = load_entries(settings, frames)
            n_test = sum(e.test for e in entries)
            ngroups = len({e.frame.group for e in entries})
            progress(f"read {len(entries)} configurations ({len(entries) - n_test} train, {n_test} test) "
                     f"in {ngroups} groups from {settings.data_path if frames is None else 'memory'}")
            shares = split_by_atoms([e.frame.natoms for e in entries], comm.size)
            parts = [[entries[i] for i in share] for share in shares]
    mine = comm.scatter(parts, root=0)
    total = comm.bcast(sum(len(p) for p in parts) if comm.rank == 0 else None, root=0)
    return mine, total


def read_and_compute(settings: Settings, comm, progress, compute, timings: dict, frames=None):
    """Read and spread the data (or `frames`), then `compute(settings, entries, comm, progress)` on each rank's
    share, timed into `timings` → (this rank's entries, total count, what compute returned)."""
    t = time.perf_counter()
    entries, n_total = distribute(settings, comm, progress, frames)
    timings["read"] = time.perf_counter() - t
    t = time.perf_counter()
    computed = compute(settings, entries, comm, progress)
    comm.Barrier()
    timings["descriptors"] = time.perf_counter() - t
    return entries, n_total, computed
