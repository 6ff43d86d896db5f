"""The study's stage cache: `<out>/<model>/stage_<name>.json` holds a stage's record and its key.

A fit's key hashes the model's settings (not where the deck or the data lie, nor the deck's line numbers) and the
content of the data files it reads; a later stage's key hashes the fit's key and the stage's own options. A rerun
skips every stage whose key is unchanged. Changing what a key hashes re-runs every cached study: settings added
later are keyed only when they leave their default (KEYED_UNLESS_DEFAULT).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from ..settings import Settings
from ..data.dataset import group_files

STUDY_VERSION = 1
# settings added after studies were cached: keyed only when not at their default (which fits as before them)
KEYED_UNLESS_DEFAULT = {("calculator", "stress_components"): "all", ("network", "training_fraction"): None,
                        ("network", "shuffle_flag"): True, ("network", "multi_element_option"): 2,
                        ("network", "ensemble_size"): 1, ("network", "ensemble_bootstrap"): False,
                        ("network", "ema_decay"): 0.0, ("network", "weight_decay"): 0.0,
                        ("network", "linear_baseline"): False,
                        ("solver", "nsam"): 0, ("solver", "cov_nugget"): 0.0,
                        ("solver", "nboot"): 100}


def _jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def data_fingerprint(settings: Settings) -> list:
    """(relative name, size, sha256) of every file the deck's groups read: the same on any machine or clone
    (mtimes are not), changed when the data are, and not by a data card, a script or a group the deck leaves out
    that lie in the same folder (hashing the Si paper set takes well under a second)."""
    root = Path(settings.data_path)
    files = sorted(p for group in settings.groups.groups for p in group_files(settings, group))
    return [(str(p.relative_to(root)), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def fit_key(settings: Settings) -> str:
    """The fit stage's key: the settings that change the fit and the data's content."""
    d = _jsonable(settings)
    for (section, key), default in KEYED_UNLESS_DEFAULT.items():
        if (d.get(section) or {}).get(key, default) == default and d.get(section):
            d[section].pop(key, None)
    for meta in ("deck", "lines", "notes"):  # where the deck lies, its line numbers, notes: not the fit
        d.pop(meta, None)
    d.pop("properties", None)
    d.pop("data_path", None)  # where the data lies (clone, machine) does not matter: its content does
    payload = {"v": STUDY_VERSION, "settings": d, "data": data_fingerprint(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_key(fitkey: str, **options) -> str:
    """A later stage's key: the fit's key and the stage's options."""
    payload = json.dumps({"fit": fitkey, **_jsonable(options)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def structure_key(spec) -> dict:
    """The cache-key entry of the study's `structure` file (its content), or nothing without one."""
    return {"structure": hashlib.sha256(spec.structure.read_bytes()).hexdigest()[:16]} if spec.structure else {}


def _stage_file(folder: Path, stage: str) -> Path:
    return folder / f"stage_{stage}.json"


def cached(folder: Path, stage: str, key: str, comm, force: bool) -> dict | None:
    """The stage's record when its key matches (read on rank 0, shared with all ranks), else None."""
    hit = None
    f = _stage_file(folder, stage)
    if not force and comm.rank == 0 and f.is_file():
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError:
            d = {}
        hit = d if d.get("key") == key else None
    return comm.bcast(hit, root=0)


def mark_done(folder: Path, stage: str, key: str, data: dict) -> None:
    """Record a finished stage (rank 0)."""
    f = _stage_file(folder, stage)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, **data}, indent=1, default=float) + "\n")
    os.replace(tmp, f)  # atomic: a killed study never leaves a half-written stage marker
