"""Progress lines, the same for every subcommand: rank 0 only, timestamped, flushed (batch logs show them live).

A line reads `[<prefix> HH:MM:SS <elapsed> s] <message>` — `[properties 14:02:11    12.3 s] eos: done in 2.0 s`;
without a prefix `[HH:MM:SS <elapsed> s] <message>`. Elapsed seconds count from the printer's creation.
"""
from __future__ import annotations

import sys
import time


class Progress:
    """Prints progress lines on rank 0 of `comm` (None: this process alone) to `stream` (default: stdout at the
    time of printing). `quiet` silences progress lines, not notes and warnings."""

    def __init__(self, comm=None, prefix: str = "", stream=None, quiet: bool = False):
        self.rank = 0 if comm is None else comm.Get_rank()
        self.prefix = prefix
        self.stream = stream
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the printer was made."""
        return time.perf_counter() - self.t0

    def line(self, message: str) -> str:
        """The text of one line, as printed."""
        stamp = f"{time.strftime('%H:%M:%S')} {self.elapsed():7.1f} s"
        return f"[{self.prefix} {stamp}] {message}" if self.prefix else f"[{stamp}] {message}"

    def __call__(self, message: str) -> None:
        """A progress line (none when quiet)."""
        if not self.quiet:
            self.note(message)

    def note(self, message: str) -> None:
        """A line printed even when quiet: something the user must know (a dropped torn frame, a stop)."""
        if self.rank == 0:
            print(self.line(message), file=self.stream or sys.stdout, flush=True)

    def warn(self, message: str) -> None:
        """`warning: <message>`, printed even when quiet."""
        self.note(f"warning: {message}")
