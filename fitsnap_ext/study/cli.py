"""`python -m fitsnap_ext study STUDY_DECK`: the study subcommand's arguments. Errors are raised (typed, from
fitsnap_ext.errors); the top-level command line reports them."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..errors import ArgumentParser, FitsnapError
from .deck import read_study, repo_relative
from .stages import log, run_study


def _parser() -> ArgumentParser:
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
    return parser


def main(argv: list[str]) -> int:
    """Run (or with --check, validate) the study a deck describes; 0 on success."""
    args = _parser().parse_args(argv)
    from ..parallel import world

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
