"""Typed errors that name where bad input came from; the CLI prints them as one line."""
import argparse


class FitsnapError(Exception):
    """Base class: anything the user can fix (deck, data, command line, LAMMPS input).

    `on_every_rank` is set when `parallel.collective` has raised the error on every MPI rank together, so one
    line from rank 0 reports it and no rank needs to be aborted.
    """

    on_every_rank = False


class UsageError(FitsnapError):
    """A command-line argument problem."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError (reported as one line, exit 1) instead of printing usage and exiting 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


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
