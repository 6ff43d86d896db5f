"""`python -m fitsnap_ext properties POT.mod --system si|gan|lgps [--quick] [--reference REF.json] --out props.json
[--overwrite]`."""
from __future__ import annotations

from pathlib import Path

from fitsnap_ext.errors import ArgumentParser, FitsnapError, UsageError
from fitsnap_ext.properties.engine import raise_if_failed, run_properties
from fitsnap_ext.properties.systems import ALL_PROPERTIES, custom_system, get_preset, with_run_settings

__all__ = ["main", "run_properties"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m fitsnap_ext properties",
        description="Simulated properties of any LAMMPS potential (a .mod include file with pair_style/"
                    "pair_coeff; atom types 1..n follow the system's element order).")
    p.add_argument("pot", type=Path, help="potential include file (.mod)")
    p.add_argument("--system", help="preset: si, gan or lgps")
    p.add_argument("--structure", type=Path, help="custom structure file (any ASE format) instead of a preset")
    p.add_argument("--elements", nargs="+", help="element order = atom types (custom structure; default: "
                                                   "order of first appearance in the file)")
    p.add_argument("--properties", help=f"comma-separated subset of: {','.join(ALL_PROPERTIES)} "
                                        "(default: the preset's list; eos,elastic,phonons for --structure)")
    p.add_argument("--quick", action="store_true", help="short runs (tests) instead of full (studies)")
    p.add_argument("--reference", type=Path, help="JSON of reference values (e.g. another potential's "
                                                  "props.json): writes <out>_errors.json and .md")
    p.add_argument("--out", type=Path, default=Path("props.json"), help="output JSON (default props.json)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing props.json and its sibling outputs (<stem>_curves.npz, "
                        "<stem>_errors.json/.md, <stem>_files/); without it they are refused")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a run length or size of the mode, e.g. diffusion_prod_ps=50 or "
                        "'diffusion_supercell=2 2 1' (repeatable; names in docs/properties.md)")
    return p


def main(argv: list[str] | None = None, comm=None) -> int:
    """Run the property engine; bad input and failed properties raise (fitsnap_ext.cli reports them)."""
    from fitsnap_ext.parallel import comm_or_world

    args = _parser().parse_args(argv)
    comm = comm_or_world(comm)
    props = [p.strip() for p in args.properties.split(",") if p.strip()] if args.properties else None
    if args.structure is not None:
        base = get_preset(args.system) if args.system else None
        system = custom_system(args.structure, args.elements, base=base,
                               properties=tuple(props or ("eos", "elastic", "phonons")))
    elif args.system:
        system = get_preset(args.system)
    else:
        raise UsageError("give --system (si, gan, lgps) or --structure FILE")
    bad = [item for item in args.set if "=" not in item]
    if bad:
        raise UsageError(f"--set {bad[0]!r}: KEY=VALUE expected")
    system = with_run_settings(system, dict(item.split("=", 1) for item in args.set))
    result = run_properties(args.pot, system, props, args.quick, args.out, args.reference, comm,
                            overwrite=args.overwrite)
    failed = result.get("failed_properties", {})
    if comm.Get_rank() == 0:
        print(f"wrote {args.out}" + (f" (without {', '.join(failed)})" if failed else ""), flush=True)
    try:
        raise_if_failed(result)
    except FitsnapError as exc:
        exc.on_every_rank = True  # every rank holds the same props
        raise
    return 0
