"""``python -m fitsnap_ext generate GEN_DECK``: argument parsing (errors are reported by fitsnap_ext.cli).

Works serially, under ``mpirun -np N`` (in-process labelers are spread over ranks) and in batch jobs
(``time_limit`` in [GENERATE] stops cleanly with exit status 75; rerunning continues).
"""
from __future__ import annotations

from fitsnap_ext.errors import ArgumentParser, UsageError


def main(argv=None) -> int:
    p = ArgumentParser(prog="fitsnap_ext generate",
                       description="Sample configurations and label them into extended XYZ files "
                                   "(resumable; see docs/generate.md).")
    p.add_argument("deck", help="generator deck (INI)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--check", action="store_true", help="parse and validate the deck, then stop")
    p.add_argument("--upto", type=int, default=0, metavar="K",
                   help="this pass labels only configurations with index < K in each group (interleaves long "
                        "jobs: run with K = 5, 10, 20, ... so that every group gets frames early; the files "
                        "are the same as those of one full run)")
    p.add_argument("--groups", metavar="A,B,...",
                   help="label only these groups (comma-separated; the other groups' inputs are not read); the "
                        "files are the same as those of a full run")
    p.add_argument("--prepare", action="store_true",
                   help="CP2K: write the input of every configuration still to label into its run folder and list "
                        "the folders in <workdir>/prepared.txt, without labelling (run them elsewhere, e.g. as an "
                        "array job; a later run parses the finished outputs instead of rerunning them)")
    args = p.parse_args(argv)
    from fitsnap_ext.parallel import world

    comm = world()  # mpi4py first: libmpi before liblammps
    from fitsnap_ext.generate.deck import load_deck
    from fitsnap_ext.generate.runner import run

    rank = comm.Get_rank()
    deck = load_deck(args.deck, args.groups.split(",") if args.groups else None)
    if args.quiet:
        deck.generate.progress = False
    if args.upto < 0:
        raise UsageError("--upto must be >= 0")
    deck.generate.upto = args.upto
    deck.generate.prepare = args.prepare
    if args.check:
        if rank == 0:
            print(f"{args.deck}: OK ({len(deck.groups)} groups, labeler {deck.labeler.type})")
        return 0
    return run(deck, comm)
