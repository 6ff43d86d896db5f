"""MD cost of an ensemble exported as one `mliap model nn` network, against one member and linear SNAP.

    python benchmarks/bench_ensemble.py [--twojmax 6] [--sizes 1 3 5] [--md-atoms 512] [--md-steps 300]
                                        [--repeats 3] [--out results.md]

Stand-in potentials at the deck's (in.si_zuo) descriptor settings but `--twojmax`: linear SNAP with tiny random
coefficients, and K members of 2×32 tanh with tiny random weights and their own standardisation, combined by
`fitsnap_ext.export.ensemble` (first layer stacked, hidden layers block-diagonal, output averaging). Every
stand-in's forces are ≈ 0, so all run the same free-flight trajectory and the timings differ only by what each
pair style computes, which does not depend on the weights' values (as bench_network.py's `standin_mods`). NVE
on diamond Si, one core, interleaved repeats; the least CPU (and wall) time per atom-step kept. Units metal.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def md_cost(mod: Path, natoms_target: int, steps: int) -> tuple[float, float]:
    """(CPU, wall) microseconds per atom-step of NVE MD on rattled diamond Si with the potential in `mod` (run
    from its folder; energy tallied every 100 steps). CPU time of this process: on a shared machine it moves
    far less with the other jobs' load than wall time does."""
    from fitsnap_ext.lammps_session import lammps_module, working_directory

    lammps = lammps_module()
    n = max(1, round((natoms_target / 8) ** (1 / 3)))
    with working_directory(mod.parent):
        lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        for c in ["units metal", "atom_style atomic", "lattice diamond 5.431", f"region b block 0 {n} 0 {n} 0 {n}",
                  "create_box 1 b", "create_atoms 1 box", "mass 1 28.0855",
                  "displace_atoms all random 0.05 0.05 0.05 4321", f"include {mod.name}",
                  "velocity all create 300 12345", "fix 1 all nve", "timestep 0.0005", "thermo 100", "run 10"]:
            lmp.command(c)
        natoms = lmp.get_natoms()
        c0, t0 = time.process_time(), time.perf_counter()
        lmp.command(f"run {steps}")
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        lmp.close()
    return cpu / (natoms * steps) * 1e6, wall / (natoms * steps) * 1e6


def standins(twojmax: int, sizes: list[int], folder: Path) -> dict[str, Path]:
    """{label: .mod}: linear SNAP and the K-member ensembles (K = 1 is one member as it is exported alone)."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.export.ensemble import Member, ensemble_mliap_files
    from fitsnap_ext.export.files import write_all
    from fitsnap_ext.export.mliap import mliap_files
    from fitsnap_ext.export.snap import snap_files

    settings = load_settings(REPO / "input_files" / "in.si_zuo")
    bs = dataclasses.replace(settings.bispectrum, twojmax=twojmax, quadraticflag=False)
    rng = np.random.default_rng(twojmax)
    coef = 1e-6 * rng.standard_normal(bs.numtypes * (bs.ncoeff + (0 if bs.bzeroflag else 1)))
    write_all(snap_files(str(folder / "linear"), coef, bs, settings.reference))
    mods = {"linear SNAP (pair snap)": folder / "linear.mod"}
    shape = [bs.n_linear, 32, 32, 1]
    members = [Member([[(1e-3 * rng.standard_normal((o, i)), np.zeros(o)) for i, o in zip(shape, shape[1:])]],
                      rng.normal(size=(1, bs.n_linear)), rng.uniform(0.5, 2.0, size=(1, bs.n_linear)))
               for _ in range(max(sizes))]
    for k in sizes:
        if k == 1:
            m = members[0]
            files = mliap_files(str(folder / "nn1"), m.layers, m.scale0, m.scale1, "tanh", bs, settings.reference)
        else:
            files = ensemble_mliap_files(str(folder / f"nn{k}"), members[:k], "tanh", bs, settings.reference)
        write_all(files)
        mods[f"NN 2×32 tanh, K = {k}" + (" (one member)" if k == 1 else f" (one network {bs.n_linear}-"
                                          f"{32 * k}-{32 * k}-1)")] = folder / f"nn{k}.mod"
    return mods


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twojmax", type=int, default=6)
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 3, 5])
    ap.add_argument("--md-atoms", type=int, default=512)
    ap.add_argument("--md-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mods = standins(args.twojmax, sorted(set(args.sizes) | {1}), Path(tmp))
        runs = {label: [] for label in mods}
        for _ in range(args.repeats):  # interleaved: a change of machine load hits every potential alike
            for label, mod in mods.items():
                runs[label].append(md_cost(mod, args.md_atoms, args.md_steps))
                print(label, "%.2f µs CPU, %.2f µs wall per atom-step" % runs[label][-1], flush=True)
    cpu = {label: min(c for c, _ in v) for label, v in runs.items()}
    wall = {label: min(w for _, w in v) for label, v in runs.items()}
    lin = cpu["linear SNAP (pair snap)"]
    one = next(v for label, v in cpu.items() if "one member" in label)
    lines = [f"## MD cost of ensembles exported as one network (2J={args.twojmax}, NVE, {args.md_atoms}-atom "
             f"diamond Si target, {args.md_steps} steps, 1 core, least of {args.repeats}; units metal)", "",
             "| potential | µs CPU per atom-step | µs wall per atom-step | cost vs one member (CPU) | "
             "cost vs linear SNAP (CPU) |", "|:--|--:|--:|--:|--:|"]
    lines += [f"| {label} | {cpu[label]:.1f} | {wall[label]:.1f} | {cpu[label] / one:.2f} | {cpu[label] / lin:.2f} |"
              for label in cpu]
    lines += ["", "Repeats (µs CPU / wall per atom-step): " + "; ".join(
        f"{label}: " + ", ".join(f"{c:.1f}/{w:.1f}" for c, w in v) for label, v in runs.items()), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
