"""Command line: `DECK`, `properties`, `generate`, `study` — argument parsing and the one error reporter.

Every subcommand raises its errors; `main` reports them the same way: one line
`fitsnap_ext: error: <where>: <what>` on stderr, exit status 1 for bad input and 2 for a bug (with the
traceback). Under MPI no rank is left waiting: an error raised on every rank together (`parallel.collective`)
is printed by rank 0 and every rank exits 1; any other error stops the whole job (MPI_Abort).
"""
from __future__ import annotations

import sys
import time
import traceback

from .errors import ArgumentParser, FitsnapError

SUBCOMMANDS = ("properties", "generate", "study")
EXIT_BAD_INPUT, EXIT_BUG = 1, 2


def _fit_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="python -m fitsnap_ext",
        description="Fit a SNAP potential from a FitSNAP-format deck (also: properties | generate | study).")
    parser.add_argument("deck", help="FitSNAP-format input deck (INI)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("-k", "--keyword", nargs=3, action="append", default=[],
                        metavar=("SECTION", "KEY", "VALUE"), help="override a deck value")
    args = parser.parse_args(argv)

    from .config import load_settings
    from .pipeline import run_deck
    from .parallel import collective, world

    comm = world()
    with collective(comm, "reading the deck"):
        settings = load_settings(args.deck, [tuple(k) for k in args.keyword])
    run_deck(settings, comm, overwrite=args.overwrite)
    return 0


def _subcommand(name: str):
    if name == "properties":
        from .properties.cli import main
    elif name == "generate":
        from .generate.cli import main
    else:
        from .study import main
    return main


def _rank_and_size() -> tuple[int, int]:
    """This process' MPI rank and the world size (0, 1 when MPI was never loaded)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return 0, 1
    return mpi.COMM_WORLD.rank, mpi.COMM_WORLD.size


def report(exc: FitsnapError) -> int:
    """Print the one error line and stop this rank without leaving another one waiting; the exit status."""
    rank, size = _rank_and_size()
    line = f"fitsnap_ext: error: {str(exc).strip() or type(exc).__name__}".replace("\n", " ")
    if exc.on_every_rank or size == 1:
        if rank == 0:
            print(line, file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    # raised on this rank alone (or on all, outside a collective block): rank 0 reports first; another rank
    # waits a moment, so that an error rank 0 also has is printed once before MPI_Abort stops the job
    if rank != 0:
        time.sleep(1.0)
    print(line + (f" (rank {rank})" if rank else ""), file=sys.stderr, flush=True)
    sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(EXIT_BAD_INPUT)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["--version"]:
            from importlib.metadata import version

            print(f"fitsnap_ext {version('fitsnap_ext')}")
            return 0
        if argv and argv[0] in SUBCOMMANDS:
            return _subcommand(argv[0])(argv[1:])
        return _fit_main(argv)
    except FitsnapError as exc:
        return report(exc)
    except KeyboardInterrupt:
        raise
    except Exception:
        rank, size = _rank_and_size()
        traceback.print_exc()
        print(f"fitsnap_ext: error: internal error{f' on rank {rank}' if size > 1 else ''} (a bug: please report "
              f"the traceback above)", file=sys.stderr, flush=True)
        if size > 1:
            sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(EXIT_BUG)
        return EXIT_BUG
