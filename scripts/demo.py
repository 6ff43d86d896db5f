"""The README's demo in one command: fit the demo potential, compute its properties, set them beside the teacher's.

    python scripts/demo.py [--out DIR] [--properties eos,elastic,...]

1. `python -m fitsnap_ext input_files/in.demo`: a 2J=6 linear SNAP fitted to the 201 silicon configurations of
   input_files/demo/, whose labels come from the Stillinger–Weber (SW) potential (the "teacher").
2. `python -m fitsnap_ext properties Si_demo_pot.mod --system si --quick --reference teacher.json`: the fitted
   potential's properties (quick mode), with an error table against SW's own values
   (input_files/reference/si_sw_teacher.json).
3. Prints SW's a, E, B, C11, C12, C44 beside the fitted potential's and plots them (demo_vs_teacher.png).

Everything is written into DIR (default: out/demo in the repository, an ignored folder); DIR is emptied first
when an earlier demo made it, and refused when it holds anything else.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "input_files" / "reference" / "si_sw_teacher.json"
MARKER = ".fitsnap_demo"
ROWS = (("lattice_constant_A", "lattice constant", "a", "Å", "{:.4f}"),
        ("energy_per_atom_eV", "energy per atom", "E", "eV/atom", "{:.4f}"),
        ("bulk_modulus_GPa", "bulk modulus", "B", "GPa", "{:.1f}"),
        ("C11_GPa", "elastic constant", "C11", "GPa", "{:.1f}"),
        ("C12_GPa", "elastic constant", "C12", "GPa", "{:.1f}"),
        ("C44_GPa", "elastic constant", "C44", "GPa", "{:.1f}"))


def prepare(out: Path) -> None:
    """An empty `out`: made, or emptied when an earlier demo made it; anything else is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            sys.exit(f"demo: error: {out} holds files the demo did not write; give another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by scripts/demo.py: emptied on its next run\n")


def run(args: list[str], out: Path) -> int:
    """`python -m fitsnap_ext ARGS` in `out`, its output passed through; its exit status."""
    print("$ python -m fitsnap_ext " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),  # this checkout's package
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    return subprocess.run([sys.executable, "-m", "fitsnap_ext", *args], cwd=out, env=env).returncode


def fit_errors(metrics_csv: Path) -> dict:
    """{quantity: (MAE, unit)} of the test split over all groups."""
    with open(metrics_csv, newline="") as fh:
        return {r["quantity"]: (float(r["mae"]), r["unit"]) for r in csv.DictReader(fh)
                if r["group"] == "*ALL" and r["split"] == "Test"}


def report(props: dict, teacher: dict, errors: dict) -> str:
    """The table of SW's values beside the fitted potential's, and what they mean."""
    lines = ["", "Demo: what the numbers mean",
             "The fitted potential is a 2J=6 linear SNAP (31 coefficients) fitted to the energies, forces and "
             "stresses of",
             "201 silicon configurations (E-V scan, strained and rattled cells, MD at 300, 1200 and 2500 K) labelled "
             "by the",
             "Stillinger-Weber potential (SW, the teacher). No property below was fitted: LAMMPS computes each with "
             "the fitted",
             "potential (quick mode), beside SW's own value. A difference is what the fit lost of its teacher "
             "(not an error",
             "against experiment).",
             f"Fit, test split: energy MAE {errors['Energy'][0] * 1000:.2f} meV/atom, force MAE "
             f"{errors['Force'][0]:.3f} eV/Å, stress MAE {errors['Stress'][0]:.0f} bar.", "",
             f"{'property':<22} {'unit':<8} {'SW (teacher)':>13} {'fitted SNAP':>12} {'difference':>11}"]
    for key, name, short, unit, fmt in ROWS:
        ref, val = teacher[key]["value"], props.get(key)
        got = fmt.format(val) if isinstance(val, (int, float)) else "failed"
        diff = f"{100 * (val - ref) / abs(ref):+.2f} %" if isinstance(val, (int, float)) else ""
        lines.append(f"{name + ' ' + short:<22} {unit:<8} {fmt.format(ref):>13} {got:>12} {diff:>11}")
    lines += ["", f"SW's values and their sources (Stillinger & Weber 1985; Balamane et al. 1992): "
                  f"{TEACHER.relative_to(REPO)}"]
    shown = {k for k, *_ in ROWS} | {"system", "potential", "quick", "elements", "properties", "run_settings",
                                     "failed_properties", "suspect"}
    other = {k: v for k, v in props.items() if k not in shown and isinstance(v, (int, float))}
    if other:
        lines += ["", "Other properties of the fitted potential (no SW value in the reference file):"]
        lines += [f"  {k} = {v:.4g}" for k, v in sorted(other.items())]
    for title, key in (("failed", "failed_properties"), ("flagged as physically suspect", "suspect")):
        lines += [f"  {title}: {k}: {why}" for k, why in props.get(key, {}).items()]
    return "\n".join(lines)


def plot(path: Path, props: dict, teacher: dict, curves: Path) -> None:
    """Left: relative difference per property; right: the fitted E(V) with SW's minimum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [k for k, *_ in ROWS if isinstance(props.get(k), (int, float))]
    diff = [100 * (props[k] - teacher[k]["value"]) / abs(teacher[k]["value"]) for k in keys]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(range(len(keys)), diff, color="tab:blue")
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(range(len(keys)), [short for k, _, short, *_ in ROWS if k in keys])
    ax1.set_ylabel("fitted SNAP − SW (% of SW)")
    ax1.set_title("Properties against the teacher")
    c = np.load(curves)
    ax2.plot(c["eos_v"], c["eos_e"], "o", label="fitted SNAP (LAMMPS)")
    sw_v = teacher["lattice_constant_A"]["value"] ** 3 / 8
    ax2.plot([sw_v], [teacher["energy_per_atom_eV"]["value"]], "*", ms=14, color="tab:red", label="SW minimum")
    ax2.set_xlabel("volume (Å³/atom)")
    ax2.set_ylabel("energy (eV/atom)")
    ax2.set_title("Diamond Si: E(V)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "demo", help="output folder (default out/demo)")
    ap.add_argument("--properties", help="comma list for the property engine (default: the si preset's)")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    prepare(out)
    if run([str(REPO / "input_files" / "in.demo")], out) != 0:
        return 1
    teacher = json.loads(TEACHER.read_text())["values"]
    (out / "teacher.json").write_text(json.dumps({k: v["value"] for k, v in teacher.items()}, indent=1) + "\n")
    extra = ["--properties", args.properties] if args.properties else []
    status = run(["properties", "Si_demo_pot.mod", "--system", "si", "--quick", "--reference", "teacher.json",
                  "--out", "props.json", *extra], out)
    if not (out / "props.json").is_file():
        return 1
    props = json.loads((out / "props.json").read_text())
    print(report(props, teacher, fit_errors(out / "Si_demo_metrics.csv")))
    plot(out / "demo_vs_teacher.png", props, teacher, out / "props_curves.npz")
    print(f"\nFiles in {out}: the potential (Si_demo_pot.mod, .snapcoeff, .snapparam), fit errors "
          f"(Si_demo_metrics.md), properties (props.json, props_errors.md against SW, props_files/), "
          f"plot demo_vs_teacher.png")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
