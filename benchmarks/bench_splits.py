"""Do a study's networks beat linear SNAP on test errors, or was its one split lucky or unlucky?

    python benchmarks/bench_splits.py [--study input_files/study_lgps.in] [--seeds 42 1 2 3 4 5]
        [--models linear_2J8 nn_64x64 ...] [-k SECTION KEY VALUE ...] [--raw runs.json] [--also other.json ...]
        [--render-only] [--out results.md]

Every model of the study deck is fitted exactly as the study fits it (`study.model_settings`: the study's base
deck, its network recipe — e.g. LGPS: 3-member ensembles, 1000 epochs, weight decay, relative group weights),
once per split seed (`[STUDY] split_seed`: the base deck's per-group train/test fractions, shuffled by that seed;
42 is the LGPS and GaN base decks' own seed, i.e. the committed studies' split). Only the fits run (no properties,
no MD; the wall time includes the descriptors), one after the other in this process, on OMP_NUM_THREADS torch
threads (default 1). Per fit the test split's per-configuration
energy residuals (meV/atom) and force |residual| sums are kept, so two models on the same split are compared
configuration by configuration (paired bootstrap over test configurations). Energies in meV/atom, forces in eV/Å
(LAMMPS metal units).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BOOT = 2000


def config_label(group: str, config: str) -> str:
    """`group/config`, a linear fit's `file:line (configuration k)` reduced to the file's name (the fit ran in a
    temporary folder: the path it saw names this machine)."""
    path, sep, rest = config.partition(":")
    return f"{group}/{Path(path).name if sep else config}{sep}{rest}"


def split_residuals(parity: Path) -> dict:
    """Per test configuration of a parity.df: energy residual (meV/atom), Σ|force residual| and its count."""
    import pandas as pd

    df = pd.read_pickle(parity)
    df = df[df["Testing"].astype(bool)]
    df = df.assign(config=[config_label(g, c) for g, c in zip(df["Groups"].astype(str), df["Configs"].astype(str))],
                   r=df["preds"].astype(float) - df["truths"].astype(float))
    energy = df[df["Row_Type"] == "Energy"].set_index("config")["r"] * 1e3
    force = df[df["Row_Type"] == "Force"].groupby("config")["r"]
    truth = df[df["Row_Type"] == "Energy"]["truths"].astype(float)
    return {"configs": energy.index.tolist(), "e_res": energy.tolist(), "e_truth": truth.tolist(),
            "f_abs": [float(force.get_group(c).abs().sum()) for c in energy.index],
            "f_n": [int(force.get_group(c).size) for c in energy.index]}


def run_one(study: Path, seed: int, name: str, keys=()) -> dict:
    """Fit one study model on one split seed → its test residuals and fit wall time (`keys`: the study deck's
    `-k SECTION KEY VALUE` overrides, e.g. a [MODEL_name] section defined on the command line)."""
    from fitsnap_ext import api
    from fitsnap_ext.study import read_study
    from fitsnap_ext.study.deck import model_settings

    with tempfile.TemporaryDirectory(prefix="split_") as tmp:
        spec = read_study(study, [*keys, ("STUDY", "split_seed", str(seed)),
                                  ("STUDY", "out", str(Path(tmp) / "study"))])
        model = next(m for m in spec.models if m.name == name)
        t0 = time.perf_counter()
        api.fit(model_settings(spec, model), out_dir=Path(tmp) / "fit", overwrite=True)
        wall = time.perf_counter() - t0
        return {"seed": seed, "model": name, "kind": model.kind, "wall_s": wall,
                **split_residuals(Path(tmp) / "fit" / "parity.df")}


def ladder(study: Path) -> list[str]:
    """The names of the study's ladder rungs (not its [MODEL_*] sections)."""
    from fitsnap_ext.study import read_study

    with tempfile.TemporaryDirectory(prefix="splits_") as tmp:
        spec = read_study(study, [("STUDY", "out", str(Path(tmp) / "study"))])
    return [m.name for m in spec.models if not m.line]


def e_mae(run: dict) -> float:
    return float(np.mean(np.abs(run["e_res"])))


def f_mae(run: dict) -> float:
    return float(np.sum(run["f_abs"]) / np.sum(run["f_n"]))


def paired_difference(pairs: list[tuple[dict, dict]], seed: int = 0) -> tuple[float, ...]:
    """(Δ E MAE, its bootstrap sd, its split-to-split standard error, the same three for Δ F MAE) of model A −
    model B: each split's MAE difference, averaged over splits; the bootstrap redraws each split's test
    configurations (the same draw for both models: paired) and leaves out the training's variance, which the
    spread of the per-split differences (std/√splits) includes."""
    rng = np.random.default_rng(seed)
    de, df, de_boot, df_boot = [], [], np.zeros(BOOT), np.zeros(BOOT)
    for a, b in pairs:
        # linear and network fits label configurations differently (file:line, index) but list the test split's
        # configurations in the same order: pair by position, checking groups (and energies where recorded)
        assert [c.split("/")[0] for c in a["configs"]] == [c.split("/")[0] for c in b["configs"]]
        if "e_truth" in a and "e_truth" in b:
            assert np.allclose(a["e_truth"], b["e_truth"], rtol=0, atol=1e-9)
        ea, eb = np.abs(a["e_res"]), np.abs(b["e_res"])
        fa, fb, n = np.asarray(a["f_abs"]), np.asarray(b["f_abs"]), np.asarray(a["f_n"], float)
        de.append(ea.mean() - eb.mean())
        df.append((fa.sum() - fb.sum()) / n.sum())
        w = rng.multinomial(len(ea), np.full(len(ea), 1 / len(ea)), size=BOOT).astype(float)
        de_boot += (w @ (ea - eb)) / len(ea)
        df_boot += (w @ (fa - fb)) / (w @ n)
    k = len(pairs)
    se = (lambda d: float(np.std(d, ddof=1) / np.sqrt(k)) if k > 1 else float("nan"))
    return (float(np.mean(de)), float(np.std(de_boot / k, ddof=1)), se(de),
            float(np.mean(df)), float(np.std(df_boot / k, ddof=1)), se(df))


def by_group(runs: list[dict], models: list[str]) -> list[str]:
    """Markdown lines: per data group, each model's test energy MAE and mean signed residual (prediction − truth)
    over every split's test configurations of that group — where the energy errors are, and whether they are
    offsets."""
    residuals: dict = {}
    for r in runs:
        for config, res in zip(r["configs"], r["e_res"]):
            residuals.setdefault((r["model"], config.split("/")[0]), []).append(res)
    groups = sorted({g for _, g in residuals})
    lines = ["", "Test energy error by group (meV/atom; LAMMPS metal units), all splits' test configurations: MAE "
             "(mean signed residual, prediction − truth):", "",
             "| group | configurations | " + " | ".join(models) + " |", "|:--|--:|" + "--:|" * len(models)]
    for g in groups:
        n = max(len(residuals.get((m, g), [])) for m in models)
        cells = [f"{np.mean(np.abs(v)):.1f} ({np.mean(v):+.1f})" if (v := residuals.get((m, g))) else "–"
                 for m in models]
        lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    return lines


def paired_runs(by: dict, seeds: list, a: str, b: str) -> list[tuple[dict, dict]]:
    """Model a's and model b's runs on each split both were fitted on."""
    return [(by[(s, a)], by[(s, b)]) for s in seeds if (s, a) in by and (s, b) in by]


def recipe_of(model: str, names) -> str | None:
    """The recipe a variant varies: the longest of `names` that is a `<name>_` prefix of `model` (a naming
    convention of this benchmark: `nn_16_delta_e670` varies `nn_16_delta`, which varies `nn_16`)."""
    return max((b for b in names if model.startswith(b + "_")), key=len, default=None)


def paired_cells(pairs: list[tuple[dict, dict]]) -> str:
    """A paired table's cells after the model names: splits, Δ E MAE ± sd, se, Δ F MAE ± sd, se, splits won."""
    de, de_sd, de_se, df, df_sd, df_se = paired_difference(pairs)
    wins = sum(e_mae(a) <= e_mae(b) for a, b in pairs)
    return (f"{len(pairs)} | {de:+.2f} ± {de_sd:.2f} | {de_se:.2f} | {df:+.4f} ± {df_sd:.4f} | {df_se:.4f} | "
            f"{wins} of {len(pairs)} |")


def against_recipe(by: dict, seeds: list, models: list[str]) -> list[str]:
    """Markdown rows: each variant (`nn_16_delta`, `nn_16_delta_2j8`) against the recipe it varies (`recipe_of`),
    paired on the splits both were fitted on."""
    lines = []
    for m in models:
        base = recipe_of(m, models)
        pairs = paired_runs(by, seeds, m, base) if base else []
        if not pairs:
            continue
        lines.append(f"| {m} | {base} | {paired_cells(pairs)}")
    if not lines:
        return []
    return ["", "Each variant against the recipe it varies (variant − recipe; as above):", "",
            "| variant | recipe | splits | Δ E MAE (meV/atom) | split-to-split se | Δ F MAE (eV/Å) | split-to-split se |"
            " splits with lower E MAE |", "|:--|:--|--:|--:|--:|--:|--:|--:|", *lines]


def render(runs: list[dict]) -> str:
    """Markdown: test E / F MAE per model and split, mean ± sd over splits, each model against linear 2J=8."""
    seeds = sorted({r["seed"] for r in runs}, key=lambda s: (s != 42, s))
    models = list(dict.fromkeys(r["model"] for r in runs))
    by = {(r["seed"], r["model"]): r for r in runs}
    head = "| model | " + " | ".join(f"split {s}" for s in seeds) + " | mean ± sd over splits |"
    rule = "|:--|" + "--:|" * (len(seeds) + 1)
    n_test = len(runs[0]["configs"])
    lines = [f"Test energy MAE (meV/atom; LAMMPS metal units), each split's {n_test} test configurations:", "",
             head, rule]
    for key, fmt, fn in (("E", "{:.2f}", e_mae), ("F", "{:.3f}", f_mae)):
        if key == "F":
            lines += ["", "Test force MAE (eV/Å; LAMMPS metal units), per force component:", "", head, rule]
        for m in models:
            vals = [fn(by[(s, m)]) if (s, m) in by else None for s in seeds]
            got = [v for v in vals if v is not None]
            summary = (fmt.format(np.mean(got)) + (" ± " + fmt.format(np.std(got, ddof=1)) if len(got) > 1 else ""))
            lines.append(f"| {m} | " + " | ".join("–" if v is None else fmt.format(v) for v in vals)
                         + f" | {summary} |")
    lines += ["", "Against linear_2J8 on the same splits (model − linear_2J8, mean over the splits both were fitted "
              "on; ± sd: paired bootstrap over test configurations; se: std/√splits of the per-split differences; "
              "negative = better than linear 2J=8):", "",
              "| model | splits | Δ E MAE (meV/atom) | split-to-split se | Δ F MAE (eV/Å) | split-to-split se |"
              " splits with lower E MAE |", "|:--|--:|--:|--:|--:|--:|--:|"]
    for m in models:
        pairs = paired_runs(by, seeds, m, "linear_2J8")
        if m == "linear_2J8" or not pairs:
            continue
        lines.append(f"| {m} | {paired_cells(pairs)}")
    lines += against_recipe(by, seeds, models)
    lines += by_group(runs, models)
    walls = {m: np.mean([r["wall_s"] for r in runs if r["model"] == m]) for m in models}
    lines += ["", "Fit wall time (s, mean over splits): " + ", ".join(f"{m} {w:.0f}" for m, w in walls.items())]
    return "\n".join(lines) + "\n"


def plot_tradeoff(runs: list[dict], path: Path, models: list[str] | None = None) -> None:
    """PNG: each model's test energy and force MAE against linear 2J=8's, paired over the splits both were fitted
    on (split-to-split standard errors as bars); the lower-left quadrant is the issue's target. A grey line joins
    a variant to the recipe it varies (name prefix, as `against_recipe`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in runs})
    by = {(r["seed"], r["model"]): r for r in runs}
    models = [m for m in (models or dict.fromkeys(r["model"] for r in runs)) if m != "linear_2J8"]
    points = {}
    for m in models:
        pairs = paired_runs(by, seeds, m, "linear_2J8")
        if pairs:
            de, _, de_se, df, _, df_se = paired_difference(pairs)
            points[m] = (df, de, df_se, de_se, len(pairs))
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    for m, (df, de, df_se, de_se, n) in points.items():
        base = recipe_of(m, points)
        if base:
            ax.plot([points[base][0], df], [points[base][1], de], color="0.7", lw=0.8, zorder=0)
        ax.errorbar(df, de, xerr=df_se, yerr=de_se, fmt="s" if m.startswith(("linear", "quadratic")) else "o",
                    capsize=2, ms=4)
        ax.annotate(f"{m}" + ("" if n == len(seeds) else f" ({n})"), (df, de), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("Δ test force MAE against linear 2J=8 (eV/Å)")
    ax.set_ylabel("Δ test energy MAE against linear 2J=8 (meV/atom)")
    ax.set_title(f"Paired over {len(seeds)} splits (bars: split-to-split se; squares: SNAP; lower left: better on "
                 "both; LAMMPS metal units)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=REPO / "input_files" / "study_lgps.in")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4, 5])
    parser.add_argument("--models", nargs="+", help="the study's rungs (default: its whole ladder)")
    parser.add_argument("-k", "--keyword", nargs=3, action="append", default=[], metavar=("SECTION", "KEY", "VALUE"),
                        help="study deck override, as the study command's (-k MODEL_x solver PYTORCH ... adds a rung)")
    parser.add_argument("--raw", type=Path, help="JSON file of every run (appended to; runs already there are kept)")
    parser.add_argument("--also", type=Path, nargs="*", default=[],
                        help="more runs' JSON files (another process's --raw) to render with these")
    parser.add_argument("--render-only", action="store_true", help="only render --raw (and --also)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path, help="PNG of each model's test energy and force MAE against linear 2J=8's")
    parser.add_argument("--plot-models", nargs="+", help="the models to plot (default: all)")
    args = parser.parse_args()
    runs = json.loads(args.raw.read_text()) if args.raw and args.raw.exists() else []
    if not args.render_only:
        for seed in args.seeds:
            for name in args.models or ladder(args.study):
                if any(r["seed"] == seed and r["model"] == name for r in runs):
                    continue
                run = run_one(args.study, seed, name, [tuple(k) for k in args.keyword])
                print(f"split {seed} {name}: test E MAE {e_mae(run):.2f} meV/atom, F MAE {f_mae(run):.4f} eV/Å, "
                      f"fit {run['wall_s']:.0f} s", flush=True)
                runs.append(run)
                if args.raw:
                    args.raw.write_text(json.dumps(runs))
    runs += [r for path in args.also for r in json.loads(path.read_text())]
    text = render(runs)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot_tradeoff(runs, args.plot, args.plot_models)


if __name__ == "__main__":
    main()
