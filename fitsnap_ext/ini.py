"""The FitSNAP-format deck file (INI): sections and keys with the line each was given on, typed reads with errors
that name file, line, section and key, `-k SECTION KEY VALUE` overrides, and the check that no value can inject a
LAMMPS command. What the keys mean is `config`'s business."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DeckError

# Characters that would let a value start a new LAMMPS command or be rewritten by LAMMPS' input parser when it is
# written into a LAMMPS command or an include file: line breaks, `&` continuation, `$` variables, quotes, comments.
UNSAFE_CHARACTERS = frozenset("\n\r\0&$\"'`#;\\")
UNSAFE_NAMES = "newline, & $ quotes # ; \\"


@dataclass(frozen=True)
class RawValue:
    value: str
    line: int | None  # None for command-line overrides


def text_value(value) -> str:
    """A Python value as deck text: True → 1, [4.7, 4.7] → '4.7 4.7'."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return " ".join(text_value(v) for v in value)
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
                raw.override(name, str(key), text_value(value))
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


