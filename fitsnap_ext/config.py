"""Parse a FitSNAP-format deck (INI) into one frozen, validated `Settings` object.

The deck keeps FitSNAP's sections and keys; every key is checked, and every error names the deck file,
the line and the key. `-k SECTION KEY VALUE` overrides are applied before validation. The deck file itself is
read by `ini.RawDeck`; the settings' dataclasses live in `settings`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from .errors import DeckError
from .ini import RawDeck, text_value
from .settings import (ACTIVATIONS, STRESS_COMPONENTS, BispectrumSettings, CalculatorSettings, GroupSettings,
                       GroupsSettings, NetworkSettings, OutputSettings, PropertiesSettings, ReferenceSettings,
                       ScraperSettings, Settings, SolverSettings, output_files)
from .units import STRESS_UNITS

__all__ = ["ACTIVATIONS", "BispectrumSettings", "CalculatorSettings", "GroupSettings", "GroupsSettings",
           "NetworkSettings", "OutputSettings", "PropertiesSettings", "RawDeck", "ReferenceSettings",
           "ScraperSettings", "Settings", "SolverSettings", "load_deck", "load_settings", "output_files"]


def _properties(raw: RawDeck, deck: Path) -> PropertiesSettings | None:
    s = "PROPERTIES"
    if not raw.has(s):
        return None
    system = raw.get(s, "system", str, required=True).lower()
    if system not in ("si", "gan", "lgps"):
        raise raw.error(f"unknown system {system!r} (known: si, gan, lgps)", s, "system")
    props = tuple(p.strip() for p in raw.get(s, "properties", str, "").replace(",", " ").split() if p.strip())
    reference = raw.get(s, "reference", str)
    reference = (deck.parent / reference) if reference else None
    if reference is not None and not reference.is_file():
        raise raw.error(f"reference file not found: {reference}", s, "reference")
    return PropertiesSettings(system, props, raw.get(s, "quick", bool, False), raw.get(s, "out", str, ""), reference)


KNOWN_SECTIONS = ("BISPECTRUM", "CALCULATOR", "ESHIFT", "SOLVER", "RIDGE", "SCRAPER", "PATH", "OUTFILE",
                  "REFERENCE", "GROUPS", "EXTRAS", "MEMORY", "PROPERTIES", "PYTORCH")
SOLVERS = ("SVD", "RIDGE", "ANL", "BOOTSTRAP", "PYTORCH")


def _network(raw: RawDeck) -> NetworkSettings:
    s, d = "PYTORCH", NetworkSettings()
    layers = raw.get(s, "layer_sizes", list, ["num_desc", *map(str, d.hidden), "1"])
    if len(layers) < 2 or layers[0] != "num_desc" or layers[-1] != "1":
        raise raw.error("must read 'num_desc N1 N2 ... 1' (input size, hidden widths, one output)", s, "layer_sizes")
    try:
        hidden = tuple(int(x) for x in layers[1:-1])
    except ValueError:
        raise raw.error(f"{' '.join(layers)!r}: hidden widths must be integers", s, "layer_sizes") from None
    if any(h < 1 for h in hidden):
        raise raw.error("hidden widths must be >= 1", s, "layer_sizes")
    activation = raw.get(s, "activation", str, d.activation).lower()
    if activation not in ACTIVATIONS:
        raise raw.error(f"{activation!r} is not implemented by LAMMPS' mliap model nn (it would silently run as "
                        f"linear); use one of {', '.join(ACTIVATIONS)}", s, "activation")
    out = NetworkSettings(
        hidden=hidden, activation=activation,
        learning_rate=raw.get(s, "learning_rate", float, d.learning_rate),
        num_epochs=raw.get(s, "num_epochs", int, d.num_epochs),
        batch_size=raw.get(s, "batch_size", int, d.batch_size),
        energy_weight=raw.get(s, "energy_weight", float, d.energy_weight),
        force_weight=raw.get(s, "force_weight", float, d.force_weight),
        stress_weight=raw.get(s, "stress_weight", float, d.stress_weight),
        seed=raw.get(s, "seed", int, d.seed),
        validation_fraction=raw.get(s, "validation_fraction", float, d.validation_fraction),
        training_fraction=raw.get(s, "training_fraction", float, d.training_fraction),
        shuffle_flag=raw.get(s, "shuffle_flag", bool, d.shuffle_flag),
        multi_element_option=raw.get(s, "multi_element_option", int, d.multi_element_option),
        patience=raw.get(s, "patience", int, d.patience),
        save_state_output=raw.get(s, "save_state_output", str, d.save_state_output),
        save_state_input=raw.get(s, "save_state_input", str, d.save_state_input),
        checkpoint=raw.get(s, "checkpoint", str, d.checkpoint),
        save_freq=raw.get(s, "save_freq", int, d.save_freq),
        ensemble_size=raw.get(s, "ensemble_size", int, d.ensemble_size),
        ensemble_bootstrap=raw.get(s, "ensemble_bootstrap", bool, d.ensemble_bootstrap),
        ema_decay=raw.get(s, "ema_decay", float, d.ema_decay),
        weight_decay=raw.get(s, "weight_decay", float, d.weight_decay),
        linear_baseline=raw.get(s, "linear_baseline", bool, d.linear_baseline))
    for key in ("learning_rate", "num_epochs", "batch_size", "save_freq"):
        if getattr(out, key) <= 0:
            raise raw.error("must be > 0", s, key)
    for key in ("energy_weight", "force_weight", "stress_weight", "weight_decay"):
        if getattr(out, key) is not None and getattr(out, key) < 0:
            raise raw.error("must be >= 0", s, key)
    for given, missing in (("energy_weight", "force_weight"), ("force_weight", "energy_weight")):
        if getattr(out, given) is not None and getattr(out, missing) is None:
            raise raw.error(f"{given} is given without {missing}: as in FitSNAP, both are given (global weights "
                            "overriding the group weights) or neither (the groups' eweight/fweight)", s, missing)
    if not 0 <= out.ema_decay < 1:
        raise raw.error(f"{out.ema_decay}: must be in [0, 1) (0: no moving average of the weights)", s, "ema_decay")
    if not 0 <= out.validation_fraction < 1:
        raise raw.error("must be in [0, 1)", s, "validation_fraction")
    if out.training_fraction is not None and not 0 < out.training_fraction <= 1:
        raise raw.error("must be in (0, 1]", s, "training_fraction")
    if out.ensemble_size < 1:
        raise raw.error(f"{out.ensemble_size}: must be >= 1 (the number of networks in the ensemble)", s,
                        "ensemble_size")
    if out.multi_element_option not in (1, 2):
        raise raw.error("must be 1 (one network shared by all elements) or 2 (one per element)", s,
                        "multi_element_option")
    for key in ("manual_seed_flag", "dtype_setting", "output_file", "num_elements", "silence_ace_multi_warning"):
        raw.get(s, key, str)  # FitSNAP keys with no effect here: float64 always, seeded always, no extra file
    return out


def _per_type(raw: RawDeck, key: str, ntypes: int, default: str) -> tuple[float, ...]:
    """A per-element list (`wj = 1.0 0.9`); one value is broadcast."""
    values = raw.get("BISPECTRUM", key, list, default.split())
    try:
        floats = tuple(float(v) for v in values)
    except ValueError:
        raise raw.error(f"{' '.join(values)!r} is not a list of numbers", "BISPECTRUM", key) from None
    if len(floats) == 1:
        floats = floats * ntypes
    if len(floats) != ntypes:
        raise raw.error(f"needs {ntypes} values (one per element), got {len(floats)}", "BISPECTRUM", key)
    return floats


def _bispectrum(raw: RawDeck) -> BispectrumSettings:
    s = "BISPECTRUM"
    if not raw.has(s):
        raise DeckError("missing section [BISPECTRUM]", raw.path)
    types = tuple(raw.get(s, "type", list, required=True))
    numtypes = raw.get(s, "numTypes", int, len(types))
    if numtypes != len(types):
        raise raw.error(f"numTypes = {numtypes} but {len(types)} elements in 'type'", s, "numTypes")
    twoj = raw.get(s, "twojmax", list, ["6"])
    try:
        twojs = [int(v) for v in twoj]
    except ValueError:
        raise raw.error(f"{' '.join(twoj)!r} is not an integer", s, "twojmax") from None
    if len(set(twojs)) != 1:
        raise raw.error("per-element twojmax values must be equal (LAMMPS uses one 2J)", s, "twojmax")
    if twojs[0] < 0:
        raise raw.error("must be >= 0", s, "twojmax")
    out = dict(
        types=types, twojmax=twojs[0],
        rcutfac=raw.get(s, "rcutfac", float, 4.67637), rfac0=raw.get(s, "rfac0", float, 0.99363),
        rmin0=raw.get(s, "rmin0", float, 0.0),
        wj=_per_type(raw, "wj", numtypes, "1.0"), radelem=_per_type(raw, "radelem", numtypes, "0.5"),
        bzeroflag=raw.get(s, "bzeroflag", bool, False), quadraticflag=raw.get(s, "quadraticflag", bool, False),
        chemflag=raw.get(s, "chemflag", bool, False), wselfallflag=raw.get(s, "wselfallflag", bool, False),
        bnormflag=raw.get(s, "bnormflag", bool, False), switchflag=raw.get(s, "switchflag", bool, True),
        switchinnerflag=raw.get(s, "switchinnerflag", bool, False),
    )
    out["sinner"] = _per_type(raw, "sinner", numtypes, "0.9") if out["switchinnerflag"] else ()
    out["dinner"] = _per_type(raw, "dinner", numtypes, "0.1") if out["switchinnerflag"] else ()
    if out["rcutfac"] <= 0:
        raise raw.error("must be > 0", s, "rcutfac")
    if not 0 < out["rfac0"] <= 1:
        raise raw.error("must be in (0, 1]", s, "rfac0")
    if out["chemflag"] and raw.get("SOLVER", "solver", str, "SVD").upper() == "PYTORCH":
        # LAMMPS' chemflag forces (pair_style snap, mliap descriptor sna) take one dE/dB per group of identical
        # columns (BispectrumSettings.duplicate_groups); the linear and quadratic fits tie their coefficients so,
        # a network's dE/dB are not tied (tests/test_multielement.py: untied linear mliap, 0.19 eV/Å off the energy's
        # gradient). Deploying one needs its first-layer weights averaged over each group at export.
        raise raw.error("chemflag with a network (solver = PYTORCH) is not supported: LAMMPS' mliap descriptor "
                        "sna assumes equal dE/dB on chemflag's duplicated columns, which the network does not "
                        "give, so its forces would not be the gradient of its energy", s, "chemflag")
    _check_bispectrum_ranges(raw, out)
    return BispectrumSettings(**out)


MAX_TWOJMAX = 20  # 2J=20 already gives 1771 components per element; larger values exhaust memory, not the data


def _check_bispectrum_ranges(raw: RawDeck, values: dict) -> None:
    """Ranges `compute snap` needs to mean anything: outside them LAMMPS still runs and the fit is silently junk."""
    s = "BISPECTRUM"
    for element in values["types"]:
        raw.check_safe(s, "type", element, token=True)
        if element not in chemical_symbols()[1:]:
            raise raw.error(f"unknown element {element!r} (type lists chemical symbols, e.g. Si Ga N)", s, "type")
    if len(set(values["types"])) != len(values["types"]):
        raise raw.error(f"an element is listed twice: {' '.join(values['types'])}", s, "type")
    if values["twojmax"] > MAX_TWOJMAX:
        raise raw.error(f"{values['twojmax']} is above {MAX_TWOJMAX} (the descriptor count grows as 2J^3)", s,
                        "twojmax")
    if values["rmin0"] < 0:
        raise raw.error("must be >= 0", s, "rmin0")
    for key in ("radelem", "wj"):
        if any(v <= 0 for v in values[key]):
            raise raw.error(f"every value must be > 0, got {' '.join(map(repr, values[key]))}", s, key)
    for key in ("sinner", "dinner"):
        if any(v <= 0 for v in values[key]):
            raise raw.error(f"every value must be > 0, got {' '.join(map(repr, values[key]))}", s, key)


def chemical_symbols() -> list[str]:
    from ase.data import chemical_symbols as symbols

    return symbols


def _per_atom_flags(raw: RawDeck, network: bool) -> None:
    """FitSNAP's per-atom switches: fitsnap_ext sets them itself (on for networks, off for linear fits).

    A deck may state them (FitSNAP's network decks do); only a value that contradicts the model is refused.
    """
    for section, key in (("BISPECTRUM", "bikflag"), ("BISPECTRUM", "dgradflag"), ("CALCULATOR", "per_atom_energy")):
        value = raw.get(section, key, bool)
        if value is None or key == "dgradflag" and network:
            continue  # a network takes sparse gradients whichever way FitSNAP would compute them
        if value and not network:
            raise raw.error("per-atom descriptors are for networks ([SOLVER] solver = PYTORCH); a linear or "
                            "quadratic fit uses one energy row per configuration: set it to 0 or remove it",
                            section, key)
        if not value and network and key != "dgradflag":
            raise raw.error("a network is trained on per-atom energies (E = sum of E_i): set it to 1 or remove "
                            "it", section, key)


def _groups(raw: RawDeck) -> GroupsSettings:
    """[GROUPS]; a deck without it has no groups (its frames must then be given in memory: `fit(frames=...)`)."""
    s = "GROUPS"
    if not raw.has(s):
        return GroupsSettings(())
    columns = raw.get(s, "group_sections", list, "name training_size testing_size eweight fweight vweight".split())
    types = raw.get(s, "group_types", list, ["str"] + ["float"] * (len(columns) - 1))
    if len(types) != len(columns):
        raise raw.error(f"{len(columns)} columns but {len(types)} group_types", s, "group_types")
    if columns[0] != "name":
        raise raw.error("first column must be 'name'", s, "group_sections")
    allowed = {"name", "size", "training_size", "testing_size", "eweight", "fweight", "vweight"}
    for c in columns:
        if c not in allowed:
            raise raw.error(f"unknown column {c!r} (known: {', '.join(sorted(allowed))})", s, "group_sections")
    if "size" in columns and "training_size" in columns:
        raise raw.error("give 'size' or 'training_size', not both", s, "group_sections")
    smart = raw.get(s, "smartweights", bool, False)
    random_sampling = raw.get(s, "random_sampling", bool, False)
    seed = raw.get(s, "random_seed", int, 0)
    meta = {"group_sections", "group_types", "smartweights", "random_sampling", "random_seed", "boltz"}
    if raw.get(s, "BOLTZ", float, 0.0):
        raise raw.error("Boltzmann weighting is not supported; give explicit weights", s, "BOLTZ")
    groups = []
    for key, rv in list(raw.items(s)):
        if key.lower() in meta:
            continue
        values = rv.value.split()
        if len(values) != len(columns) - 1:
            raise DeckError(f"expected {len(columns) - 1} values ({' '.join(columns[1:])}), got {len(values)}",
                            raw.path, rv.line, s, key)
        row = {}
        for col, val in zip(columns[1:], values):
            try:
                row[col] = float(val)
            except ValueError:
                raise DeckError(f"{val!r} is not a number (column {col})", raw.path, rv.line, s, key) from None
            if not math.isfinite(row[col]) or row[col] < 0:
                raise DeckError(f"column {col} must be a finite number >= 0, got {val}", raw.path, rv.line, s, key)
        train = row.get("training_size", row.get("size", 1.0))
        groups.append(GroupSettings(key, train, row.get("testing_size", 0.0),
                                    row.get("eweight", 1.0), row.get("fweight", 1.0), row.get("vweight", 1.0)))
    if not groups:
        raise DeckError("no groups listed", raw.path, None, s)
    return GroupsSettings(tuple(groups), smart, random_sampling, seed)


def _reference(raw: RawDeck) -> ReferenceSettings:
    s = "REFERENCE"
    units = raw.get(s, "units", str, "metal").lower()
    if units != "metal":
        raise raw.error("only 'metal' units are supported (eV, Å, ps, bar)", s, "units")
    pair_style = raw.get(s, "pair_style", str, "zero 10.0")
    coeffs = []
    for key, rv in list(raw.items(s)):
        m = re.fullmatch(r"pair_coeff(\d*)", key.lower())
        if m:
            coeffs.append((int(m.group(1) or 0), rv.value))
        elif key.lower() not in ("units", "atom_style", "pair_style"):
            raise DeckError("unknown key", raw.path, rv.line, s, key)
    raw.check_safe(s, "pair_style", pair_style)
    for key, rv in list(raw.items(s)):
        if key.lower().startswith("pair_coeff"):
            raw.check_safe(s, key, rv.value)
    coeffs = tuple(v for _, v in sorted(coeffs)) or ("* *",)
    atom_style = raw.check_safe(s, "atom_style", raw.get(s, "atom_style", str, "atomic").lower(), token=True)
    return ReferenceSettings(units, atom_style, pair_style, coeffs)


def load_deck(source: "str | Path | dict", overrides=None) -> Settings:
    """The validated settings of a deck given as a path, as deck text, or as FitSNAP's library-mode dict
    ({"BISPECTRUM": {...}, "CALCULATOR": {...}, ...}); `overrides`: (SECTION, KEY, VALUE) triples or
    {SECTION: {KEY: VALUE}}. Relative paths in a deck given as text or a dict are relative to the current folder.
    Errors name the file and line (or "<deck>"/"<dict>" and the section and key)."""
    if isinstance(overrides, dict):
        overrides = [(sec, key, text_value(v)) for sec, keys in overrides.items() for key, v in keys.items()]
    if isinstance(source, dict):
        return load_settings(RawDeck.from_dict(source, Path("<dict>")), overrides or ())
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("[")):
        return load_settings(RawDeck.parse(source, Path("<deck>")), overrides or ())
    return load_settings(source, overrides or ())


def load_settings(deck: "str | Path | RawDeck", overrides: list[tuple[str, str, str]] = ()) -> Settings:
    """Read and validate a deck (a path, or one already parsed); `overrides` are (SECTION, KEY, VALUE) triples
    from `-k`."""
    if isinstance(deck, RawDeck):
        raw, deck = deck, deck.path
    else:
        deck = Path(deck).resolve()
        raw = RawDeck.read(deck)
    for section, key, value in overrides:
        raw.override(section, key, value)
    for name in ("MEMORY",):  # accepted for FitSNAP compatibility: memory here scales per rank, see README
        raw.get(name, "memory", int, 0)
        raw.get(name, "override", bool, False)

    bispectrum = _bispectrum(raw)
    calculator = _calculator(raw)
    solver, network = _solver(raw, calculator)
    data_path = deck.parent / raw.get("PATH", "dataPath", str, "JSON")
    raw.get("PATH", "groupFile", str)  # FitSNAP's legacy group file; groups come from [GROUPS]
    if raw.has("PATH", "groupFile"):
        raise raw.error("group files are not supported; list groups in [GROUPS]", "PATH", "groupFile")
    output, notes = _output(raw)
    settings = Settings(deck=deck, bispectrum=bispectrum, calculator=calculator, solver=solver,
                        scraper=_scraper(raw, calculator), data_path=data_path, groups=_groups(raw),
                        eshift=_eshift(raw, bispectrum), reference=_reference(raw), output=output, network=network,
                        properties=_properties(raw, deck), lines=raw.lines(), notes=notes)
    raw.check_unused(KNOWN_SECTIONS)
    _check_output_names(settings)
    return settings


def _calculator(raw: RawDeck) -> CalculatorSettings:
    c = "CALCULATOR"
    calculator = CalculatorSettings(
        calculator=raw.get(c, "calculator", str, "LAMMPSSNAP").upper(),
        energy=raw.get(c, "energy", bool, True), force=raw.get(c, "force", bool, True),
        stress=raw.get(c, "stress", bool, True), nonlinear=raw.get(c, "nonlinear", bool, False),
        stress_components=raw.get(c, "stress_components", str, "all").lower())
    if calculator.stress_components not in STRESS_COMPONENTS:
        raise raw.error(f"unknown value {calculator.stress_components!r} (known: {', '.join(STRESS_COMPONENTS)})",
                        c, "stress_components")
    if calculator.calculator != "LAMMPSSNAP":
        raise raw.error("only LAMMPSSNAP is supported", c, "calculator")
    if not (calculator.energy or calculator.force or calculator.stress):
        raise DeckError("energy, force and stress are all off: nothing to fit", raw.path, None, c)
    return calculator


def _solver(raw: RawDeck, calculator: CalculatorSettings) -> tuple[SolverSettings, NetworkSettings | None]:
    s = "SOLVER"
    solver_name = raw.get(s, "solver", str, "SVD").upper()
    if solver_name not in SOLVERS:
        raise raw.error(f"unknown solver {solver_name!r} (known: {', '.join(SOLVERS)})", s, "solver")
    if (solver_name == "PYTORCH") != calculator.nonlinear:
        raise raw.error("solver = PYTORCH and [CALCULATOR] nonlinear = 1 go together", s, "solver")
    if raw.has("PYTORCH") and solver_name != "PYTORCH":
        raise DeckError("[PYTORCH] given but [SOLVER] solver is not PYTORCH", raw.path, None, "PYTORCH")
    network = _network(raw) if solver_name == "PYTORCH" else None
    alpha = raw.get("RIDGE", "alpha", float, 1e-6)
    if alpha < 0:
        raise raw.error("must be >= 0", "RIDGE", "alpha")
    _per_atom_flags(raw, network is not None)
    rcond = raw.get(s, "rcond", float, 1e-13)
    if not 0 < rcond < 1:
        raise raw.error("must be in (0, 1) (singular values below rcond * max are dropped)", s, "rcond")
    nsam, nugget = raw.get(s, "nsam", int, 0), raw.get(s, "cov_nugget", float, 0.0)
    nboot = raw.get(s, "nboot", int, SolverSettings.nboot)
    for key, value, solvers in (("nsam", nsam, ("ANL", "BOOTSTRAP")), ("cov_nugget", nugget, ("ANL",)),
                                ("nboot", nboot, ("BOOTSTRAP",))):
        if value < 0:
            raise raw.error("must be >= 0", s, key)
        if raw.has(s, key) and value and solver_name not in solvers:
            raise raw.error(f"is a key of solver = {' or '.join(solvers)}: the other solvers give no coefficient "
                            f"uncertainty", s, key)
    if solver_name == "BOOTSTRAP" and nboot < 2:
        raise raw.error("must be >= 2 (the covariance is the replicates' spread)", s, "nboot")
    if solver_name == "BOOTSTRAP" and nsam > nboot:
        raise raw.error(f"must be <= nboot ({nboot}): the coefficient sets are bootstrap replicates", s, "nsam")
    solver = SolverSettings(solver_name, alpha, rcond, raw.get(s, "compute_testerrs", bool, True),
                            raw.get(s, "detailed_errors", bool, True), nsam, nugget, nboot)
    return solver, network


def _scraper(raw: RawDeck, calculator: CalculatorSettings) -> ScraperSettings:
    sc = "SCRAPER"
    scraper_name = raw.get(sc, "scraper", str, "JSON").upper()
    if scraper_name not in ("JSON", "XYZ"):
        raise raw.error(f"unknown scraper {scraper_name!r} (known: JSON, XYZ)", sc, "scraper")
    if scraper_name == "XYZ" and calculator.stress and not raw.has(sc, "stress_unit"):
        raise raw.error("XYZ data needs its stress unit declared (stress_unit = bar | kbar | GPa | eV/A3)",
                        sc, "stress_unit")
    stress_unit = raw.get(sc, "stress_unit", str, "bar")
    if stress_unit not in STRESS_UNITS:
        raise raw.error(f"unknown unit {stress_unit!r} (known: {', '.join(STRESS_UNITS)})", sc, "stress_unit")
    return ScraperSettings(scraper_name, stress_unit)


def _eshift(raw: RawDeck, bispectrum: BispectrumSettings) -> dict:
    eshift = {}
    for key, rv in list(raw.items("ESHIFT")):
        if key not in bispectrum.types:
            raise DeckError(f"element {key!r} is not in [BISPECTRUM] type", raw.path, rv.line, "ESHIFT", key)
        eshift[key] = raw.get("ESHIFT", key, float)
    return eshift


def _output(raw: RawDeck) -> tuple[OutputSettings, tuple[str, ...]]:
    """[OUTFILE] and [EXTRAS]: output names (each one safe word) and the notes on FitSNAP keys accepted as no-ops."""
    o, e = "OUTFILE", "EXTRAS"
    if raw.get(o, "output_style", str, "SNAP").upper() != "SNAP":
        raise raw.error("only SNAP output is supported", o, "output_style")
    if raw.get(o, "metrics_style", str, "MD").upper() != "MD":
        raise raw.error("only MD metrics are supported (a .csv is always written beside)", o, "metrics_style")
    output = OutputSettings(
        potential=raw.get(o, "potential", str, "fitsnap_potential"),
        metrics=raw.get(o, "metrics", str, "fitsnap_metrics.md"),
        dump_descriptors=raw.get(e, "dump_descriptors", bool, False),
        dump_truth=raw.get(e, "dump_truth", bool, False),
        dump_weights=raw.get(e, "dump_weights", bool, False),
        dump_dataframe=raw.get(e, "dump_dataframe", bool, False),
        descriptors_file=raw.get(o, "descriptors", str, "Descriptors.npy"),
        truth_file=raw.get(o, "truth", str, "Truth-Ref.npy"),
        weights_file=raw.get(o, "weights", str, "Weights.npy"),
        dataframe_file=raw.get(o, "dataframe", str, "FitSNAP.df"))
    for key in ("apply_transpose", "only_test", "multinode_testing"):
        if raw.get(e, key, bool, False):
            raise raw.error("not supported by fitsnap_ext (its solver never forms AᵀA)", e, key)
    notes = tuple(f"note: [EXTRAS] {key} = 1 is accepted but not written by fitsnap_ext (the metrics .md/.csv hold "
                  f"the errors per group)" for key in ("dump_peratom", "dump_perconfig", "dump_configs")
                  if raw.get(e, key, bool, False))  # FitSNAP's extra dumps (a pickle among them)
    for key, name in (("potential", output.potential), ("metrics", output.metrics),
                      ("descriptors", output.descriptors_file), ("truth", output.truth_file),
                      ("weights", output.weights_file), ("dataframe", output.dataframe_file)):
        raw.check_safe(o, key, name, token=True)
    return output, notes


def _check_output_names(settings: Settings) -> None:
    """No two outputs may be the same file (`metrics = pot.mod` would overwrite the potential)."""
    seen: dict[Path, tuple[str, str, str]] = {}
    candidates = output_files(settings)
    if settings.network is not None and settings.network.checkpoint:
        candidates.append((settings.network.checkpoint, ("PYTORCH", "checkpoint")))
    for name, (section, key) in candidates:
        path = Path(name).resolve()
        if path in seen:
            _, other_section, other_key = seen[path]
            raise settings.error(f"{name!r} is also a file of [{other_section}] {other_key} (outputs must not "
                                 f"overwrite each other; metrics writes NAME.md and NAME.csv)", section, key)
        seen[path] = (name, section, key)
