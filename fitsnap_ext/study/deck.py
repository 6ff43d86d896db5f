"""The study deck: [STUDY], [ABINITIO] and [MODEL_<name>] sections → a frozen `StudySpec`, and each model's full
fitting `Settings` (the base deck with the model's overrides; network rungs get their own loss weights).

Every error names the study deck (or the base fitting deck), the line, the section and the key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import KNOWN_SECTIONS, load_settings
from ..ini import RawDeck, RawValue
from ..settings import Settings
from ..data.dataset import group_file
from ..errors import DeckError, FitsnapError

SYSTEMS = ("si", "gan", "lgps")
# study-level keys of a [MODEL name] section that map to a deck section (anything else: SECTION.key = value)
MODEL_KEY_SECTIONS = {
    "twojmax": "BISPECTRUM", "quadraticflag": "BISPECTRUM", "rcutfac": "BISPECTRUM", "bzeroflag": "BISPECTRUM",
    "solver": "SOLVER", "alpha": "RIDGE",
    "layer_sizes": "PYTORCH", "activation": "PYTORCH", "num_epochs": "PYTORCH", "learning_rate": "PYTORCH",
    "batch_size": "PYTORCH", "energy_weight": "PYTORCH", "force_weight": "PYTORCH", "seed": "PYTORCH",
    "patience": "PYTORCH", "validation_fraction": "PYTORCH", "stress_weight": "PYTORCH", "ema_decay": "PYTORCH",
    "weight_decay": "PYTORCH", "linear_baseline": "PYTORCH",
}
QUICK_KEYS = ("base_deck", "ladder", "properties", "md_cell", "md_steps", "nn_epochs", "out")
STUDY_KEYS = ("base_deck", "system", "properties", "quick", "out", "ladder", "md_cell", "md_steps",
              "md_temperature", "nn_epochs", "nn_patience", "nn_stress_weight", "nn_group_weights", "nn_ema_decay",
              "nn_weight_decay", "nn_validation_fraction", "nn_linear_baseline", "split_seed", "dataPath", "structure", "property_settings",
              "property_quick", "nn_ensemble", "linear_samples", "linear_uq") + tuple("quick_" + k for k in QUICK_KEYS)
REFERENCE_KEYS = ("literature", "volume_set", "liquid_set", "solid_md_set", "quick_literature")
# A network rung's loss weights unless the study deck gives [PYTORCH] energy_weight/force_weight (the values every
# committed network rung was trained with)
STUDY_NN_WEIGHTS = {"energy_weight": 10.0, "force_weight": 1.0}


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
    nn_ensemble: int = 1        # every network rung an ensemble of K members (their spread: the error bars)
    linear_samples: int = 0     # every linear rung fitted with K coefficient sets (ANL draws or bootstrap fits)
    linear_uq: str = "anl"      # anl: linear rungs by ANL; bootstrap: linear and quadratic rungs by BOOTSTRAP


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
    """One [MODEL_<name>] section → its spec (kind from its solver and quadraticflag)."""
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
    """`read_study` without the clean-up: `created` collects what it writes (the inline deck, its folders)."""
    raw = RawDeck.read(path)
    for sec, key, value in overrides:
        raw.override(sec, key, value)
    if not raw.has("STUDY"):
        raise DeckError("missing section [STUDY]", path)
    for key, rv in raw.sections["STUDY"].items():
        if key not in [k.lower() for k in STUDY_KEYS]:
            raise DeckError(f"unknown key (known: {', '.join(STUDY_KEYS)})", path, rv.line, "STUDY", key)
    quick = raw.get("STUDY", "quick", bool, False)
    if quick:
        _use_quick_keys(raw)
    base_deck, inline = _fitting_deck(raw, created)
    run = _run_options(raw, quick)
    nn_defaults = _nn_defaults(raw, overrides)
    structure = _structure(raw)
    property_settings = _property_settings(raw, run["system"])
    nn_group_weights = raw.get("STUDY", "nn_group_weights", str, "unit").lower()
    if nn_group_weights not in ("unit", "relative"):
        raise raw.error(f"{nn_group_weights!r}: one of unit, relative", "STUDY", "nn_group_weights")
    base_overrides = _base_overrides(raw, overrides)
    models = _models(raw, inline, nn_defaults)
    spec = StudySpec(path, base_deck, quick=quick, models=tuple(models), base_overrides=tuple(base_overrides),
                     nn_group_weights=nn_group_weights, structure=structure,
                     property_settings=tuple(property_settings), **run, **_references(raw), **_members(raw))
    _check_models(spec, raw, inline_deck=bool(inline))
    return spec


def _use_quick_keys(raw: RawDeck) -> None:
    """Quick mode: the deck's quick_* keys replace their full-study counterparts (an out folder without its own
    quick_out gets `_quick` appended); [ABINITIO] quick_literature replaces every reference of the full study."""
    s = "STUDY"
    for k in QUICK_KEYS:
        if raw.has(s, "quick_" + k):
            raw.copy_key(s, "quick_" + k, k)
    if not raw.has(s, "quick_out") and raw.has(s, "out"):
        out = raw.sections[s]["out"]
        raw.sections[s]["out"] = RawValue(out.value + "_quick", out.line)
    if raw.has("ABINITIO", "quick_literature"):  # quick data have their own labeler: only its values
        raw.copy_key("ABINITIO", "quick_literature", "literature")
        for k in ("volume_set", "liquid_set", "solid_md_set"):
            raw.sections["ABINITIO"].pop(k, None)


def _fitting_deck(raw: RawDeck, created: list[Path]) -> tuple[Path, list[str]]:
    """(the base fitting deck, the fitting sections given inline): a `base_deck = PATH`, or the inline sections
    written to `<out>/base_deck.in` (what that writes is added to `created`)."""
    s, path = "STUDY", raw.path
    base = raw.get(s, "base_deck", str, "inline")
    inline = [sec for sec in raw.sections if sec in KNOWN_SECTIONS]
    if base != "inline":
        if inline:
            raise DeckError(f"fitting section [{inline[0]}] given here and base_deck = {base} too: use one",
                            path, None, inline[0])
        base_deck = (path.parent / base).resolve()
        if not base_deck.is_file():
            raise raw.error(f"fitting deck not found: {base_deck}", s, "base_deck")
        return base_deck, inline
    if not inline:
        raise raw.error("no fitting deck: give base_deck = PATH or the fitting sections ([BISPECTRUM], "
                        "[GROUPS], ...) in this deck", s, "base_deck")
    system = raw.get(s, "system", str, "x").lower()  # validated later; names the default out folder
    out_dir = (path.parent / raw.get(s, "out", str, f"study_{system}")).resolve()
    created += [d for d in reversed([out_dir, *out_dir.parents]) if not d.exists()]
    if not (out_dir / "base_deck.in").exists():
        created.append(out_dir / "base_deck.in")
    return inline_base_deck(path, out_dir), inline


def _run_options(raw: RawDeck, quick: bool) -> dict:
    """The StudySpec fields of the system, its properties and the MD timing, validated."""
    from ..properties.systems import ALL_PROPERTIES

    s = "STUDY"
    system = raw.get(s, "system", str, required=True).lower()
    if system not in SYSTEMS:
        raise raw.error(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})", s, "system")
    props = tuple(p for p in raw.get(s, "properties", str, "eos").replace(",", " ").split())
    bad = [p for p in props if p not in ALL_PROPERTIES]
    if bad:
        raise raw.error(f"unknown property {bad[0]!r} (known: {', '.join(ALL_PROPERTIES)})", s, "properties")
    property_quick = raw.get(s, "property_quick", bool, quick)
    out = (raw.path.parent / raw.get(s, "out", str, f"study_{system}")).resolve()
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
    return dict(system=system, properties=props, property_quick=property_quick or quick, out=out,
                md_cell=md_cell, md_steps=md_steps, md_temperature=md_temperature)


def _nn_defaults(raw: RawDeck, overrides) -> list[tuple[str, str, str]]:
    """The [PYTORCH] keys every network rung gets: the study's nn_epochs, nn_stress_weight, nn_patience,
    nn_ema_decay, nn_weight_decay, nn_validation_fraction, nn_linear_baseline and the command line's `-k PYTORCH key value` (a linear
    rung's deck has no [PYTORCH])."""
    s = "STUDY"
    nn_epochs = raw.get(s, "nn_epochs", int, None)
    if nn_epochs is not None and nn_epochs < 1:
        raise raw.error("must be >= 1", s, "nn_epochs")
    nn_patience = raw.get(s, "nn_patience", int, None)
    if nn_patience is not None and nn_patience < 0:
        raise raw.error("must be >= 0 (0: never stop early)", s, "nn_patience")
    nn_stress_weight = raw.get(s, "nn_stress_weight", float, None)
    if nn_stress_weight is not None and nn_stress_weight < 0:
        raise raw.error("must be >= 0", s, "nn_stress_weight")
    nn_ema_decay = raw.get(s, "nn_ema_decay", float, None)
    if nn_ema_decay is not None and not 0 <= nn_ema_decay < 1:
        raise raw.error("must be in [0, 1) (0: no moving average of the weights)", s, "nn_ema_decay")
    nn_weight_decay = raw.get(s, "nn_weight_decay", float, None)
    if nn_weight_decay is not None and nn_weight_decay < 0:
        raise raw.error("must be >= 0 (0: plain Adam)", s, "nn_weight_decay")
    nn_validation = raw.get(s, "nn_validation_fraction", float, None)
    if nn_validation is not None and not 0 <= nn_validation < 1:
        raise raw.error("must be in [0, 1) (0: no validation split, the last epochs' weights are kept)", s,
                        "nn_validation_fraction")
    defaults = []
    if nn_epochs:
        defaults.append(("PYTORCH", "num_epochs", str(nn_epochs)))
    if nn_stress_weight is not None:
        defaults.append(("PYTORCH", "stress_weight", repr(nn_stress_weight)))
    if nn_patience is not None:
        defaults.append(("PYTORCH", "patience", str(nn_patience)))
    if nn_ema_decay:
        defaults.append(("PYTORCH", "ema_decay", repr(nn_ema_decay)))
    if nn_weight_decay:
        defaults.append(("PYTORCH", "weight_decay", repr(nn_weight_decay)))
    if raw.get(s, "nn_linear_baseline", bool, False):
        defaults.append(("PYTORCH", "linear_baseline", "1"))
    if nn_validation is not None:
        defaults.append(("PYTORCH", "validation_fraction", repr(nn_validation)))
    return defaults + [("PYTORCH", key, value) for sec, key, value in overrides if sec.upper() == "PYTORCH"]


def _members(raw: RawDeck) -> dict:
    """[STUDY] nn_ensemble (K >= 1 networks per network rung), linear_samples (K >= 0 coefficient sets per linear
    rung) and linear_uq (where the sets come from): the members whose properties give the error bars."""
    nn_ensemble = raw.get("STUDY", "nn_ensemble", int, 1)
    if nn_ensemble < 1:
        raise raw.error("must be >= 1 (networks per network rung; 1: no ensemble)", "STUDY", "nn_ensemble")
    linear_samples = raw.get("STUDY", "linear_samples", int, 0)
    if linear_samples < 0:
        raise raw.error("must be >= 0 (posterior coefficient sets per linear rung; 0: none)", "STUDY",
                        "linear_samples")
    linear_uq = raw.get("STUDY", "linear_uq", str, "anl").lower()
    if linear_uq not in ("anl", "bootstrap"):
        raise raw.error(f"{linear_uq!r}: one of anl, bootstrap", "STUDY", "linear_uq")
    return {"nn_ensemble": nn_ensemble, "linear_samples": linear_samples, "linear_uq": linear_uq}


def _has_samples(spec: StudySpec, model: ModelSpec) -> bool:
    """Whether a rung is fitted with coefficient sets: linear rungs with linear_samples, quadratic ones too when
    they come from the bootstrap (whose mean is the rung's own SVD fit)."""
    kinds = ("linear", "quadratic") if spec.linear_uq == "bootstrap" else ("linear",)
    return spec.linear_samples > 0 and model.kind in kinds


def member_overrides(spec: StudySpec, model: ModelSpec) -> list[tuple[str, str, str]]:
    """The fitting-deck keys that make a rung's members: `[PYTORCH] ensemble_size` for a network rung,
    `[SOLVER] solver = ANL` (or BOOTSTRAP) and `nsam` for a linear one; none at the defaults (whose fit keys are
    those of a study without the keys). With ANL quadratic rungs keep their solver: ANL's mean is FitSNAP's
    pinv(AᵀWA)·AᵀWb (eigenvalue cutoff 1e-15), which keeps the near-null directions an SVD with the deck's rcond
    cuts — on GaN quadratic 2J=6 (992 unknowns, 80 frames) it gave a test force MAE of 3.37 eV/Å against 0.138 for
    the SVD solution. BOOTSTRAP's mean is the SVD solution: quadratic rungs get their sets too."""
    if model.kind == "nn" and spec.nn_ensemble > 1:
        return [("PYTORCH", "ensemble_size", str(spec.nn_ensemble))]
    if _has_samples(spec, model):
        return [("SOLVER", "solver", spec.linear_uq.upper()), ("SOLVER", "nsam", str(spec.linear_samples))]
    return []


def member_potentials(spec: StudySpec, model: ModelSpec) -> list[str]:
    """Stems of the member potentials a rung's fit exports (`pot.member<k>`, `pot.sample<k>`; none without)."""
    if model.kind == "nn" and spec.nn_ensemble > 1:
        return [f"pot.member{k}" for k in range(spec.nn_ensemble)]
    if _has_samples(spec, model):
        return [f"pot.sample{k}" for k in range(spec.linear_samples)]
    return []


def _structure(raw: RawDeck) -> Path | None:
    """[STUDY] structure (relative to the study deck), which must exist; None without the key."""
    structure = raw.get("STUDY", "structure", str, None)
    if structure is None:
        return None
    structure = (raw.path.parent / structure).resolve()
    if not structure.is_file():
        raise raw.error(f"file not found: {structure}", "STUDY", "structure")
    return structure


def _property_settings(raw: RawDeck, system: str) -> list[tuple[str, str]]:
    """[STUDY] property_settings, "diffusion_prod_ps 50, diffusion_runs 4" → [(key, value)], checked by the
    system preset."""
    from ..properties.systems import get_preset, with_run_settings

    settings = []
    for item in raw.get("STUDY", "property_settings", str, "").split(","):
        if item.strip():
            key, _, value = item.strip().partition(" ")
            settings.append((key, value.strip()))
    try:
        with_run_settings(get_preset(system), dict(settings))
    except FitsnapError as exc:
        raise raw.error(str(exc), "STUDY", "property_settings") from None
    return settings


def _base_overrides(raw: RawDeck, overrides) -> list[tuple[str, str, str]]:
    """Overrides of the base fitting deck that every model shares: the split seed, dataPath, and the command
    line's fitting-section keys."""
    base_overrides = []
    seed = raw.get("STUDY", "split_seed", int, None)
    if seed is not None:  # a seeded shuffle for the split; without it the base deck's split is kept as is
        base_overrides += [("GROUPS", "random_sampling", "1"), ("GROUPS", "random_seed", str(seed))]
    data_path = raw.get("STUDY", "dataPath", str, None)
    if data_path is not None:  # relative to the study deck; handed to the base deck as an absolute path
        base_overrides.append(("PATH", "dataPath", str((raw.path.parent / data_path).resolve())))
    # a command-line override of a fitting section (-k GROUPS active_1 "0.8 0.2 100 1 1e-4") is the fitting
    # deck's, inline or not: every model is fitted with it
    return base_overrides + [(sec, key, value) for sec, key, value in overrides
                             if sec.upper() in KNOWN_SECTIONS and sec.upper() != "PYTORCH"]


def _models(raw: RawDeck, inline: list[str], nn_defaults) -> list[ModelSpec]:
    """The ladder's models, then the [MODEL_<name>] sections' (names unique; any other section is an error)."""
    path, s = raw.path, "STUDY"
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
    return models


def _references(raw: RawDeck) -> dict[str, Path]:
    """[ABINITIO] files (relative to the study deck), each of which must exist."""
    r = "ABINITIO"
    for key, rv in raw.sections.get(r, {}).items():
        if key not in REFERENCE_KEYS:
            raise DeckError(f"unknown key (known: {', '.join(REFERENCE_KEYS)})", raw.path, rv.line, r, key)
    refs = {}
    for key in REFERENCE_KEYS[:-1]:
        value = raw.get(r, key, str, None)
        if value:
            p = (raw.path.parent / value).resolve()
            if not p.is_file():
                raise raw.error(f"file not found: {p}", r, key)
            refs[key] = p
    return refs


def _check_models(spec: StudySpec, raw: RawDeck, inline_deck: bool) -> None:
    """Validate every model's full deck and data now, not an hour into the study. An error at a fitting-deck key
    names its line in the study deck when the fitting deck is inline, else the base deck."""
    def fitting_deck_error(message: str, section: str, key: str) -> DeckError:
        if not inline_deck:
            return DeckError(message, spec.base_deck, None, section, key)
        return raw.error(message, section, key)

    for m in spec.models:
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


def inline_base_deck(study: Path, out: Path) -> Path:
    """The fitting sections of a study deck as `<out>/base_deck.in`, with the same line numbers (study-only
    lines are blanked) so that errors point at the study deck's lines, and dataPath relative to `out`."""
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
    """A model's full fitting settings: the base deck with the study's and the model's overrides, its outputs
    named pot.*, metrics.md and parity.df (relative: the fit stage places them in the model's folder)."""
    ov = list(spec.base_overrides) + list(model.overrides) + member_overrides(spec, model) + [
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


def study_system(spec: StudySpec):
    """The property engine's system: the preset, or its settings on the deck's `structure` file."""
    from ..properties.systems import custom_system, get_preset, with_run_settings

    preset = with_run_settings(get_preset(spec.system), dict(spec.property_settings))
    if spec.structure is None:
        return preset
    return custom_system(spec.structure, list(preset.elements), preset.properties, base=preset)
