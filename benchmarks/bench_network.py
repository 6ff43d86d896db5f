"""Neural-network SNAP: training epoch time and peak memory on the Si sets; MD speed of the exported network.

    python benchmarks/bench_network.py [--sets zuo paper] [--ranks 1 2] [--epochs 3] [--md-atoms 1728]
                                       [--md-steps 200] [--repeats 3] [--nn-pot DIR/Si_nn_pot]
                                       [--twojmax-scan 4 6 8 10] [--out results.md]

1. Training: `python -m fitsnap_ext` with solver PYTORCH on the Zuo set (input_files/in.si_nn) and on the Si
   paper set (input_files/in.si switched to PYTORCH, ≈72k atoms, 2J=8), a few epochs, under mpirun -np R;
   reports s/epoch, the per-atom-descriptor storage and the peak resident memory per rank (ru_maxrss).
2. MD speed: one process runs NVE MD on the same diamond Si supercell (≈5 % random displacements) with the
   exported network (pair_style mliap model nn), linear SNAP and quadratic SNAP fitted with the same 2J=8 /
   rcutfac (input_files/in.si_zuo, in.si_quadratic), and the same linear SNAP through `mliap model linear`
   (the network's descriptor path without the network), and the linear SNAP tallying energy every step (then it
   computes B_i every step, as every model whose forces need B_i must: the floor of quadratic SNAP and networks),
   interleaved `--repeats` times (fastest kept), and reports katom-step/s and the ratios to linear SNAP (target:
   a 2×32 network ≥ 0.7× linear SNAP).
3. `--twojmax-scan`: the same model kinds as weight-independent stand-ins at other 2J (`standin_mods`).
Wall-clock numbers on this machine (2 shared cores: expect noise of ±10 %).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INPUT = REPO / "input_files"
PYTORCH_KEYS = ["-k", "SOLVER", "solver", "PYTORCH", "-k", "CALCULATOR", "nonlinear", "1"]


def mpirun(n):
    exe = Path(sys.executable).with_name("mpirun")
    return [str(exe), "-np", str(n)] if n > 1 else []


def run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout, time.perf_counter() - t0


def train_bench(name, deck, extra, ranks, epochs, workdir):
    cmd = mpirun(ranks) + [sys.executable, "-m", "fitsnap_ext", str(deck), "--overwrite",
                           "-k", "PYTORCH", "num_epochs", str(epochs), "-k", "PYTORCH", "patience", "0"] + extra
    out, wall = run(cmd, workdir)
    m = re.search(r"trained (\d+) epochs in ([\d.]+) s \(([\d.]+) s/epoch\).*peak memory (\d+) MiB", out)
    d = re.search(r"(\d+) atoms, (\d+) neighbour pairs, (\d+) descriptors.*?; ([\d.]+) MiB stored.* in ([\d.]+) s", out)
    return dict(set=name, ranks=ranks, epoch_s=float(m.group(3)), peak_mib=int(m.group(4)), atoms=int(d.group(1)),
                pairs=int(d.group(2)), stored_mib=float(d.group(4)), descriptors_s=float(d.group(5)), wall_s=wall)


def md_speed(mod: Path, natoms_target: int, steps: int, thermo_every: int = 100) -> float:
    """katom-step/s of NVE MD with the potential in `mod` (run from its folder) on diamond Si; the energy is
    tallied every `thermo_every` steps (pair snap computes the bispectrum B_i only on those steps)."""
    sys.path.insert(0, str(REPO))
    from fitsnap_ext.lammps_session import lammps_module

    lammps = lammps_module()
    n = max(1, round((natoms_target / 8) ** (1 / 3)))
    cwd = os.getcwd()
    os.chdir(mod.parent)
    try:
        lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        for c in ["units metal", "atom_style atomic", "lattice diamond 5.431", f"region b block 0 {n} 0 {n} 0 {n}",
                  "create_box 1 b", "create_atoms 1 box", "mass 1 28.0855",
                  "displace_atoms all random 0.05 0.05 0.05 4321", f"include {mod.name}",
                  "velocity all create 300 12345", "fix 1 all nve", "timestep 0.0005", f"thermo {thermo_every}",
                  "run 10"]:
            lmp.command(c)
        natoms = lmp.get_natoms()
        t0 = time.perf_counter()
        lmp.command(f"run {steps}")
        dt = time.perf_counter() - t0
        lmp.close()
    finally:
        os.chdir(cwd)
    return natoms * steps / dt / 1000.0


def network_shape(mod: Path) -> str:
    """'55-32-32-1 tanh' from the NET line of the network's .mliap.model next to `mod`."""
    model = mod.with_name(mod.name[:-len(".mod")] + ".mliap.model")
    net = next(l.split() for l in model.read_text().splitlines() if l.startswith("NET"))
    sizes = [net[1]] + net[4::2]
    return "-".join(sizes) + " " + net[3]


def mliap_linear_mod(deck: Path, snapcoeff: Path, folder: Path) -> Path:
    """The linear SNAP of `snapcoeff` (fitted from `deck`) as `pair_style mliap model linear ... descriptor sna`:
    the same descriptor path as the network, so its speed separates mliap's bispectrum from the network."""
    sys.path.insert(0, str(REPO))
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.export.mliap import descriptor_text

    bs = load_settings(deck).bispectrum
    rows = [l.split("#")[0].split() for l in snapcoeff.read_text().splitlines()]
    rows = [r for r in rows if r]
    nelem, ncoeff = map(int, rows[0])
    coef = [r[0] for r in rows[2:2 + ncoeff]]
    (folder / "lin.mliap.model").write_text(f"{nelem} {ncoeff}\n" + "\n".join(coef) + "\n")
    (folder / "lin.mliap.descriptor").write_text(descriptor_text(bs))
    mod = folder / "lin_mliap.mod"
    mod.write_text("pair_style mliap model linear lin.mliap.model descriptor sna lin.mliap.descriptor\n"
                   f"pair_coeff * * {' '.join(bs.types)}\n")
    return mod


def standin_mods(deck: Path, twojmax: int, folder: Path) -> tuple[dict[str, Path], int]:
    """Cost stand-ins at `twojmax` (the deck's other descriptor settings): linear and quadratic SNAP with tiny
    random coefficients and a 2×32 tanh network with tiny random weights. Their forces are ≈ 0, so every
    stand-in runs the same free-flight trajectory and the timings differ only by what each pair style computes,
    which does not depend on the values of the weights (checked against the fitted potentials at 2J=8)."""
    import dataclasses

    import numpy as np

    sys.path.insert(0, str(REPO))
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.export.files import write_all
    from fitsnap_ext.export.mliap import mliap_files
    from fitsnap_ext.export.snap import snap_files

    settings = load_settings(deck)
    rng = np.random.default_rng(twojmax)
    mods = {}
    for name, quadratic in (("linear", False), ("quadratic", True)):
        bs = dataclasses.replace(settings.bispectrum, twojmax=twojmax, quadraticflag=quadratic)
        coef = 1e-6 * rng.standard_normal(bs.numtypes * (bs.ncoeff + (0 if bs.bzeroflag else 1)))
        write_all(snap_files(str(folder / f"{name}{twojmax}"), coef, bs, settings.reference))
        mods[name] = folder / f"{name}{twojmax}.mod"
    bs = dataclasses.replace(settings.bispectrum, twojmax=twojmax, quadraticflag=False)
    sizes = [bs.n_linear, 32, 32, 1]
    layers = [(1e-3 * rng.standard_normal((nout, nin)), np.zeros(nout)) for nin, nout in zip(sizes, sizes[1:])]
    ones = np.ones((1, bs.n_linear))
    write_all(mliap_files(str(folder / f"nn{twojmax}"), [layers], 0 * ones, ones, "tanh", bs, settings.reference))
    mods["nn"] = folder / f"nn{twojmax}.mod"
    return mods, bs.n_linear


def twojmax_scan(twojmaxes, natoms: int, steps: int, repeats: int, folder: Path) -> list[str]:
    """Markdown table: speed of each model kind relative to linear SNAP at each 2J (stand-ins, fastest of
    `repeats` interleaved timings), with the floor: linear SNAP computing B_i every step."""
    kinds = (("linear SNAP", "linear", 100), ("linear SNAP, B_i every step", "linear", 1),
             ("quadratic SNAP", "quadratic", 100), ("NN 2×32 tanh", "nn", 100))
    lines = [f"## Speed relative to linear SNAP by 2J (stand-in potentials on one free-flight trajectory: "
             f"{natoms}-atom diamond Si target, {steps} steps, 1 core, fastest of {repeats}; units metal)", "",
             "| 2J | descriptors | linear SNAP (katom-step/s) | " + " | ".join(k for k, *_ in kinds[1:]) + " |",
             "|--:|--:|--:|" + "--:|" * (len(kinds) - 1)]
    for twojmax in twojmaxes:
        mods, ndesc = standin_mods(INPUT / "in.si_zuo", twojmax, folder)
        runs = {label: [] for label, *_ in kinds}
        for _ in range(repeats):
            for label, kind, every in kinds:
                runs[label].append(md_speed(mods[kind], natoms, steps, every))
                print(f"2J={twojmax}", label, f"{runs[label][-1]:.2f} katom-step/s", flush=True)
        best = {label: max(v) for label, v in runs.items()}
        lin = best["linear SNAP"]
        lines.append(f"| {twojmax} | {ndesc} | {lin:.2f} | "
                     + " | ".join(f"{best[k] / lin:.2f}" for k, *_ in kinds[1:]) + " |")
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["zuo", "paper"], choices=["zuo", "paper"])
    ap.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--md-atoms", type=int, default=1728)
    ap.add_argument("--md-steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="MD timings per potential (the fastest is kept)")
    ap.add_argument("--nn-pot", help="prefix of an exported network (else one is fitted briefly on Zuo)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-md", action="store_true")
    ap.add_argument("--twojmax-scan", nargs="+", type=int, default=[],
                    help="also time weight-independent stand-ins of each model kind at these 2J")
    ap.add_argument("--out")
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_train:
            rows = []
            for name in args.sets:
                for r in args.ranks:
                    wd = tmp / f"train_{name}_{r}"
                    wd.mkdir()
                    if name == "zuo":
                        rows.append(train_bench("Zuo Si (in.si_nn)", INPUT / "in.si_nn", [], r, args.epochs, wd))
                    else:
                        extra = PYTORCH_KEYS + ["-k", "CALCULATOR", "stress", "0", "-k", "OUTFILE", "potential",
                                                "Si_paper_nn", "-k", "PYTORCH", "save_state_output", ""]
                        rows.append(train_bench("Si paper (in.si → PYTORCH)", INPUT / "in.si", extra, r,
                                                args.epochs, wd))
                    print(rows[-1], flush=True)
            lines += ["## Training (2×32 tanh, 2J=8, float64)", "",
                      "| set | ranks | atoms | pairs | dgrad+B stored (MiB, all ranks) | descriptors (s) | s/epoch | "
                      "peak RSS per rank (MiB) |", "|:--|--:|--:|--:|--:|--:|--:|--:|"]
            lines += [f"| {r['set']} | {r['ranks']} | {r['atoms']} | {r['pairs']} | {r['stored_mib']:.0f} | "
                      f"{r['descriptors_s']:.1f} | {r['epoch_s']:.3f} | {r['peak_mib']} |" for r in rows]
            lines.append("")
        if not args.skip_md:
            md = tmp / "md"
            md.mkdir()
            run([sys.executable, "-m", "fitsnap_ext", str(INPUT / "in.si_zuo")], md)
            run([sys.executable, "-m", "fitsnap_ext", str(INPUT / "in.si_quadratic")], md)
            if args.nn_pot:
                nn_mod = Path(args.nn_pot + ".mod").resolve()
            else:
                run([sys.executable, "-m", "fitsnap_ext", str(INPUT / "in.si_nn"), "-k", "PYTORCH", "num_epochs", "5"],
                    md)
                nn_mod = md / "Si_nn_pot.mod"
            speeds = {}
            lin_mliap = mliap_linear_mod(INPUT / "in.si_zuo", md / "Si_zuo_pot.snapcoeff", md)
            # the second row is the cost floor of any model whose forces need B_i every step (quadratic, NN):
            # linear SNAP with its energy tallied every step computes B_i every step too
            potentials = (("linear SNAP (2J=8)", md / "Si_zuo_pot.mod", 100),
                          ("linear SNAP, energy every step (B_i every step)", md / "Si_zuo_pot.mod", 1),
                          ("the same linear SNAP via mliap model linear", lin_mliap, 100),
                          ("quadratic SNAP (2J=8)", md / "Si_zuo_quad_pot.mod", 100),
                          (f"NN {network_shape(nn_mod)} (mliap nn, 2J=8)", nn_mod, 100))
            runs = {label: [] for label, *_ in potentials}
            for _ in range(args.repeats):  # interleaved, so a change of machine load hits every potential alike
                for label, mod, every in potentials:
                    runs[label].append(md_speed(mod, args.md_atoms, args.md_steps, every))
                    print(label, f"{runs[label][-1]:.2f} katom-step/s", flush=True)
            speeds = {label: max(v) for label, v in runs.items()}
            lin = speeds["linear SNAP (2J=8)"]
            lines += [f"## MD speed (NVE, {args.md_atoms}-atom diamond Si target, {args.md_steps} steps, 1 core, "
                      f"fastest of {args.repeats})", "",
                      "| potential | katom-step/s | ratio to linear SNAP |", "|:--|--:|--:|"]
            lines += [f"| {k} | {v:.2f} | {v / lin:.2f} |" for k, v in speeds.items()]
        if args.twojmax_scan:
            scan = tmp / "scan"
            scan.mkdir()
            lines += [""] + twojmax_scan(args.twojmax_scan, args.md_atoms, args.md_steps, args.repeats, scan)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
