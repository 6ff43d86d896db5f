"""`python -m fitsnap_ext study STUDY_DECK`: the model-complexity study.

For every model of a ladder on the same descriptors and the same fixed train/test split: fit it, deploy the
`.mod` in LAMMPS, compute simulated properties with the property engine, time NVE MD on a fixed supercell,
and compare everything with ab initio references. Writes `study.md`, `study.csv` and PNG plots.

Stages are cached per model (`<out>/<model>/stage_<name>.json` holds the stage's cache key): a rerun — or
a resumed, interrupted study — skips every stage whose key (hash of the model's settings, the data files'
names/sizes/mtimes, and the stage's own options) is unchanged.

Every rank calls everything (LAMMPS runs are domain-decomposed over the communicator); rank 0 alone writes
the report.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .config import RawDeck, RawValue, Settings, load_settings
from .data.dataset import group_file, group_files
from .errors import ArgumentParser, DataError, DeckError, FitsnapError, first_line
from .lammps_session import working_directory
from .parallel import collective

STUDY_VERSION = 1
SYSTEMS = ("si", "gan", "lgps")
# study-level keys of a [MODEL name] section that map to a deck section (anything else: SECTION.key = value)
MODEL_KEY_SECTIONS = {
    "twojmax": "BISPECTRUM", "quadraticflag": "BISPECTRUM", "rcutfac": "BISPECTRUM", "bzeroflag": "BISPECTRUM",
    "solver": "SOLVER", "alpha": "RIDGE",
    "layer_sizes": "PYTORCH", "activation": "PYTORCH", "num_epochs": "PYTORCH", "learning_rate": "PYTORCH",
    "batch_size": "PYTORCH", "energy_weight": "PYTORCH", "force_weight": "PYTORCH", "seed": "PYTORCH",
    "patience": "PYTORCH", "validation_fraction": "PYTORCH", "stress_weight": "PYTORCH",
}
QUICK_KEYS = ("base_deck", "ladder", "properties", "md_cell", "md_steps", "nn_epochs", "out")
STUDY_KEYS = ("base_deck", "system", "properties", "quick", "out", "ladder", "md_cell", "md_steps",
              "md_temperature", "nn_epochs", "nn_patience", "nn_stress_weight", "nn_group_weights", "split_seed", "dataPath",
              "structure", "property_settings",
              "property_quick") + tuple("quick_" + k for k in QUICK_KEYS)
REFERENCE_KEYS = ("literature", "volume_set", "liquid_set", "solid_md_set", "quick_literature")


def log(comm, message: str) -> None:
    if comm.rank == 0:
        print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------
# The study deck


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str                                   # linear | quadratic | nn | custom
    overrides: tuple[tuple[str, str, str], ...]
    line: int | None = None


@dataclass(frozen=True)
class StudySpec:
    deck: Path
    base_deck: Path
    system: str
    properties: tuple[str, ...]
    quick: bool
    out: Path
    models: tuple[ModelSpec, ...]
    md_cell: tuple[int, int, int]
    md_steps: int
    md_temperature: float
    property_quick: bool = False
    base_overrides: tuple[tuple[str, str, str], ...] = ()
    nn_group_weights: str = "unit"
    structure: Path | None = None   # replaces the system preset's crystal (e.g. the ordered cell of the data)
    # run lengths/sizes of the property engine replaced in both modes (e.g. a middle diffusion setting)
    property_settings: tuple[tuple[str, str], ...] = ()
    literature: Path | None = None
    volume_set: Path | None = None
    liquid_set: Path | None = None
    solid_md_set: Path | None = None


def ladder_models(ladder: list[str], raw: RawDeck, nn_defaults=()) -> list[ModelSpec]:
    """`linear:4 linear:6 quadratic:6 nn:16 nn:32x32` → model specs (NN rungs use the base deck's 2J and the
    study's `nn_defaults` [PYTORCH] keys)."""
    models = []
    for item in ladder:
        kind, _, arg = item.partition(":")
        kind = kind.lower()
        try:
            if kind in ("linear", "quadratic"):
                twoj = int(arg)
                if twoj < 0:
                    raise ValueError
                ov = [("BISPECTRUM", "twojmax", str(twoj)),
                      ("BISPECTRUM", "quadraticflag", "1" if kind == "quadratic" else "0")]
                models.append(ModelSpec(f"{kind}_2J{twoj}", kind, tuple(ov)))
            elif kind == "nn":
                widths = [int(w) for w in arg.lower().split("x")]
                if not widths or any(w < 1 for w in widths):
                    raise ValueError
                ov = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"),
                      ("BISPECTRUM", "quadraticflag", "0"),
                      ("PYTORCH", "layer_sizes", "num_desc " + " ".join(map(str, widths)) + " 1"), *nn_defaults]
                models.append(ModelSpec("nn_" + "x".join(map(str, widths)), "nn", tuple(ov)))
            else:
                raise ValueError
        except ValueError:
            raise raw.error(f"bad ladder entry {item!r} (use linear:2J, quadratic:2J or nn:W[xW...], "
                            f"e.g. 'linear:6 quadratic:6 nn:32x32')", "STUDY", "ladder") from None
    return models


def _model_section(raw: RawDeck, section: str, name: str, nn_defaults=()) -> ModelSpec:
    overrides = []
    first = None
    for key, rv in list(raw.items(section)):
        first = first or rv.line
        if "." in key:
            sec, _, k = key.partition(".")
            overrides.append((sec.upper(), k, rv.value))
        elif key.lower() in MODEL_KEY_SECTIONS:
            overrides.append((MODEL_KEY_SECTIONS[key.lower()], key, rv.value))
        else:
            raise DeckError(f"unknown key (known: {', '.join(MODEL_KEY_SECTIONS)}, or SECTION.key)",
                            raw.path, rv.line, section, key)
    secs = {(s, k.lower()): v for s, k, v in overrides}
    kind = "custom"
    if secs.get(("SOLVER", "solver"), "").upper() == "PYTORCH":
        kind = "nn"
        if ("CALCULATOR", "nonlinear") not in secs:
            overrides.append(("CALCULATOR", "nonlinear", "1"))
        overrides += [d for d in nn_defaults if (d[0], d[1]) not in secs]
    elif secs.get(("BISPECTRUM", "quadraticflag"), "0") in ("1", "true", "yes", "on"):
        kind = "quadratic"
    else:
        kind = "linear"
    return ModelSpec(name, kind, tuple(overrides), first)


def read_study(path: str | Path, overrides: list[tuple[str, str, str]] = ()) -> StudySpec:
    """Parse and validate a study deck (errors name file, line, section and key). A deck that fails leaves
    nothing behind: the inline fitting deck it wrote for validation (and a folder made for it) is removed."""
    created: list[Path] = []
    try:
        return _read_study(Path(path).resolve(), overrides, created)
    except Exception:
        for p in reversed(created):  # every rank runs this: another may have removed it already
            try:
                p.unlink() if p.is_file() else p.rmdir()
            except OSError:
                pass
        raise


def _read_study(path: Path, overrides, created: list[Path]) -> StudySpec:
    raw = RawDeck.read(path)
    for sec, key, value in overrides:
        raw.override(sec, key, value)
    s = "STUDY"
    if not raw.has(s):
        raise DeckError("missing section [STUDY]", path)
    for key, rv in raw.sections[s].items():
        if key not in [k.lower() for k in STUDY_KEYS]:
            raise DeckError(f"unknown key (known: {', '.join(STUDY_KEYS)})", path, rv.line, s, key)
    quick = raw.get(s, "quick", bool, False)
    if quick:  # quick mode: the deck's quick_* keys replace their full-study counterparts
        for k in QUICK_KEYS:
            if raw.has(s, "quick_" + k):
                rv = raw.sections[s]["quick_" + k]
                raw.sections[s][k] = rv
                raw._key_case[(s, k)] = "quick_" + k
        if not raw.has(s, "quick_out") and raw.has(s, "out"):
            raw.sections[s]["out"] = type(raw.sections[s]["out"])(raw.sections[s]["out"].value + "_quick",
                                                                  raw.sections[s]["out"].line)
        if raw.has("ABINITIO", "quick_literature"):  # quick data have their own labeler: only its values
            q = raw.sections["ABINITIO"]
            q["literature"] = q["quick_literature"]
            for k in ("volume_set", "liquid_set", "solid_md_set"):
                q.pop(k, None)
    for k in QUICK_KEYS:
        raw.get(s, "quick_" + k, str)
    raw.get("ABINITIO", "quick_literature", str)
    base = raw.get(s, "base_deck", str, "inline")
    from .config import KNOWN_SECTIONS

    inline = [sec for sec in raw.sections if sec in KNOWN_SECTIONS]
    if base == "inline":
        if not inline:
            raise raw.error("no fitting deck: give base_deck = PATH or the fitting sections ([BISPECTRUM], "
                            "[GROUPS], ...) in this deck", s, "base_deck")
        out_dir = (path.parent / raw.get(s, "out", str, f"study_{system_name(raw)}")).resolve()
        created += [d for d in reversed([out_dir, *out_dir.parents]) if not d.exists()]
        if not (out_dir / "base_deck.in").exists():
            created.append(out_dir / "base_deck.in")
        base_deck = inline_base_deck(path, out_dir)
    else:
        if inline:
            raise DeckError(f"fitting section [{inline[0]}] given here and base_deck = {base} too: use one",
                            path, None, inline[0])
        base_deck = (path.parent / base).resolve()
        if not base_deck.is_file():
            raise raw.error(f"fitting deck not found: {base_deck}", s, "base_deck")
    system = raw.get(s, "system", str, required=True).lower()
    if system not in SYSTEMS:
        raise raw.error(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})", s, "system")
    from .properties.systems import ALL_PROPERTIES

    props = tuple(p for p in raw.get(s, "properties", str, "eos").replace(",", " ").split())
    bad = [p for p in props if p not in ALL_PROPERTIES]
    if bad:
        raise raw.error(f"unknown property {bad[0]!r} (known: {', '.join(ALL_PROPERTIES)})", s, "properties")
    property_quick = raw.get(s, "property_quick", bool, quick)
    out = (path.parent / raw.get(s, "out", str, f"study_{system}")).resolve()
    cell = raw.get(s, "md_cell", list, ["4", "4", "4"])
    try:
        md_cell = tuple(int(c) for c in cell)
        if len(md_cell) != 3 or min(md_cell) < 1:
            raise ValueError
    except ValueError:
        raise raw.error("must be three positive integers (replications of the preset's MD cell)", s,
                        "md_cell") from None
    md_steps = raw.get(s, "md_steps", int, 100)
    if md_steps < 1:
        raise raw.error("must be >= 1", s, "md_steps")
    md_temperature = raw.get(s, "md_temperature", float, 300.0)
    nn_epochs = raw.get(s, "nn_epochs", int, None)
    if nn_epochs is not None and nn_epochs < 1:
        raise raw.error("must be >= 1", s, "nn_epochs")
    nn_patience = raw.get(s, "nn_patience", int, None)
    if nn_patience is not None and nn_patience < 0:
        raise raw.error("must be >= 0 (0: never stop early)", s, "nn_patience")
    nn_stress_weight = raw.get(s, "nn_stress_weight", float, None)
    if nn_stress_weight is not None and nn_stress_weight < 0:
        raise raw.error("must be >= 0", s, "nn_stress_weight")
    nn_defaults = ([("PYTORCH", "num_epochs", str(nn_epochs))] if nn_epochs else []) + (
        [("PYTORCH", "stress_weight", repr(nn_stress_weight))] if nn_stress_weight is not None else []) + (
        [("PYTORCH", "patience", str(nn_patience))] if nn_patience is not None else [])
    # -k PYTORCH key value on the command line: the network rungs' (a linear rung's deck has no [PYTORCH])
    nn_defaults += [("PYTORCH", key, value) for sec, key, value in overrides if sec.upper() == "PYTORCH"]
    structure = raw.get(s, "structure", str, None)
    if structure is not None:
        structure = (path.parent / structure).resolve()
        if not structure.is_file():
            raise raw.error(f"file not found: {structure}", s, "structure")
    property_settings = []
    for item in raw.get(s, "property_settings", str, "").split(","):  # "diffusion_prod_ps 50, diffusion_runs 4"
        if item.strip():
            key, _, value = item.strip().partition(" ")
            property_settings.append((key, value.strip()))
    from .properties.systems import get_preset, with_run_settings

    try:
        with_run_settings(get_preset(system), dict(property_settings))
    except FitsnapError as exc:
        raise raw.error(str(exc), s, "property_settings") from None
    nn_group_weights = raw.get(s, "nn_group_weights", str, "unit").lower()
    if nn_group_weights not in ("unit", "relative"):
        raise raw.error(f"{nn_group_weights!r}: one of unit, relative", s, "nn_group_weights")
    base_overrides = []
    seed = raw.get(s, "split_seed", int, None)
    if seed is not None:  # a seeded shuffle for the split; without it the base deck's split is kept as is
        base_overrides += [("GROUPS", "random_sampling", "1"), ("GROUPS", "random_seed", str(seed))]
    data_path = raw.get(s, "dataPath", str, None)
    if data_path is not None:  # relative to the study deck; handed to the base deck as an absolute path
        base_overrides.append(("PATH", "dataPath", str((path.parent / data_path).resolve())))
    # a command-line override of a fitting section (-k GROUPS active_1 "0.8 0.2 100 1 1e-4") is the fitting
    # deck's, inline or not: every model is fitted with it
    base_overrides += [(sec, key, value) for sec, key, value in overrides
                       if sec.upper() in KNOWN_SECTIONS and sec.upper() != "PYTORCH"]

    models = []
    if raw.has(s, "ladder"):
        models += ladder_models(raw.get(s, "ladder", list), raw, nn_defaults)
    for section in raw.sections:
        if section.startswith("MODEL_"):
            models.append(_model_section(raw, section, section[len("MODEL_"):].lower(), nn_defaults))
        elif section not in ("STUDY", "ABINITIO") and section not in inline:
            first = min((r.line for r in raw.sections[section].values() if r.line), default=None)
            raise DeckError("unknown section (known: [STUDY], [ABINITIO], [MODEL_<name>] and, inline, the fitting-deck sections)", path, first, section)
    if not models:
        raise DeckError("no models: give [STUDY] ladder = ... or [MODEL_<name>] sections", path, None, s)
    names = [m.name for m in models]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DeckError(f"model name(s) given twice: {', '.join(sorted(dup))}", path, None, s)

    r = "ABINITIO"
    for key, rv in raw.sections.get(r, {}).items():
        if key not in REFERENCE_KEYS:
            raise DeckError(f"unknown key (known: {', '.join(REFERENCE_KEYS)})", path, rv.line, r, key)
    refs = {}
    for key in REFERENCE_KEYS[:-1]:
        value = raw.get(r, key, str, None)
        if value:
            p = (path.parent / value).resolve()
            if not p.is_file():
                raise raw.error(f"file not found: {p}", r, key)
            refs[key] = p
    spec = StudySpec(path, base_deck, system, props, quick, out, tuple(models), md_cell, md_steps,
                     md_temperature, property_quick or quick, tuple(base_overrides), nn_group_weights,
                     structure, tuple(property_settings), **refs)
    def fitting_deck_error(message: str, section: str, key: str) -> DeckError:
        """An error at a fitting-deck key: its line in the study deck when inline, else the base deck."""
        if base != "inline":
            return DeckError(message, base_deck, None, section, key)
        return DeckError(message, path, raw.sections.get(section, {}).get(key.lower(), RawValue("", None)).line,
                         section, key)

    for m in spec.models:  # validate every model's full deck now, not an hour into the study
        st = model_settings(spec, m)
        if not Path(st.data_path).is_dir():
            raise fitting_deck_error(f"data folder not found: {st.data_path} (for LGPS no public training data "
                                     f"exists: generate it with `python -m fitsnap_ext generate` and point "
                                     f"dataPath at it)", "PATH", "dataPath")
        missing = [g.name for g in st.groups.groups if group_file(st, g) is None]
        if missing:
            raise fitting_deck_error(f"no data for group(s) {', '.join(missing)} in {st.data_path} (generated "
                                     f"data: run its generator deck first, e.g. input_files/gen_lgps.in)",
                                     "GROUPS", missing[0])
    return spec


def system_name(raw: RawDeck) -> str:
    return raw.sections.get("STUDY", {}).get("system", type("V", (), {"value": "x"})).value.lower()


def inline_base_deck(study: Path, out: Path) -> Path:
    """The fitting sections of a study deck as `<out>/base_deck.in`, with the same line numbers (study-only
    lines are blanked) so that errors point at the study deck's lines, and dataPath relative to `out`."""
    import re

    from .config import KNOWN_SECTIONS

    out = out.resolve()
    lines, keep = [], False
    for raw_line in study.read_text().splitlines():
        m = re.match(r"\s*\[\s*([A-Za-z_][A-Za-z0-9_]*)\s*\]", raw_line)
        if m:
            keep = m.group(1).upper() in KNOWN_SECTIONS and m.group(1).upper() != "PROPERTIES"
        line = raw_line if keep else ""
        dm = re.match(r"\s*datapath\s*=\s*(.*?)\s*$", line.split("#")[0], re.IGNORECASE)
        if keep and dm:
            line = f"dataPath = {os.path.relpath((study.parent / dm.group(1)).resolve(), out)}"
        lines.append(line)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "base_deck.in"
    text = "\n".join(lines) + "\n"
    if not target.is_file() or target.read_text() != text:  # every rank writes the same bytes, atomically
        tmp = out / f".base_deck.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target)
    return target


def repo_relative(path: str | Path, deck: Path) -> str:
    """`path` as reports name it: relative to the checkout holding the study deck (the nearest folder above it
    with a pyproject.toml; else the deck's folder), never as this machine's absolute path."""
    root = next((d for d in deck.parents if (d / "pyproject.toml").is_file()), deck.parent)
    return os.path.relpath(Path(path).resolve(), root)


# A network rung's loss weights unless the study deck gives [PYTORCH] energy_weight/force_weight (the values every
# committed network rung was trained with)
STUDY_NN_WEIGHTS = {"energy_weight": 10.0, "force_weight": 1.0}


def network_weights(settings: Settings, mode: str, overrides) -> list[tuple[str, str, str]]:
    """Loss-weight overrides for a network rung (same split): a linear deck's group weights (e.g. 1000/1/1e-4)
    balance rows of a least-squares fit, not a network's loss terms.

    "unit": every group weighs 1 (0 stays 0); "relative": each weight divided by the largest of its kind over the
    groups, so the deck's relative emphasis (e.g. the E–V group's energies 10× the MD groups') carries over. The
    rung's energy/force weights (STUDY_NN_WEIGHTS or the deck's) scale them: when every group weighs 1 they are
    given as FitSNAP's global [PYTORCH] weights, otherwise folded into the group weights (global weights would
    override the groups').
    """
    weights = dict(STUDY_NN_WEIGHTS)
    weights.update({k.lower(): float(v) for sec, k, v in overrides if sec == "PYTORCH" and k.lower() in weights})
    groups = settings.groups.groups
    kinds = ("eweight", "fweight", "vweight")
    top = [max((getattr(g, w) for g in groups), default=0.0) or 1.0 for w in kinds]
    table = {g.name: [getattr(g, k) / t if mode == "relative" else float(getattr(g, k) > 0)
                      for k, t in zip(kinds, top)] for g in groups}
    folded = any(w != [1.0, 1.0, 1.0] for w in table.values())
    scale = [weights["energy_weight"], weights["force_weight"], 1.0] if folded else [1.0, 1.0, 1.0]
    ov = [("GROUPS", "group_sections", "name training_size testing_size eweight fweight vweight"),
          ("GROUPS", "group_types", "str float float float float float")]
    for g in groups:
        w = [x * c for x, c in zip(table[g.name], scale)]
        ov.append(("GROUPS", g.name, f"{g.training_size!r} {g.testing_size!r} {w[0]!r} {w[1]!r} {w[2]!r}"))
    if not folded:
        ov += [("PYTORCH", key, repr(value)) for key, value in weights.items()]
    return ov


def model_settings(spec: StudySpec, model: ModelSpec) -> Settings:
    ov = list(spec.base_overrides) + list(model.overrides) + [
        ("OUTFILE", "potential", "pot"), ("OUTFILE", "metrics", "metrics.md"),
        ("EXTRAS", "dump_dataframe", "1"), ("OUTFILE", "dataframe", "parity.df")]
    try:
        if model.kind != "nn":
            return load_settings(spec.base_deck, ov)
        own = [o for o in ov if not (o[0] == "PYTORCH" and o[1].lower() in STUDY_NN_WEIGHTS)]
        settings = load_settings(spec.base_deck, own)
        return load_settings(spec.base_deck, own + network_weights(settings, spec.nn_group_weights, ov))
    except DeckError as exc:
        raise DeckError(f"model {model.name!r} (from {spec.deck.name}"
                        f"{':' + str(model.line) if model.line else ''}): {exc}") from None


# ----------------------------------------------------------------------------------------------
# Cache keys


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


# settings added after studies were cached: keyed only when not at their default (which fits as before them)
KEYED_UNLESS_DEFAULT = {("calculator", "stress_components"): "all", ("network", "training_fraction"): None,
                        ("network", "shuffle_flag"): True, ("network", "multi_element_option"): 2}


def fit_key(settings: Settings) -> str:
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
    payload = json.dumps({"fit": fitkey, **_jsonable(options)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _stage_file(folder: Path, stage: str) -> Path:
    return folder / f"stage_{stage}.json"


def cached(folder: Path, stage: str, key: str, comm, force: bool, what: str) -> dict | None:
    """The stage's record when its key matches (read on rank 0, shared with all ranks), else None;
    logs the skip as `what`."""
    hit = None
    f = _stage_file(folder, stage)
    if not force and comm.rank == 0 and f.is_file():
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError:
            d = {}
        hit = d if d.get("key") == key else None
    hit = comm.bcast(hit, root=0)
    if hit is not None:
        log(comm, f"{what} cached (key {key}), skipped")
    return hit


def mark_done(folder: Path, stage: str, key: str, data: dict) -> None:
    f = _stage_file(folder, stage)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, **data}, indent=1, default=float) + "\n")
    os.replace(tmp, f)  # atomic: a killed study never leaves a half-written stage marker


# ----------------------------------------------------------------------------------------------
# Model stages


def parameter_count(settings: Settings, coef=None) -> int:
    bs = settings.bispectrum
    if settings.network is not None:
        n, nin = 0, bs.n_linear
        for h in settings.network.hidden:
            n += nin * h + h
            nin = h
        return bs.numtypes * (n + nin + 1)
    if coef is not None:
        return int(np.size(coef))
    return bs.numtypes * (bs.ncoeff + (0 if bs.bzeroflag else 1))


def network_available() -> str | None:
    """None if neural-network fits can run, else why not (torch is an optional dependency)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install -e '.[nn]')"
    return None


def stage_fit(spec: StudySpec, model: ModelSpec, settings: Settings, folder: Path, comm, force: bool) -> dict:
    key = fit_key(settings)
    hit = cached(folder, "fit", key, comm, force, f"{model.name}: fit")
    if hit is not None:
        return hit
    from .fit import Progress, run_fit

    log(comm, f"{model.name}: fitting ({model.kind}, 2J={settings.bispectrum.twojmax})")
    t0 = time.perf_counter()
    with working_directory(folder):
        result = run_fit(settings, comm, overwrite=True, progress=Progress(comm))
    wall = time.perf_counter() - t0
    data = {"kind": model.kind, "twojmax": settings.bispectrum.twojmax,
            "n_params": parameter_count(settings, None if settings.network else result.coef),
            "n_descriptors": settings.bispectrum.ncoeff, "fit_wall_s": wall,
            "n_configs": result.n_configs,
            "errors": [dataclasses.asdict(e) for e in result.errors], "overrides": list(model.overrides)}
    if comm.rank == 0:
        mark_done(folder, "fit", key, data)
    comm.Barrier()
    return {"key": key, **data}


def study_system(spec: StudySpec):
    """The property engine's system: the preset, or its settings on the deck's `structure` file."""
    from .properties.systems import custom_system, get_preset, with_run_settings

    preset = with_run_settings(get_preset(spec.system), dict(spec.property_settings))
    if spec.structure is None:
        return preset
    return custom_system(spec.structure, list(preset.elements), preset.properties, base=preset)


def structure_key(spec: StudySpec) -> dict:
    """The cache-key entry of the deck's `structure` file (its content), or nothing without one."""
    return {"structure": hashlib.sha256(spec.structure.read_bytes()).hexdigest()[:16]} if spec.structure else {}


def stage_properties(spec: StudySpec, model: ModelSpec, fitkey: str, folder: Path, comm, force: bool) -> dict:
    settings = {"run_settings": dict(spec.property_settings)} if spec.property_settings else {}
    key = stage_key(fitkey, properties=spec.properties, quick=spec.property_quick, system=spec.system,
                    **structure_key(spec), **settings)
    hit = cached(folder, "properties", key, comm, force, f"{model.name}: properties")
    if hit is not None:
        return hit
    from .properties import run_properties
    from .properties.engine import curves_path

    log(comm, f"{model.name}: properties {', '.join(spec.properties)} ({'quick' if spec.property_quick else 'full'} engine mode)")
    t0 = time.perf_counter()
    props = run_properties(folder / "pot.mod", study_system(spec), list(spec.properties), spec.property_quick,
                           folder / "props.json", None, comm, overwrite=True)  # the stage's own cache folder
    wall = time.perf_counter() - t0
    if comm.rank == 0:
        from .properties.report import write_json

        props["potential"] = "pot.mod"  # as found from props.json (the engine records an absolute path)
        write_json(folder / "props.json", props)
        os.replace(curves_path(folder / "props.json"), folder / "curves.npz")
        mark_done(folder, "properties", key, {"props": props, "props_wall_s": wall})
    comm.Barrier()
    return {"key": key, "props": props, "props_wall_s": wall}


def stage_md_speed(spec: StudySpec, model: ModelSpec, fitkey: str, folder: Path, comm, force: bool,
                   volume_per_atom: float | None) -> dict:
    """NVE on the preset's MD cell × md_cell (e.g. 4×4×4 cubic Si = 512 atoms); only `run` is timed."""
    key = stage_key(fitkey, cell=spec.md_cell, steps=spec.md_steps, T=spec.md_temperature, system=spec.system,
                    ranks=comm.size, **structure_key(spec))
    hit = cached(folder, "md", key, comm, force, f"{model.name}: MD timing")
    if hit is not None:
        return hit
    from .lammps_session import lammps_module
    from .properties.runner import write_data
    preset = study_system(spec)
    atoms = preset.build_md() if preset.build_md is not None else preset.build()
    if volume_per_atom and math.isfinite(volume_per_atom):
        scale = (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1.0 / 3.0)
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    atoms = atoms.repeat(spec.md_cell)
    data = folder / "md_speed.data"
    if comm.rank == 0:
        write_data(data, atoms, preset.elements, preset.masses)
    comm.Barrier()
    lammps = lammps_module().lammps
    warm = max(5, spec.md_steps // 10)
    with collective(comm, "MD timing"), working_directory(folder):
        lmp = lammps(comm=comm, cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        try:
            for c in ["units metal", "atom_style atomic", "boundary p p p", f"read_data {data.name}",
                      "include pot.mod", "timestep 0.001",
                      f"velocity all create {spec.md_temperature * 2} 4928459 mom yes rot yes dist gaussian",
                      "fix nve all nve", "thermo 0", f"run {warm}"]:
                lmp.command(c)
            comm.Barrier()
            t0 = time.perf_counter()
            lmp.command(f"run {spec.md_steps}")
            comm.Barrier()
            wall = time.perf_counter() - t0
            natoms = int(lmp.get_natoms())
            temp = float(lmp.get_thermo("temp"))
        except Exception as exc:  # LAMMPS errors come as plain Exceptions
            raise FitsnapError(f"{model.name}: MD timing failed in LAMMPS: {exc}") from None
        finally:
            lmp.close()
    data_out = {"md_atoms": natoms, "md_steps": spec.md_steps, "md_ranks": comm.size, "md_wall_s": wall,
                "md_katom_steps_per_s": natoms * spec.md_steps / wall / 1e3, "md_final_T_K": temp}
    log(comm, f"{model.name}: MD {natoms} atoms × {spec.md_steps} steps on {comm.size} rank(s): "
              f"{data_out['md_katom_steps_per_s']:.2f} katom-step/s")
    if comm.rank == 0:
        mark_done(folder, "md", key, data_out)
    comm.Barrier()
    return {"key": key, **data_out}


# ----------------------------------------------------------------------------------------------
# Ab initio references


def labeler_summary(info: dict) -> str:
    """`cp2k (PBE, GTH-PBE, DZVP-MOLOPT-SR-GTH)`, `lammps (sw)`, `sevenn (7net-0) — surrogate: ...` from a frame's
    generator keys; '' when the frame records no labeler."""
    if "labeler" not in info:
        return ""
    try:
        settings = json.loads(info.get("labeler_settings", "{}"))
    except (TypeError, ValueError):
        settings = {}
    details = [str(settings[k]) for k in ("xc", "potential", "basis", "pair_style", "model") if k in settings]
    text = str(info["labeler"]) + (f" ({', '.join(details)})" if details else "")
    return text + (f" — {info['labeler_note']}" if "labeler_note" in info else "")


def data_provenance(settings: Settings) -> list[dict]:
    """Per group of the fitting deck: its file, frame count and labeler(s) as the generator recorded them
    (`labeler`, `labeler_note` on every frame; absent from public sets), so a report says what it rests on — a
    surrogate-labelled set above all."""
    from ase.io.extxyz import key_val_str_to_dict

    from .data.extxyz import scan_extxyz

    rows = []
    for group in settings.groups.groups:
        path = group_file(settings, group)
        row = {"group": group.name, "file": path.name if path else "missing", "frames": 0, "labelers": []}
        if path is not None and path.is_file():
            spans, _, _ = scan_extxyz(path)
            with open(path, "rb") as fh:
                for start, _ in spans:
                    fh.seek(start)
                    fh.readline()
                    info = key_val_str_to_dict(fh.readline().decode())
                    who = labeler_summary(info)
                    if who and who not in row["labelers"]:
                        row["labelers"].append(who)
            row["frames"] = len(spans)
        elif path is not None:
            row["frames"] = len(group_files(settings, group))
        rows.append(row)
    return rows


def _read_frames(path: Path):
    from ase.io import read

    return read(str(path), index=":")


def rdf_numpy(frames, rmax: float, dr: float = 0.02):
    """g(r) averaged over frames (minimum image; rmax ≤ half the shortest perpendicular cell width)."""
    edges = np.arange(0.0, rmax + dr, dr)
    hist = np.zeros(len(edges) - 1)
    rho_sum = 0.0
    for a in frames:
        cell = a.cell.array
        frac = a.get_scaled_positions(wrap=True)
        d = frac[:, None, :] - frac[None, :, :]
        d -= np.round(d)
        r = np.linalg.norm(d @ cell, axis=-1)
        iu = np.triu_indices(len(a), 1)
        hist += 2 * np.histogram(r[iu], bins=edges)[0]
        rho_sum += len(a) ** 2 / a.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (shell * rho_sum)
    r = 0.5 * (edges[1:] + edges[:-1])
    coord = np.cumsum(hist) / sum(len(a) for a in frames)  # running coordination number n(r_upper)
    return r, g, coord


MIN_EOS_FRAMES = 5  # E0, V0, B0, B0' and one degree of freedom


def abinitio_reference(spec: StudySpec, out_dir: Path) -> tuple[dict, dict]:
    """({key: {value, unit, source}}, curves) computed from the ab initio data sets named in [REFERENCE]."""
    from .properties.eos import EV_A3_TO_GPA, birch_murnaghan, fit_birch_murnaghan

    refs, curves = {}, {}
    shown = partial(repo_relative, deck=spec.deck)
    if spec.volume_set is not None:
        frames = _read_frames(spec.volume_set)
        v = np.array([a.get_volume() / len(a) for a in frames])
        e = np.array([a.get_potential_energy() / len(a) for a in frames])
        where = f"[ABINITIO] volume_set ({len(frames)} frames)"
        who = labeler_summary(frames[0].info) or "DFT"
        if spec.system == "gan":
            what = f"{spec.volume_set.name} ({shown(spec.volume_set)}; labels: {who})"
            refs.update(_hexagonal_reference(frames, v, e, what, where, spec.volume_set, curves))
        else:
            if len(frames) < MIN_EOS_FRAMES:
                raise DataError(f"{where}: a Birch–Murnaghan fit needs at least {MIN_EOS_FRAMES} frames",
                                spec.volume_set)
            try:
                e0, v0, b0, bp = fit_birch_murnaghan(v, e)
            except FitsnapError as exc:
                raise DataError(f"{where}: {exc}", spec.volume_set) from None
            src = (f"3rd-order Birch–Murnaghan fit to (V/atom, E/atom) of the {len(frames)} frames of "
                   f"{spec.volume_set.name} ({shown(spec.volume_set)}; labels: {who})")
            refs["energy_per_atom_eV"] = {"value": e0, "unit": "eV/atom", "source": src}
            refs["volume_per_atom_A3"] = {"value": v0, "unit": "Å³/atom", "source": src}
            refs["bulk_modulus_GPa"] = {"value": b0 * EV_A3_TO_GPA, "unit": "GPa", "source": src}
            if spec.system == "si":
                refs["lattice_constant_A"] = {"value": (8 * v0) ** (1 / 3), "unit": "Å",
                                              "source": src + "; a = (8 V0)^(1/3)"}
            vv = np.linspace(v.min(), v.max(), 100)
            curves.update(eos_v=v, eos_e=e, eos_fit_v=vv, eos_fit_e=birch_murnaghan(vv, e0, v0, b0, bp))
    for key, label in (("liquid_set", "liquid"), ("solid_md_set", "solid")):
        path = getattr(spec, key)
        if path is None:
            continue
        frames = _read_frames(path)
        widths = min(a.get_volume() / np.linalg.norm(np.cross(*np.delete(a.cell.array, i, 0)))
                     for a in frames[:1] for i in range(3))
        r, g, coord = rdf_numpy(frames, rmax=min(6.0, 0.5 * widths - 1e-6))
        curves.update({f"{label}_rdf_r": r, f"{label}_rdf_g": g})
        if label == "liquid":
            from .properties.liquid import (ADF_BOND_CUTOFF, SMALL_ANGLE_DEG, adf_numpy,
                                            first_peak_and_coordination, small_angle_fraction)

            peak, rmin, cn = first_peak_and_coordination(r, g, coord)
            theta, adf, _ = adf_numpy(frames)
            curves.update(liquid_adf_theta=theta, liquid_adf=adf)
            masses = frames[0].get_masses().sum()
            dens = masses / frames[0].get_volume() * 1.66053906660
            src = (f"g(r) of the {len(frames)} DFT liquid frames of {path.name} ({shown(path)}); these are "
                   f"fixed-volume snapshots at {dens:.3f} g/cm³, the engine's liquid is NPT at P = 0: "
                   f"compare with care")
            refs["rdf_first_peak_A"] = {"value": peak, "unit": "Å", "source": src}
            refs["coordination_number"] = {"value": cn, "unit": "atoms (to the first g(r) minimum)",
                                           "source": src + f"; first minimum at {rmin:.2f} Å"}
            how = f"; bond angles with both bonds < {ADF_BOND_CUTOFF} Å (as the engine's compute adf)"
            refs["adf_small_angle_fraction"] = {"value": small_angle_fraction(theta, adf), "unit": "",
                                                "source": src + how + f", fraction below {SMALL_ANGLE_DEG:g}°"}
            refs["adf_peak_deg"] = {"value": float(theta[np.argmax(adf)]), "unit": "degrees", "compare": False,
                                    "source": src + how + "; most probable angle — not compared: two peaks of "
                                                          "similar height, the argmax jumps between them"}
            refs["dft_liquid_frames_density_g_cm3"] = {
                "value": dens, "unit": "g/cm³", "compare": False,
                "source": f"density of the fixed cell of {path.name}; NOT an equilibrium liquid density "
                          f"(the AIMD ran at fixed volume), so not compared with liquid_density_g_cm3"}
    return refs, curves


def _hexagonal_reference(frames, v, e, what: str, where: str, path: Path, curves: dict) -> dict:
    """a, c, E0, V0 and B of a hexagonal crystal from a grid of (a, c) cells (GaN's strained-cell set): the
    minimum and curvature of a cubic E(a, c) surface; E–V curve along isotropic scaling of (a0, c0)."""
    from .generate.cp2k import labelled_kpoint_mesh
    from .properties.eos import EV_A3_TO_GPA, fit_hexagonal_surface

    la = np.array([fr.cell.lengths()[0] for fr in frames])
    lc = np.array([fr.cell.lengths()[2] for fr in frames])
    # a k-point spacing rounds to different meshes across the grid, each with its own k-point error: one energy
    # zero per mesh, the densest first (GaN, kspacing 0.4: 5x3x3 above c = 5.236 Å, 5x3x4 below, 1.1 meV/atom)
    meshes = [labelled_kpoint_mesh(fr.info, fr.cell.array) for fr in frames]
    order = sorted(set(meshes), key=lambda m: -math.prod(m) if m else 0)
    zero_groups = [order.index(m) for m in meshes]
    try:
        hexa = fit_hexagonal_surface(la, lc, v, e, zero_groups=zero_groups if len(order) > 1 else None)
    except FitsnapError as exc:
        raise DataError(f"{where}: {exc}", path) from None
    per_mesh = ""
    if len(order) > 1:
        mesh = lambda m: "x".join(map(str, m))  # noqa: E731
        per_mesh = ("; one energy zero per DFT k-mesh (energies of the " + mesh(order[0]) + " cells; " +
                    ", ".join(f"{mesh(order[k])} {hexa.offsets[k] * 1e3:+.2f} meV/atom" for k in hexa.offsets) +
                    ")")
    src = (f"minimum of a cubic E(a, c) fitted to the {len(frames)} cells of {what} (rms {hexa.rms * 1e3:.2g} "
           f"meV/atom; internal coordinates as in the cells{per_mesh})")
    bsrc = src + "; B = V d²E/dV² for isotropic scaling of (a0, c0), as the engine's E–V scan"
    scale = np.linspace((v.min() / hexa.v0) ** (1 / 3), (v.max() / hexa.v0) ** (1 / 3), 100)
    on_first_mesh = e - np.array([hexa.offsets.get(z, 0.0) for z in zero_groups])  # the plotted points
    curves.update(eos_v=v, eos_e=on_first_mesh, eos_fit_v=hexa.v0 * scale ** 3,
                  eos_fit_e=hexa.energy(hexa.a0 * scale, hexa.c0 * scale))
    return {"energy_per_atom_eV": {"value": hexa.e0, "unit": "eV/atom", "source": src},
            "volume_per_atom_A3": {"value": hexa.v0, "unit": "Å³/atom", "source": src},
            "bulk_modulus_GPa": {"value": hexa.bulk_modulus * EV_A3_TO_GPA, "unit": "GPa", "source": bsrc},
            "a_A": {"value": hexa.a0, "unit": "Å", "source": src},
            "c_A": {"value": hexa.c0, "unit": "Å", "source": src}}


def load_literature(path: Path | None) -> dict:
    """input_files/reference/*.json: {"values": {key: {"value", "unit", "source"}}}; every value needs a source."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise FitsnapError(f"{path}: not valid JSON ({exc})") from None
    values = data.get("values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise FitsnapError(f"{path}: expected {{\"values\": {{key: {{\"value\", \"unit\", \"source\"}}}}}}")
    for k, v in values.items():
        if not isinstance(v, dict) or "value" not in v or not v.get("source"):
            raise FitsnapError(f"{path}: reference {k!r} needs a value and a source")
    return values


# ----------------------------------------------------------------------------------------------
# Main


def summary_row(model: ModelSpec, fit: dict | None, props: dict | None, md: dict | None, refs: dict,
                status: str) -> dict:
    row = {"model": model.name, "kind": model.kind, "status": status}
    if fit:
        row.update(twojmax=fit["twojmax"], n_params=fit["n_params"], fit_wall_s=fit["fit_wall_s"])
        scale = {"Energy": ("energy", "meV_atom", 1000.0), "Force": ("force", "eV_A", 1.0),
                 "Stress": ("stress", "bar", 1.0)}
        for e in fit["errors"]:
            if e["group"] != "*ALL":
                continue
            q, unit, f = scale[e["quantity"]]
            sp = e["split"].lower()
            row[f"{q}_{sp}_mae_{unit}"] = e["mae"] * f
            row[f"{q}_{sp}_rmse_{unit}"] = e["rmse"] * f
    if props:
        row["props_wall_s"] = props.get("props_wall_s")
        notes = [f"{k}: {v}" for k, v in props["props"].get("failed_properties", {}).items()]
        if notes:
            row["notes"] = "; ".join(notes)
        for key, ref in refs.items():
            if key not in props["props"]:
                continue
            val = props["props"][key]
            row[key] = val
            if ref.get("compare", True) and not isinstance(val, list):
                try:
                    row[f"{key}_err"] = float(val) - float(ref["value"])
                except (TypeError, ValueError):
                    pass
        for key in ("lattice_constant_A", "a_A", "c_A", "bulk_modulus_GPa", "C11_GPa", "C12_GPa", "C13_GPa",
                    "C33_GPa", "C44_GPa", "C66_GPa", "phonon_max_THz", "phonon_gamma_max_THz",
                    "liquid_density_g_cm3", "rdf_first_peak_A", "activation_energy_eV",
                    "ionic_conductivity_300K_mS_cm"):
            if key in props["props"] and key not in row:
                row[key] = props["props"][key]
    if md:
        row.update(md_katom_steps_per_s=md["md_katom_steps_per_s"], md_atoms=md["md_atoms"],
                   md_ranks=md["md_ranks"])
    return row


def run_study(spec: StudySpec, comm, force: bool = False, only: list[str] | None = None,
              command: str = "") -> dict:
    t_start = time.perf_counter()
    if comm.rank == 0:
        spec.out.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    refs, ref_curves = {}, {}
    with collective(comm, "references"):
        if comm.rank == 0:
            refs, ref_curves = abinitio_reference(spec, spec.out)
            for k, v in load_literature(spec.literature).items():
                refs.setdefault(k, v)  # values from the ab initio data itself take precedence
            (spec.out / "reference.json").write_text(json.dumps(refs, indent=1, default=float) + "\n")
            np.savez(spec.out / "reference_curves.npz", **ref_curves)
    refs = comm.bcast(refs, root=0)
    log(comm, f"{len(refs)} reference values ({', '.join(refs)})")
    provenance = data_provenance(load_settings(spec.base_deck, list(spec.base_overrides))) if comm.rank == 0 else []
    nn_problem = network_available()
    rows, results = [], []
    for model in spec.models:
        if only and model.name not in only:
            continue
        settings = model_settings(spec, model)
        folder = spec.out / model.name
        if comm.rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        comm.Barrier()
        if settings.network is not None and nn_problem:
            log(comm, f"{model.name}: SKIPPED — neural-network rung needs {nn_problem}")
            rows.append(summary_row(model, None, None, None, refs, f"skipped: {nn_problem}"))
            continue
        t0 = time.perf_counter()
        fit = stage_fit(spec, model, settings, folder, comm, force)
        status, props, md = "ok", None, None
        try:  # a potential that blows up in MD is a result, not a reason to stop the study
            props = stage_properties(spec, model, fit["key"], folder, comm, force) if spec.properties else None
        except FitsnapError as exc:
            status = f"properties failed: {first_line(exc)}"
            log(comm, f"{model.name}: {status}")
        vpa = props["props"].get("volume_per_atom_A3") if props else None
        try:
            md = stage_md_speed(spec, model, fit["key"], folder, comm, force, vpa)
        except FitsnapError as exc:
            status = f"MD timing failed: {first_line(exc)}" if status == "ok" else status
            log(comm, f"{model.name}: {status}")
        log(comm, f"{model.name}: done in {time.perf_counter() - t0:.1f} s")
        rows.append(summary_row(model, fit, props, md, refs, status))
        results.append((model, fit, props, md))
    wall = time.perf_counter() - t_start
    if comm.rank == 0:
        from .study_plots import write_report

        write_report(spec, rows, results, refs, ref_curves, wall, command, comm.size, provenance)
        log(comm, f"report: {spec.out / 'study.md'} ({wall:.1f} s)")
    comm.Barrier()
    return {"rows": rows, "wall_s": wall}


def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="python -m fitsnap_ext study",
        description="Model-complexity study: fit a ladder of models on the same descriptors and split, "
                    "compute simulated properties and MD speed, compare with ab initio references.")
    parser.add_argument("deck", help="study deck (INI with [STUDY], optional [ABINITIO] and [MODEL_<name>])")
    parser.add_argument("--quick", action="store_true", help="quick property runs (overrides the deck)")
    parser.add_argument("--out", help="output folder (overrides [STUDY] out; relative to the current directory)")
    parser.add_argument("--only", nargs="+", metavar="MODEL", help="run only these models (report covers them)")
    parser.add_argument("--force", action="store_true", help="ignore cached stages and recompute everything")
    parser.add_argument("--check", action="store_true", help="validate the study deck and every model, then stop")
    parser.add_argument("-k", "--keyword", nargs=3, action="append", default=[],
                        metavar=("SECTION", "KEY", "VALUE"),
                        help="override a study-deck value; a fitting section's key (e.g. GROUPS) is the fitting deck's")
    args = parser.parse_args(argv)
    from .parallel import world

    comm = world()
    overrides = [tuple(k) for k in args.keyword]
    if args.quick:
        overrides.append(("STUDY", "quick", "1"))
    if args.out:  # before reading: an inline fitting deck is written into the output folder
        overrides += [("STUDY", key, str(Path(args.out).resolve())) for key in ("out", "quick_out")]
    spec = read_study(args.deck, overrides)
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in spec.models})
        if unknown:
            raise FitsnapError(f"--only: unknown model(s) {', '.join(unknown)} "
                               f"(known: {', '.join(m.name for m in spec.models)})")
    if args.check:
        log(comm, f"{spec.deck}: OK — {len(spec.models)} models: {', '.join(m.name for m in spec.models)}")
        return 0
    prefix = f"mpirun -np {comm.size} " if comm.size > 1 else ""
    shown = [repo_relative(a, spec.deck) if os.path.isabs(a) else a for a in argv]  # no machine paths in reports
    command = prefix + "python -m fitsnap_ext study " + " ".join(shlex.quote(a) for a in shown)
    run_study(spec, comm, force=args.force, only=args.only, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
