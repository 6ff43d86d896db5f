"""MPI helpers: spread configurations over ranks, reduce, and fail on every rank together.

Everything takes the communicator as an argument; `world()` is only a default for callers.
"""
from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

import numpy as np

from .errors import FitsnapError


def world():
    """The MPI world communicator (a one-rank world when not started by mpirun)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def comm_or_world(comm=None):
    """`comm`, or the MPI world when none is given (mpi4py loads before any LAMMPS)."""
    return comm if comm is not None else world()


def threads_per_rank() -> int:
    """torch threads per rank: OMP_NUM_THREADS when set, else 1 — LAMMPS' own rule, so that R ranks use R cores,
    a node is never oversubscribed and a fit's round-off does not depend on the machine's core count. Measured
    (Zuo Si in.si_nn, 1 rank, 2 cores): 79.9 s training on one thread, 75.3 s on two (1.8× the CPU time for 6 %);
    the weights differ by up to 1e-10 relative after 300 epochs, the test errors agree to the printed digits."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, int(value)) if value.isdigit() else 1


@contextmanager
def torch_threads(n: int | None = None):
    """torch's intra-op threads set to `n` (default `threads_per_rank()`) inside, restored after. Explicit,
    because the count torch finds otherwise depends on what ran before in the process (a LAMMPS instance sets a
    shared OpenMP runtime's count to 1) and its default, one thread per core on every rank, oversubscribes a node
    under mpirun."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads_per_rank() if n is None else n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_by_atoms(natoms: list[int], nranks: int) -> list[list[int]]:
    """Indices per rank, balanced by atom count (largest first onto the least loaded rank).

    Deterministic; each rank's list is returned in ascending index order.
    """
    load = [0] * nranks
    parts: list[list[int]] = [[] for _ in range(nranks)]
    for i in sorted(range(len(natoms)), key=lambda k: (-natoms[k], k)):
        r = min(range(nranks), key=lambda k: (load[k], k))
        parts[r].append(i)
        load[r] += natoms[i]
    return [sorted(p) for p in parts]


class RankFailed(FitsnapError):
    """Raised on every rank when any rank hit an error in a `collective` block."""


@contextmanager
def collective(comm, stage: str):
    """Run a block on all ranks; if any rank raises a FitsnapError, raise it on every rank.

    The failing rank's message is re-raised everywhere (the lowest failing rank's, so rank 0 can print
    it), so no rank is left waiting in a later collective call. Unexpected exceptions (bugs) print a
    traceback and abort the whole communicator: a hang is worse than a hard stop.
    """
    error = None
    try:
        yield
    except FitsnapError as exc:
        error = exc
    except Exception:
        if comm.size == 1:
            raise  # the command line reports it as a bug (exit 2)
        abort_on_bug(comm)
    messages = comm.allgather(None if error is None else f"{error}")
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        if error is not None and failed[0][0] == comm.rank:
            error.on_every_rank = True
            raise error
        rank, message = failed[0]
        failure = RankFailed(message if comm.size == 1 else f"{message} (rank {rank}, during {stage})")
        failure.on_every_rank = True
        raise failure


def abort_on_bug(comm) -> None:
    """Print the traceback of an unexpected exception and stop every rank (exit status 2): never a hang."""
    traceback.print_exc()
    print(f"fitsnap_ext: error: internal error on rank {comm.rank} (a bug: please report the traceback above)",
          file=sys.stderr, flush=True)
    comm.Abort(2)
    os._exit(2)  # MPI_Abort may return on the calling rank before it is killed: never run on


def map_entries(open_calculator, compute, entries: list, comm, progress, what: str, size=None) -> list:
    """`compute(calculator, entry)` for this rank's entries with one calculator (closed at the end), as a
    collective stage; a progress line about every 10 % (rank 0's share stands for all; `size(results)` adds
    the memory held)."""
    import time

    out = []
    with collective(comm, f"computing {what}"):
        calc = open_calculator()
        try:
            t0 = time.perf_counter()
            step = max(1, len(entries) // 10)
            for i, entry in enumerate(entries, 1):
                out.append(compute(calc, entry))
                if i % step == 0 or i == len(entries):
                    elapsed = time.perf_counter() - t0
                    progress(f"{what} {i}/{len(entries)} configurations on rank 0 ({elapsed:.1f} s, "
                             f"~{elapsed / i * (len(entries) - i):.1f} s left"
                             + (f", {size(out) / 2**20:.0f} MiB)" if size else ")"))
        finally:
            calc.close()
    return out


def tsqr_r(blocks, ncols: int, comm, chunk_rows: int = 20000) -> np.ndarray:
    """R factor of the vertically stacked `blocks` of all ranks (TSQR), identical on every rank.

    Each rank folds its rows into a (ncols × ncols) R chunk by chunk, so memory never exceeds one
    chunk plus R; rank 0 factors the stacked R's of all ranks and broadcasts the result.
    """
    r = np.zeros((0, ncols))
    pending = []
    pending_rows = 0

    def fold(r, pending):
        stacked = np.vstack([r] + pending)
        return np.linalg.qr(stacked, mode="r")[: min(ncols, len(stacked))]

    for block in blocks:
        pending.append(block)
        pending_rows += len(block)
        if pending_rows >= chunk_rows:
            r, pending, pending_rows = fold(r, pending), [], 0
    if pending:
        r = fold(r, pending)
    gathered = comm.gather(r, root=0)
    if comm.rank == 0:
        r = fold(np.zeros((0, ncols)), gathered)
        if len(r) < ncols:
            r = np.vstack([r, np.zeros((ncols - len(r), ncols))])
    return comm.bcast(r if comm.rank == 0 else None, root=0)
