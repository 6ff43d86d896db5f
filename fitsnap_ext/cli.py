"""Command line: `DECK`, `properties`, `generate`, `study` — argument parsing and error reporting only."""
from __future__ import annotations

import argparse
import os
import sys

from .errors import FitsnapError

SUBCOMMANDS = ("properties", "generate", "study")


def _fit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fitsnap_ext",
        description="Fit a SNAP potential from a FitSNAP-format deck (also: properties | generate | study).")
    parser.add_argument("deck", help="FitSNAP-format input deck (INI)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("-k", "--keyword", nargs=3, action="append", default=[],
                        metavar=("SECTION", "KEY", "VALUE"), help="override a deck value")
    args = parser.parse_args(argv)

    from .config import load_settings
    from .fit import run_fit
    from .parallel import world

    comm = world()
    settings = load_settings(args.deck, [tuple(k) for k in args.keyword])
    run_fit(settings, comm, overwrite=args.overwrite)
    if settings.properties is not None:
        from pathlib import Path

        from .properties import run_properties

        p = settings.properties
        run_properties(Path(f"{settings.output.potential}.mod"), p.system, list(p.properties) or None, p.quick,
                       Path(p.out or f"{settings.output.potential}_props.json"), p.reference, comm)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            name, rest = argv[0], argv[1:]
            if name == "properties":
                from .properties.cli import main as sub
            elif name == "generate":
                from .generate.cli import main as sub
            else:
                from .study import main as sub
            return sub(rest)
        return _fit_main(argv)
    except FitsnapError as exc:
        rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
        if rank == 0:
            print(f"fitsnap_ext: error: {exc}", file=sys.stderr, flush=True)
        return 1
