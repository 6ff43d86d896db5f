"""Typed errors that name where bad input came from; the CLI prints them as one line."""


class FitsnapError(Exception):
    """Base class: anything the user can fix (deck, data, command line, LAMMPS input)."""


def first_line(exc: Exception, limit: int = 300) -> str:
    """An error's first line, cut to fit a table cell or a one-line record."""
    return str(exc).splitlines()[0][:limit] if str(exc) else type(exc).__name__


class DeckError(FitsnapError):
    """A deck (INI) problem: names file, line and key."""

    def __init__(self, message, path=None, line=None, section=None, key=None):
        where = []
        if path:
            where.append(str(path) + (f":{line}" if line else ""))
        if section:
            where.append(f"[{section}]" + (f" {key}" if key else ""))
        self.path, self.line, self.section, self.key = path, line, section, key
        super().__init__((": ".join(where) + ": " if where else "") + message)


class DataError(FitsnapError):
    """A training-data problem: names the file and the configuration."""

    def __init__(self, message, path=None, index=None):
        where = str(path) if path else ""
        if index is not None:
            where += f" (configuration {index})"
        self.path, self.index = path, index
        super().__init__((where + ": " if where else "") + message)


class LammpsError(FitsnapError):
    """LAMMPS refused a command; carries the command and LAMMPS' own message."""
