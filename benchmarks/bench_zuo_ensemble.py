"""Does a deep ensemble buy accuracy on the Zuo Si data? Test-split errors over several seeds of the split.

    python benchmarks/bench_zuo_ensemble.py [--seeds 7 11 13] [--epochs 100] [--models linear quadratic nn ens4 ...]
        [--raw results.json] [--out results.md]

Every fit is `python -m fitsnap_ext <deck>` in a fresh temporary folder (OMP_NUM_THREADS=1, one process, one after
the other), with `-k GROUPS random_seed <s>` choosing the split (the decks' 0.9/0.1 per group, random_sampling 1):
  linear     input_files/in.si_zuo       (2J=8 SNAP, SVD, its own energy/force/stress weights)
  quadratic  input_files/in.si_quadratic (2J=8 quadratic SNAP, SVD)
  nn         input_files/in.si_nn        (55-32-32-1 tanh; [PYTORCH] seed 0)
  ens4       in.si_nn with ensemble_size 4 (members seed 0..3; the mean exported as one mliap network)
  ens4_boot  ens4 with ensemble_bootstrap 1
  nn_noval, ens4_noval  nn, ens4 with validation_fraction 0 (every training configuration fitted, the last epochs kept)
Every network gets `num_epochs = --epochs` (the same for all). Errors: the metrics .csv's *ALL / Test rows (energy
MAE in eV/atom, force-component MAE/RMSE in eV/Å); times: wall and user+system CPU of the whole fit process
(descriptors included), in s. `--raw` keeps every run (re-rendered with `--render-only`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / "input_files" / "../../shared/data/si_zuo").resolve()
MODELS = {
    "linear": ("in.si_zuo", []),
    "quadratic": ("in.si_quadratic", []),
    "nn": ("in.si_nn", []),
    "ens4": ("in.si_nn", [("PYTORCH", "ensemble_size", "4")]),
    "ens4_boot": ("in.si_nn", [("PYTORCH", "ensemble_size", "4"), ("PYTORCH", "ensemble_bootstrap", "1")]),
    "nn_noval": ("in.si_nn", [("PYTORCH", "validation_fraction", "0")]),
    "ens4_noval": ("in.si_nn", [("PYTORCH", "ensemble_size", "4"), ("PYTORCH", "validation_fraction", "0")]),
}


def test_errors(metrics_csv: Path) -> dict:
    """The *ALL / Test rows of a metrics .csv → {e_mae, e_rmse, f_mae, f_rmse, n_test}."""
    out = {}
    with open(metrics_csv) as fh:
        for row in csv.DictReader(fh):
            if row["group"] == "*ALL" and row["split"] == "Test" and row["quantity"] in ("Energy", "Force"):
                key = row["quantity"][0].lower()
                out[f"{key}_mae"], out[f"{key}_rmse"] = float(row["mae"]), float(row["rmse"])
                if key == "e":
                    out["n_test"] = int(row["count"])
    return out


def run_one(model: str, seed: int, epochs: int) -> dict:
    """One fit in a temporary folder → test errors and wall/CPU seconds."""
    deck, extra = MODELS[model]
    keys = [("PATH", "dataPath", str(DATA)), ("GROUPS", "random_seed", str(seed)), *extra]
    if deck == "in.si_nn":
        keys += [("PYTORCH", "num_epochs", str(epochs)), ("PYTORCH", "save_state_output", "")]
    with tempfile.TemporaryDirectory(prefix="zuo_ens_") as tmp:
        (Path(tmp) / deck).write_text((REPO / "input_files" / deck).read_text())
        cmd = [sys.executable, "-m", "fitsnap_ext", deck, *[x for k in keys for x in ("-k", *k)]]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        metrics = next(Path(tmp).glob("*_metrics.csv"))
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return dict(model=model, seed=seed, epochs=epochs, wall_s=wall, cpu_s=cpu, **test_errors(metrics))


def mean_sd(values, digits: int = 4) -> str:
    """'mean ± sample sd' (the value alone for one)."""
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def label(r: dict) -> str:
    """A run's row label: the model, and for networks their epochs."""
    return r["model"] if r["model"] in ("linear", "quadratic") else f"{r['model']} {r['epochs']} ep"


def render(runs: list[dict]) -> str:
    """Markdown: per-run table, per-model mean ± sd over split seeds, ensemble gain over the single network."""
    lines = ["| split seed | model | test F MAE (eV/Å) | test F RMSE (eV/Å) | test E MAE (meV/atom) | fit wall (s) |"
             " fit CPU (s) |", "|--:|:--|--:|--:|--:|--:|--:|"]
    for r in sorted(runs, key=lambda r: (r["epochs"] if label(r) != r["model"] else 0, r["seed"])):
        lines.append(f"| {r['seed']} | {label(r)} | {r['f_mae']:.4f} | {r['f_rmse']:.4f} | {1e3 * r['e_mae']:.2f} |"
                     f" {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    labels = list(dict.fromkeys(label(r) for r in runs))
    lines += ["", "Mean ± sample sd over the split seeds:", "",
              "| model | seeds | test F MAE (eV/Å) | test F RMSE (eV/Å) | test E MAE (meV/atom) | fit wall (s) |",
              "|:--|--:|--:|--:|--:|--:|"]
    for m in labels:
        rs = [r for r in runs if label(r) == m]
        lines.append(f"| {m} | {len(rs)} | {mean_sd([r['f_mae'] for r in rs])} | {mean_sd([r['f_rmse'] for r in rs])}"
                     f" | {mean_sd([1e3 * r['e_mae'] for r in rs], 2)} | {np.mean([r['wall_s'] for r in rs]):.1f} |")
    single = {(r["seed"], r["epochs"]): r for r in runs if r["model"] == "nn"}
    lines += ["", "Gain over the single network on the same split and epochs (nn − ensemble; positive = ensemble "
              "better):", "", "| ensemble | seeds | Δ F MAE (eV/Å) | Δ F RMSE (eV/Å) | Δ E MAE (meV/atom) | F MAE ratio |",
              "|:--|--:|--:|--:|--:|--:|"]
    for m in labels:
        pairs = [(single[(r["seed"], r["epochs"])], r) for r in runs
                 if label(r) == m and r["model"].startswith("ens") and (r["seed"], r["epochs"]) in single]
        if pairs:
            lines.append(f"| {m} | {len(pairs)} | {mean_sd([a['f_mae'] - b['f_mae'] for a, b in pairs])}"
                         f" | {mean_sd([a['f_rmse'] - b['f_rmse'] for a, b in pairs])}"
                         f" | {mean_sd([1e3 * (a['e_mae'] - b['e_mae']) for a, b in pairs], 2)}"
                         f" | {mean_sd([b['f_mae'] / a['f_mae'] for a, b in pairs], 3)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--raw", type=Path, help="JSON file of every run (appended to, runs already there are kept)")
    parser.add_argument("--render-only", action="store_true", help="only render --raw")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = json.loads(args.raw.read_text()) if args.raw and args.raw.exists() else []
    if not args.render_only:
        for seed in args.seeds:
            for model in args.models:
                if any(r["model"] == model and r["seed"] == seed
                       and (r["epochs"] == args.epochs or model in ("linear", "quadratic")) for r in runs):
                    continue
                runs.append(run_one(model, seed, args.epochs))
                r = runs[-1]
                print(f"seed {seed} {model}: F MAE {r['f_mae']:.4f} RMSE {r['f_rmse']:.4f} eV/Å, "
                      f"E MAE {1e3 * r['e_mae']:.2f} meV/atom, wall {r['wall_s']:.1f} s", flush=True)
                if args.raw:
                    args.raw.write_text(json.dumps(runs, indent=1))
    text = render(runs)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
