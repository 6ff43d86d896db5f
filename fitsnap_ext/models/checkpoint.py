"""Network files on disk: checkpoints and saved states hold tensors and plain data only and are read with
`torch.load(weights_only=True)`, so a file holding any other object is refused, never run; each carries a fingerprint
of the fit that made it, compared key by key before it is used."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DeckError, first_line


def _torch():
    import torch

    return torch


def plain(obj):
    """`obj` as tensors and plain data only (what `torch.load(weights_only=True)` reads): numpy → torch / float."""
    torch = _torch()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def no_deck(message, section, key):
    return DeckError(message, None, None, section, key)


def load_trusted(path, key: str, deck_error=no_deck) -> dict:
    """A torch file named by [PYTORCH] `key`, read with weights_only=True (tensors and plain data; any other
    object is refused before it is built, so nothing in the file runs)."""
    import pickle

    torch = _torch()
    p = Path(path)
    if not p.is_file():
        raise deck_error(f"{path}: {'not a file' if p.exists() else 'file not found'}", "PYTORCH", key)
    try:
        out = torch.load(p, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if not found:
            raise deck_error(f"{path} is not a readable torch file (damaged or not written by torch.save)",
                             "PYTORCH", key) from None
        raise deck_error(f"{path} holds objects other than tensors and plain data ({found.group(1)}); refused, "
                         "since loading it could run code", "PYTORCH", key) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for a damaged file
        raise deck_error(f"{path} is not a readable torch file ({type(exc).__name__}: {first_line(exc, 120)})",
                         "PYTORCH", key) from None
    if not isinstance(out, dict) or not isinstance(out.get("fingerprint"), dict):
        raise deck_error(f"{path} is not a fitsnap_ext network file (no fingerprint)", "PYTORCH", key)
    return out


def fingerprint_differences(made: dict, now: dict, keys=None) -> list[str]:
    """'<key> a (file) vs b (deck)' phrases for the fingerprint entries that differ."""
    keys = keys if keys is not None else sorted(set(made) | set(now))
    return [f"was made with {k} {made.get(k, '(none)')}, this deck has {now.get(k, '(none)')}"
            for k in keys if made.get(k) != now.get(k)]


ARCHITECTURE_KEYS = ("layer_sizes", "activation", "types", "multi_element_option", "linear_baseline")
