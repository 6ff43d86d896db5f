"""Parse a FitSNAP-format deck (INI) into one frozen, validated `Settings` object.

The deck keeps FitSNAP's sections and keys; every key is checked, and every error names the deck file,
the line and the key. `-k SECTION KEY VALUE` overrides are applied before validation.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from itertools import combinations_with_replacement
from pathlib import Path

from .errors import DeckError
from .units import STRESS_UNITS

# Characters that would let a value start a new LAMMPS command or be rewritten by LAMMPS' input parser when it is
# written into a LAMMPS command or an include file: line breaks, `&` continuation, `$` variables, quotes, comments.
UNSAFE_CHARACTERS = frozenset("\n\r\0&$\"'`#;\\")
UNSAFE_NAMES = "newline, & $ quotes # ; \\"


@dataclass(frozen=True)
class RawValue:
    value: str
    line: int | None  # None for command-line overrides


def _text_value(value) -> str:
    """A Python value as deck text: True → 1, [4.7, 4.7] → '4.7 4.7'."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return " ".join(_text_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


class RawDeck:
    """Sections → {key: RawValue}, with line numbers; tracks which keys were read."""

    def __init__(self, path: Path, sections: dict[str, dict[str, RawValue]], key_case: dict):
        self.path = path
        self.sections = sections
        self._key_case = key_case  # (section, lower key) -> key as written
        self._used: set[tuple[str, str]] = set()

    @classmethod
    def read(cls, path: Path, continuation: bool = False) -> "RawDeck":
        """Parse the deck. A `[KIND name]` header keeps its name as written (section "KIND name").

        With `continuation`, a line indented deeper than the key before it continues that key's value on a new
        line (configparser's multi-line values); without, every line stands alone.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeckError(f"cannot read deck: {exc.strerror}", path=path) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise DeckError(f"not a text deck (byte 0x{data[exc.start]:02x} is not UTF-8)", path, line) from None
        return cls.parse(text, path, continuation)

    @classmethod
    def from_dict(cls, sections: dict, path: Path) -> "RawDeck":
        """FitSNAP's library-mode deck, {"SECTION": {key: value}}: lists are joined by spaces, booleans are 0/1."""
        raw = cls(path, {}, {})
        for section, keys in sections.items():
            if not isinstance(keys, dict):
                raise DeckError(f"section {section!r} must map keys to values, got {type(keys).__name__}", path)
            name = str(section).strip().strip("[]")
            raw.sections.setdefault(name.upper() if " " not in name else name, {})
            for key, value in keys.items():
                raw.override(name, str(key), _text_value(value))
        return raw

    @classmethod
    def parse(cls, text: str, path: Path, continuation: bool = False) -> "RawDeck":
        """Parse deck text (see `read`); `path` names it in errors."""
        if "\0" in text:
            line = text[:text.index("\0")].count("\n") + 1
            raise DeckError("not a text deck (it holds a NUL byte)", path, line)
        sections: dict[str, dict[str, RawValue]] = {}
        key_case = {}
        current = None
        last = None  # (section, lower key, indentation) of the latest key, which an indented line continues
        for lineno, raw in enumerate(text.splitlines(), start=1):
            content = raw.split("#", 1)[0].split(";", 1)[0].strip()
            indent = len(raw) - len(raw.lstrip())
            if continuation and content and last is not None and indent > last[2]:
                value = sections[last[0]][last[1]]
                sections[last[0]][last[1]] = RawValue(value.value + "\n" + content, value.line)
                continue
            line = raw.strip() if raw.lstrip().startswith("[") else content
            if not line:
                continue
            m = re.fullmatch(r"\[\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+([^\s\]]+))?\s*\]\s*([#;].*)?", line)
            if m:
                current = m.group(1).upper() + (f" {m.group(2)}" if m.group(2) else "")
                if current in sections:
                    raise DeckError(f"section [{current}] appears twice", path, lineno)
                sections[current] = {}
                last = None
                continue
            if current is None:
                raise DeckError(f"line outside any [SECTION]: {raw.strip()!r}", path, lineno)
            if "=" not in line:
                raise DeckError(f"expected 'key = value', got {raw.strip()!r}", path, lineno, current)
            key, value = (s.strip() for s in line.split("=", 1))
            if not key:
                raise DeckError("empty key", path, lineno, current)
            lkey = key.lower()
            if lkey in sections[current]:
                raise DeckError("key given twice", path, lineno, current, key)
            sections[current][lkey] = RawValue(value, lineno)
            key_case[(current, lkey)] = key
            last = (current, lkey, indent)
        return cls(path, sections, key_case)

    def override(self, section: str, key: str, value: str) -> None:
        """Apply a `-k SECTION KEY VALUE` override (creates the section/key if absent)."""
        section = section.upper()
        if any(ch in UNSAFE_CHARACTERS for ch in value):
            raise DeckError(f"value {value!r} holds a newline or a character LAMMPS would interpret "
                            f"({UNSAFE_NAMES})", self.path, None, section, key)
        self.sections.setdefault(section, {})[key.lower()] = RawValue(value, None)
        self._key_case[(section, key.lower())] = key

    def copy_key(self, section: str, source: str, target: str) -> None:
        """Give `target` the value and line of `source` (same section), e.g. a study's `quick_out` standing in for
        `out`: errors about `target` point at the line of `source` and name it as written."""
        value = self.sections[section][source.lower()]
        self.sections[section][target.lower()] = value
        self._key_case[(section, target.lower())] = self._key_case[(section, source.lower())]

    def has(self, section: str, key: str | None = None) -> bool:
        if key is None:
            return section in self.sections
        return key.lower() in self.sections.get(section, {})

    def error(self, message: str, section: str, key: str | None = None) -> DeckError:
        line = None
        if key is not None and self.has(section, key):
            line = self.sections[section][key.lower()].line
        return DeckError(message, self.path, line, section, key)

    def get(self, section: str, key: str, kind=str, default=None, required=False):
        """Value of `key` converted by `kind` (str, int, float, bool, list), or `default`."""
        self._used.add((section, key.lower()))
        raw = self.sections.get(section, {}).get(key.lower())
        if raw is None:
            if required:
                raise self.error("required key is missing", section, key)
            return default
        text = raw.value
        try:
            if kind is bool:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if kind is int:
                if re.fullmatch(r"[+-]?\d+", text):
                    return int(text)  # exact, however large (a seed)
                f = float(text)
                if not f.is_integer():
                    raise ValueError
                return int(f)
            if kind is float:
                f = float(text)
                if not math.isfinite(f):
                    raise ValueError
                return f
            if kind is list:
                return text.split()
            return text
        except ValueError:
            name = {bool: "a boolean (0/1)", int: "an integer", float: "a finite number"}.get(kind, str(kind))
            raise self.error(f"{text!r} is not {name}", section, key) from None

    def check_safe(self, section: str, key: str, value: str, token: bool = False) -> str:
        """`value` unchanged, or an error if it could inject a LAMMPS command (or, as a `token`, holds whitespace)."""
        if any(ch in UNSAFE_CHARACTERS or not (ch.isprintable() or ch == "\t") for ch in value):
            raise self.error(f"{value!r} holds a character LAMMPS would interpret ({UNSAFE_NAMES}) or a "
                             f"control character", section, key)
        if token and (not value or any(ch.isspace() for ch in value)):
            raise self.error(f"{value!r} must be one word (no spaces)", section, key)
        return value

    def lines(self) -> dict[tuple[str, str], int]:
        """(SECTION, lower-case key) → the deck line it was given on (not for `-k` overrides)."""
        return {(sec, k): rv.line for sec, keys in self.sections.items() for k, rv in keys.items() if rv.line}

    def items(self, section: str):
        """All (key as written, RawValue) pairs of a section, marking them used."""
        for lkey, raw in self.sections.get(section, {}).items():
            self._used.add((section, lkey))
            yield self._key_case[(section, lkey)], raw

    def check_unused(self, known_sections) -> None:
        for section, keys in self.sections.items():
            if section not in known_sections:
                first = min((r.line for r in keys.values() if r.line), default=None)
                raise DeckError(f"unknown section [{section}]", self.path, first)
            for lkey in keys:
                if (section, lkey) not in self._used:
                    raise self.error("unknown key", section, self._key_case[(section, lkey)])


# ----------------------------------------------------------------------------------------------
# Section dataclasses


@dataclass(frozen=True)
class BispectrumSettings:
    """[BISPECTRUM]: the `compute snap` descriptor (FitSNAP keys and defaults)."""

    types: tuple[str, ...]
    twojmax: int
    rcutfac: float
    rfac0: float
    rmin0: float
    wj: tuple[float, ...]
    radelem: tuple[float, ...]
    bzeroflag: bool
    quadraticflag: bool
    chemflag: bool
    wselfallflag: bool
    bnormflag: bool
    switchflag: bool
    switchinnerflag: bool
    sinner: tuple[float, ...]
    dinner: tuple[float, ...]

    @property
    def numtypes(self) -> int:
        return len(self.types)

    @property
    def blist(self) -> list[tuple[int, int, int]]:
        """(j1, j2, j) triples of the linear bispectrum components, in LAMMPS' order."""
        out = []
        for j1 in range(self.twojmax + 1):
            for j2 in range(j1 + 1):
                for j in range(abs(j1 - j2), min(self.twojmax, j1 + j2) + 1, 2):
                    if j >= j1:
                        out.append((j1, j2, j))
        return out

    @property
    def n_linear(self) -> int:
        """Linear bispectrum components per element (times numtypes³ with chemflag)."""
        n = len(self.blist)
        return n * self.numtypes ** 3 if self.chemflag else n

    @property
    def ncoeff(self) -> int:
        """Descriptor columns per element that `compute snap` returns (linear + quadratic)."""
        n = self.n_linear
        return n + n * (n + 1) // 2 if self.quadraticflag else n

    def coefficient_labels(self) -> list[str]:
        """Labels of one element's coefficients as FitSNAP writes them: B[0] then B[i, j1, j2, j]."""
        lin = [f"B[{i}, {j1}, {j2}, {j}]" for i, (j1, j2, j) in enumerate(self.blist * (self.numtypes ** 3 if self.chemflag else 1), 1)]
        labels = ["B[0]"] + lin
        if self.quadraticflag:
            idx = len(lin) + 1
            for a, b in combinations_with_replacement(range(len(lin)), 2):
                labels.append(f"B[{idx}] = B{a + 1}*B{b + 1}")
                idx += 1
        return labels

    def duplicate_groups(self) -> tuple[int, ...]:
        """A label for each of one element's `compute snap` columns (linear, then quadratic); columns with equal
        labels are identical for every configuration.

        With chemflag, column (e1, e2, e3; j1, j2, j) couples element e1's U_j1 and e2's U_j2 into j and contracts
        with e3's U_j (LAMMPS' SNA::compute_bi). The bispectrum is unchanged by permuting (j1, e1), (j2, e2),
        (j, e3) together (up to (j+1) factors, which are 1 here), so within the stored j ≥ j1 ≥ j2 it equals
        (e2, e1, e3) when j1 = j2, (e3, e2, e1) when j = j1, every permutation when all three are equal, with or
        without bnormflag. A quadratic column B_k·B_l (½B_k² on the diagonal) repeats its factors' labels.
        Without chemflag every label is distinct. pair_style snap's forces assume equal coefficients on equal
        columns (its Y array takes one β per group); the fit ties them.
        """
        from itertools import permutations, product

        blist = self.blist
        if not self.chemflag:
            linear = list(range(len(blist)))
        else:
            n, index, linear = self.numtypes, {}, []
            for triple in product(range(n), repeat=3):
                for k, (j1, j2, j) in enumerate(blist):
                    e1, e2, e3 = triple
                    same = {triple, (e2, e1, e3) if j1 == j2 else triple, (e3, e2, e1) if j == j1 else triple}
                    if j1 == j2 == j:
                        same = set(permutations(triple))
                    linear.append(index.setdefault((min(same), k), len(index)))
        labels = list(linear)
        if self.quadraticflag:
            index = {}
            for a, b in combinations_with_replacement(range(len(linear)), 2):
                key = (min(linear[a], linear[b]), max(linear[a], linear[b]), a == b)
                labels.append(len(linear) + index.setdefault(key, len(index)))
        return tuple(labels)

    def compute_snap_args(self) -> str:
        """Keyword tail for `compute snap` (after rcutfac rfac0 twojmax radelem... wj...)."""
        args = [f"{self.rcutfac!r}", f"{self.rfac0!r}", str(self.twojmax)]
        args += [repr(r) for r in self.radelem] + [repr(w) for w in self.wj]
        args += [f"rmin0 {self.rmin0!r}", f"bzeroflag {int(self.bzeroflag)}",
                 f"quadraticflag {int(self.quadraticflag)}", f"switchflag {int(self.switchflag)}",
                 f"bnormflag {int(self.bnormflag)}", f"wselfallflag {int(self.wselfallflag)}"]
        if self.chemflag:
            args.append(f"chem {self.numtypes} " + " ".join(str(i) for i in range(self.numtypes)))
        if self.switchinnerflag:
            args.append("switchinnerflag 1 sinner " + " ".join(map(repr, self.sinner))
                        + " dinner " + " ".join(map(repr, self.dinner)))
        return " ".join(args)


STRESS_COMPONENTS = {"all": (1.0,) * 6, "diagonal": (1.0, 1.0, 1.0, 0.0, 0.0, 0.0)}  # Voigt xx yy zz yz xz xy


@dataclass(frozen=True)
class CalculatorSettings:
    """[CALCULATOR]: which rows enter the fit."""

    calculator: str = "LAMMPSSNAP"
    energy: bool = True
    force: bool = True
    stress: bool = True
    nonlinear: bool = False
    # "diagonal": fit σ_xx, σ_yy, σ_zz only (data whose shear stresses are unreliable); all six are still reported
    stress_components: str = "all"

    @property
    def stress_mask(self) -> tuple[float, ...]:
        """Per Voigt component (xx yy zz yz xz xy): 1 if it enters the fit."""
        return STRESS_COMPONENTS[self.stress_components]


@dataclass(frozen=True)
class SolverSettings:
    """[SOLVER] (+ [RIDGE]): the fitting method."""

    solver: str = "SVD"
    alpha: float = 1e-6       # ridge penalty, [RIDGE] alpha
    rcond: float = 1e-13      # singular values below rcond*max are dropped (FitSNAP's lstsq cutoff)
    compute_testerrs: bool = True
    detailed_errors: bool = True


@dataclass(frozen=True)
class ScraperSettings:
    """[SCRAPER]: the data format and the unit its stresses are in."""

    scraper: str = "JSON"
    stress_unit: str = "bar"


@dataclass(frozen=True)
class GroupSettings:
    """One [GROUPS] row: split sizes (fractions < 1 or counts) and row weights."""

    name: str
    training_size: float
    testing_size: float
    eweight: float
    fweight: float
    vweight: float


@dataclass(frozen=True)
class GroupsSettings:
    groups: tuple[GroupSettings, ...]
    smartweights: bool = False
    random_sampling: bool = False
    random_seed: int = 0


@dataclass(frozen=True)
class ReferenceSettings:
    """[REFERENCE]: the pair style subtracted from the targets and overlaid in the `.mod`."""

    units: str = "metal"
    atom_style: str = "atomic"
    pair_style: str = "zero 10.0"
    pair_coeffs: tuple[str, ...] = ("* * ",)

    @property
    def commands(self) -> list[str]:
        return [f"pair_style {self.pair_style}"] + [f"pair_coeff {c}" for c in self.pair_coeffs]


@dataclass(frozen=True)
class OutputSettings:
    """[OUTFILE] + [EXTRAS]: output names (relative to the current directory, like FitSNAP)."""

    potential: str = "fitsnap_potential"
    metrics: str = "fitsnap_metrics.md"
    dump_descriptors: bool = False
    dump_truth: bool = False
    dump_weights: bool = False
    dump_dataframe: bool = False
    descriptors_file: str = "Descriptors.npy"
    truth_file: str = "Truth-Ref.npy"
    weights_file: str = "Weights.npy"
    dataframe_file: str = "FitSNAP.df"


@dataclass(frozen=True)
class NetworkSettings:
    """[PYTORCH]: a per-atom network E_i = NN(B_i) trained on energies and forces (FitSNAP's keys + ours).

    As in FitSNAP, `energy_weight` and `force_weight` are given together or not at all: given, they are the loss
    weights of every configuration (overriding the group weights); absent, each configuration's group
    eweight/fweight are the loss weights. The loss is Σ w_E·(ΔE/N)² + w_F·mean(ΔF²) (+ stress_weight·ΔP², P in
    GPa, times the group vweight when the group weights are used).
    """

    hidden: tuple[int, ...] = (32, 32)   # from layer_sizes = num_desc 32 32 1
    activation: str = "tanh"             # tanh | sigmoid | relu (what LAMMPS' mliap model nn implements)
    learning_rate: float = 5e-3
    num_epochs: int = 300
    batch_size: int = 4                  # configurations per batch
    energy_weight: float | None = None   # with force_weight: global loss weights overriding the group weights
    force_weight: float | None = None
    stress_weight: float = 0.0           # loss weight of (stress component error in GPa)²; 0: stresses are
                                         # predicted and reported but not fitted
    seed: int = 0
    validation_fraction: float = 0.1     # of the training configurations, held out for early stopping
    training_fraction: float | None = None  # FitSNAP's global split: overrides the groups' train/test fractions
    shuffle_flag: bool = True            # shuffle the training configurations every epoch (FitSNAP's default)
    multi_element_option: int = 2        # 2: one network per element; 1: one network shared by all (FitSNAP's 1)
    patience: int = 50                   # epochs without validation improvement before stopping (0: never)
    save_state_output: str = "FitTorchModel"
    save_state_input: str = ""
    checkpoint: str = ""                 # file to checkpoint to every save_freq epochs (resumes if present)
    save_freq: int = 10


ACTIVATIONS = ("tanh", "sigmoid", "relu")


@dataclass(frozen=True)
class PropertiesSettings:
    """[PROPERTIES]: simulated properties of the fitted potential, run right after the fit."""

    system: str                       # si | gan | lgps
    properties: tuple[str, ...] = ()  # empty: the system's default list
    quick: bool = False
    out: str = ""                     # default <potential>_props.json
    reference: Path | None = None     # reference values (JSON), relative to the deck's folder


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


@dataclass(frozen=True)
class Settings:
    """Everything a fit needs, built from one deck."""

    deck: Path
    bispectrum: BispectrumSettings
    calculator: CalculatorSettings
    solver: SolverSettings
    scraper: ScraperSettings
    data_path: Path
    groups: GroupsSettings
    eshift: dict = field(default_factory=dict)
    reference: ReferenceSettings = ReferenceSettings()
    output: OutputSettings = OutputSettings()
    network: NetworkSettings | None = None  # set when [SOLVER] solver = PYTORCH
    properties: PropertiesSettings | None = None
    lines: dict = field(default_factory=dict, compare=False, repr=False)  # (SECTION, lower key) → deck line
    notes: tuple[str, ...] = ()  # accepted FitSNAP keys that change nothing here, said once in the log

    def in_folder(self, out_dir: "str | Path") -> "Settings":
        """The same settings with every relative output name ([OUTFILE], [PYTORCH] files, [PROPERTIES] out) placed
        in `out_dir` instead of the current folder."""
        def place(name: str) -> str:
            return name if not name or Path(name).is_absolute() else str(Path(out_dir) / name)

        out = self.output
        output = replace(out, potential=place(out.potential), metrics=place(out.metrics),
                         descriptors_file=place(out.descriptors_file), truth_file=place(out.truth_file),
                         weights_file=place(out.weights_file), dataframe_file=place(out.dataframe_file))
        network = self.network and replace(self.network, save_state_output=place(self.network.save_state_output),
                                           checkpoint=place(self.network.checkpoint))
        props = self.properties and replace(self.properties, out=place(self.properties.out))
        return replace(self, output=output, network=network, properties=props)

    def error(self, message: str, section: str, key: str | None = None) -> DeckError:
        """A DeckError naming this deck, the line of `[section] key` and the key (for checks made after loading)."""
        line = self.lines.get((section, key.lower())) if key else None
        return DeckError(message, self.deck, line, section, key)


KNOWN_SECTIONS = ("BISPECTRUM", "CALCULATOR", "ESHIFT", "SOLVER", "RIDGE", "SCRAPER", "PATH", "OUTFILE",
                  "REFERENCE", "GROUPS", "EXTRAS", "MEMORY", "PROPERTIES", "PYTORCH")
SOLVERS = ("SVD", "RIDGE", "PYTORCH")


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
        save_freq=raw.get(s, "save_freq", int, d.save_freq))
    for key in ("learning_rate", "num_epochs", "batch_size", "save_freq"):
        if getattr(out, key) <= 0:
            raise raw.error("must be > 0", s, key)
    for key in ("energy_weight", "force_weight", "stress_weight"):
        if getattr(out, key) is not None and getattr(out, key) < 0:
            raise raw.error("must be >= 0", s, key)
    for given, missing in (("energy_weight", "force_weight"), ("force_weight", "energy_weight")):
        if getattr(out, given) is not None and getattr(out, missing) is None:
            raise raw.error(f"{given} is given without {missing}: as in FitSNAP, both are given (global weights "
                            "overriding the group weights) or neither (the groups' eweight/fweight)", s, missing)
    if not 0 <= out.validation_fraction < 1:
        raise raw.error("must be in [0, 1)", s, "validation_fraction")
    if out.training_fraction is not None and not 0 < out.training_fraction <= 1:
        raise raw.error("must be in (0, 1]", s, "training_fraction")
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
        overrides = [(sec, key, _text_value(v)) for sec, keys in overrides.items() for key, v in keys.items()]
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
        raise DeckError("energy, force and stress are all off: nothing to fit", deck, None, c)

    s = "SOLVER"
    solver_name = raw.get(s, "solver", str, "SVD").upper()
    if solver_name not in SOLVERS:
        raise raw.error(f"unknown solver {solver_name!r} (known: {', '.join(SOLVERS)})", s, "solver")
    if (solver_name == "PYTORCH") != calculator.nonlinear:
        raise raw.error("solver = PYTORCH and [CALCULATOR] nonlinear = 1 go together", s, "solver")
    if raw.has("PYTORCH") and solver_name != "PYTORCH":
        raise DeckError("[PYTORCH] given but [SOLVER] solver is not PYTORCH", deck, None, "PYTORCH")
    network = _network(raw) if solver_name == "PYTORCH" else None
    alpha = raw.get("RIDGE", "alpha", float, 1e-6)
    if alpha < 0:
        raise raw.error("must be >= 0", "RIDGE", "alpha")
    _per_atom_flags(raw, network is not None)
    rcond = raw.get(s, "rcond", float, 1e-13)
    if not 0 < rcond < 1:
        raise raw.error("must be in (0, 1) (singular values below rcond * max are dropped)", s, "rcond")
    solver = SolverSettings(solver_name, alpha, rcond,
                            raw.get(s, "compute_testerrs", bool, True), raw.get(s, "detailed_errors", bool, True))

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
    scraper = ScraperSettings(scraper_name, stress_unit)

    data_path = deck.parent / raw.get("PATH", "dataPath", str, "JSON")
    raw.get("PATH", "groupFile", str)  # FitSNAP's legacy group file; groups come from [GROUPS]
    if raw.has("PATH", "groupFile"):
        raise raw.error("group files are not supported; list groups in [GROUPS]", "PATH", "groupFile")

    eshift = {}
    for key, rv in list(raw.items("ESHIFT")):
        if key not in bispectrum.types:
            raise DeckError(f"element {key!r} is not in [BISPECTRUM] type", deck, rv.line, "ESHIFT", key)
        eshift[key] = raw.get("ESHIFT", key, float)

    o, e = "OUTFILE", "EXTRAS"
    output_style = raw.get(o, "output_style", str, "SNAP").upper()
    if output_style != "SNAP":
        raise raw.error("only SNAP output is supported", o, "output_style")
    metrics_style = raw.get(o, "metrics_style", str, "MD").upper()
    if metrics_style != "MD":
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
    notes = []
    for key in ("dump_peratom", "dump_perconfig", "dump_configs"):  # FitSNAP's extra dumps (a pickle among them)
        if raw.get(e, key, bool, False):
            notes.append(f"note: [EXTRAS] {key} = 1 is accepted but not written by fitsnap_ext (the metrics "
                         f".md/.csv hold the errors per group)")
    raw.check_safe(o, "potential", output.potential, token=True)
    for key, name in (("metrics", output.metrics), ("descriptors", output.descriptors_file),
                      ("truth", output.truth_file), ("weights", output.weights_file),
                      ("dataframe", output.dataframe_file)):
        raw.check_safe(o, key, name, token=True)

    properties = _properties(raw, deck)
    settings = Settings(deck=deck, bispectrum=bispectrum, calculator=calculator, solver=solver,
                        scraper=scraper, data_path=data_path, groups=_groups(raw), eshift=eshift,
                        reference=_reference(raw), output=output, network=network,
                        properties=properties, lines=raw.lines(), notes=tuple(notes))
    raw.check_unused(KNOWN_SECTIONS)
    _check_output_names(settings)
    return settings


def output_files(settings: Settings) -> list[tuple[str, tuple[str, str]]]:
    """Every file a fit (and its [PROPERTIES] run) writes, with the (SECTION, key) that names it."""
    out, net, props = settings.output, settings.network, settings.properties
    pot = ("OUTFILE", "potential")
    suffixes = (".mliap.model", ".mliap.descriptor", ".mod", ".loss.csv", ".loss.png") if net else \
        (".snapcoeff", ".snapparam", ".mod")
    files = [(f"{out.potential}{suffix}", pot) for suffix in suffixes]
    files += [(out.metrics, ("OUTFILE", "metrics")), (str(Path(out.metrics).with_suffix(".csv")), ("OUTFILE", "metrics"))]
    for flag, name, key in ((out.dump_descriptors, out.descriptors_file, "descriptors"),
                            (out.dump_truth, out.truth_file, "truth"), (out.dump_weights, out.weights_file, "weights"),
                            (out.dump_dataframe, out.dataframe_file, "dataframe")):
        if flag:
            files.append((name, ("OUTFILE", key)))
    if net is not None and net.save_state_output:
        files.append((net.save_state_output, ("PYTORCH", "save_state_output")))
    if props is not None:
        files.append((props.out or f"{out.potential}_props.json", ("PROPERTIES", "out")))
    return files


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
