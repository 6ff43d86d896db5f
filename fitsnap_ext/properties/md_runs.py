"""What the MD property runs share: durations as MD steps, and the blocks of an averaging fix's file."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def md_steps(timestep_ps: float, *durations_ps: float) -> list[int]:
    """Each duration (ps) as a whole number of MD steps of `timestep_ps`."""
    return [int(round(t / timestep_ps)) for t in durations_ps]


def read_blocks(path: Path, header_words: int) -> list[np.ndarray]:
    """Rows of every block of a `fix ave/time ... mode vector` or `fix ave/chunk` file, one array per block.

    A line of `header_words` numbers opens a block ("timestep nrows" for ave/time, "timestep nchunks
    total-count" for ave/chunk); the rows follow it.
    """
    blocks, current = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        words = line.split()
        if len(words) == header_words:
            current = []
            blocks.append(current)
        else:
            current.append([float(w) for w in words])
    return [np.array(b) for b in blocks]


def read_last_block(path: Path, header_words: int) -> np.ndarray:
    """Rows of the last block of such a file (see `read_blocks`)."""
    return read_blocks(path, header_words)[-1]
