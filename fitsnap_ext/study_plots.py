"""The study report: study.csv, study.md (tables, correlations, written answer) and PNG plots (rank 0 only)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

FIT_COLUMNS = [
    ("n_params", "parameters", "{:d}"),
    ("energy_train_mae_meV_atom", "E train MAE (meV/atom)", "{:.3g}"),
    ("energy_test_mae_meV_atom", "E test MAE (meV/atom)", "{:.3g}"),
    ("energy_test_rmse_meV_atom", "E test RMSE (meV/atom)", "{:.3g}"),
    ("force_train_mae_eV_A", "F train MAE (eV/Å)", "{:.3g}"),
    ("force_test_mae_eV_A", "F test MAE (eV/Å)", "{:.3g}"),
    ("force_test_rmse_eV_A", "F test RMSE (eV/Å)", "{:.3g}"),
    ("stress_train_mae_bar", "S train MAE (bar)", "{:.4g}"),
    ("stress_test_mae_bar", "S test MAE (bar)", "{:.4g}"),
    ("stress_test_rmse_bar", "S test RMSE (bar)", "{:.4g}"),
    ("md_katom_steps_per_s", "MD (katom-step/s)", "{:.3g}"),
]
X_ERRORS = [("force_test_rmse_eV_A", "test force RMSE (eV/Å)"),
            ("energy_test_rmse_meV_atom", "test energy RMSE (meV/atom)"),
            ("stress_test_rmse_bar", "test stress RMSE (bar)")]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(v, f="{:.4g}"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x, "{:.3g}") for x in v) + "]"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def correlations(rows: list[dict], xkey: str, ykey: str):
    """(n, Pearson r, Spearman ρ) of |y| against x over models with both finite."""
    from scipy.stats import pearsonr, spearmanr

    pts = [(r[xkey], abs(r[ykey])) for r in rows if isinstance(r.get(xkey), (int, float))
           and isinstance(r.get(ykey), (int, float)) and math.isfinite(r[xkey]) and math.isfinite(r[ykey])]
    if len(pts) < 3:
        return len(pts), float("nan"), float("nan")
    x, y = np.array(pts).T
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return len(pts), float("nan"), float("nan")
    return len(pts), float(pearsonr(x, y)[0]), float(spearmanr(x, y)[0])


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def property_keys(rows, refs):
    return [k for k, ref in refs.items() if ref.get("compare", True) and any(f"{k}_err" in r for r in rows)]


def answer_text(rows: list[dict], refs: dict) -> list[str]:
    """A written answer built from the numbers: which properties track which error (Spearman ρ of |error|)."""
    ok = [r for r in rows if r["status"] == "ok"]
    out = []
    if len(ok) < 3:
        return ["Fewer than three models finished: no correlation can be judged."]
    best_fit = min(ok, key=lambda r: r.get("force_test_rmse_eV_A", math.inf))
    out.append(f"Lowest test force RMSE: **{best_fit['model']}** ({_fmt(best_fit.get('force_test_rmse_eV_A'))} eV/Å, "
               f"{best_fit.get('n_params')} parameters, {_fmt(best_fit.get('md_katom_steps_per_s'), '{:.3g}')} "
               f"katom-step/s).")
    tracked, untracked = [], []
    for key in property_keys(ok, refs):
        best_prop = min((r for r in ok if f"{key}_err" in r), key=lambda r: abs(r[f"{key}_err"]))
        rhos = {x: correlations(ok, x, f"{key}_err") for x, _ in X_ERRORS}
        good = [(x, v[2]) for x, v in rhos.items() if isinstance(v[2], float) and math.isfinite(v[2]) and v[2] >= 0.7]
        desc = ", ".join(f"{x.split('_')[0]} ρ={v[2]:+.2f}" for x, v in rhos.items() if math.isfinite(v[2]))
        line = (f"`{key}`: best model {best_prop['model']} (error {_fmt(best_prop[f'{key}_err'])}); "
                f"Spearman of |error| vs test RMSE: {desc or 'n/a'}")
        (tracked if good else untracked).append(line + (" → **tracks** " + ", ".join(x.split('_')[0] for x, _ in good)
                                                        + " error" if good else " → does **not** track fitting error"))
    n_tracked = len(tracked)
    n_all = len(tracked) + len(untracked)
    out.append(f"{n_tracked} of {n_all} compared properties have |error| rank-correlated (Spearman ρ ≥ 0.7) with "
               f"at least one test error over the {len(ok)} models; the others do not. With this few models ρ "
               f"moves in large steps (one swapped pair changes it by 12/(n(n²−1)) ≈ {6 / (len(ok) * (len(ok)**2 - 1)) * 2:.2f} "
               f"for neighbours): read the panels, not only ρ.")
    out += ["- " + t for t in tracked + untracked]
    return out


def plot_property_vs_error(path: Path, rows, refs):
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    keys = property_keys(ok, refs)
    if not keys:
        return False
    n = len(keys)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["force_test_rmse_eV_A"], abs(r[f"{key}_err"]), r["model"]) for r in ok
               if f"{key}_err" in r and "force_test_rmse_eV_A" in r]
        for x, y, name in pts:
            ax.plot(x, y, "o")
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        nn, pr, sr = correlations(ok, "force_test_rmse_eV_A", f"{key}_err")
        ax.set_title(f"{key}\nPearson {pr:+.2f}, Spearman {sr:+.2f} (n={nn})", fontsize=8)
        ax.set_xlabel("test force RMSE (eV/Å)")
        ax.set_ylabel(f"|error| ({key.rsplit('_', 1)[-1]})")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_pareto(path: Path, rows):
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok" and r.get("md_katom_steps_per_s")]
    if not ok:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 4))
    pts = sorted((1e3 / r["md_katom_steps_per_s"], r["force_test_rmse_eV_A"], r["model"]) for r in ok)
    for c, e, name in pts:
        ax.plot(c, e, "o")
        ax.annotate(name, (c, e), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front, best = [], math.inf
    for c, e, _ in pts:
        if e < best:
            front.append((c, e))
            best = e
    if front:
        ax.step(*zip(*front), where="post", color="k", lw=1, label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("MD cost (µs per atom-step, this machine)")
    ax.set_ylabel("test force RMSE (eV/Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_parity(path: Path, spec, results):
    import pandas as pd

    plt = _pyplot()
    frames = []
    for model, *_ in results:
        f = spec.out / model.name / "parity.df"
        if f.is_file():
            frames.append((model.name, pd.read_pickle(f)))
    if not frames:
        return False
    kinds = [("Energy", "energy (eV/atom)"), ("Force", "force (eV/Å)"), ("Stress", "stress (bar)")]
    fig, axes = plt.subplots(len(frames), 3, figsize=(10, 3 * len(frames)), squeeze=False)
    rng = np.random.default_rng(0)
    for (name, df), row in zip(frames, axes):
        for (kind, label), ax in zip(kinds, row):
            sel = df[df["Row_Type"] == kind]
            for testing, color in ((False, "C0"), (True, "C3")):
                s = sel[sel["Testing"] == testing]
                if len(s) > 4000:
                    s = s.iloc[rng.choice(len(s), 4000, replace=False)]
                ax.plot(s["truths"], s["preds"], ".", ms=2, color=color, label="test" if testing else "train")
            if len(sel):
                lo, hi = float(sel["truths"].min()), float(sel["truths"].max())
                ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
            ax.set_title(f"{name}: {kind}", fontsize=8)
            ax.set_xlabel(f"DFT {label}", fontsize=7)
            ax.set_ylabel(f"model {label}", fontsize=7)
        row[0].legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _save_curve(plt, fig, ax, path: Path, xlabel: str, ylabel: str) -> str:
    """Label, save and close one property-curve figure; its file name."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def _model_lines(ax, curves: dict, xkey: str, ykey: str, fmt: str = "-") -> None:
    """One line per model that has the curve (xkey, ykey)."""
    for name, c in curves.items():
        if xkey in c:
            ax.plot(c[xkey], c[ykey], fmt, lw=1, label=name)


def plot_curves(out: Path, spec, results, ref_curves, refs) -> list[str]:
    """E–V, g(r), bond angles, phonon DOS and Arrhenius curves of every model over the ab initio reference."""
    plt = _pyplot()
    curves = {}
    for model, *_ in results:
        f = spec.out / model.name / "curves.npz"
        if f.is_file():
            curves[model.name] = dict(np.load(f))
    made = []
    if any("eos_v" in c for c in curves.values()) or "eos_v" in ref_curves:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        if "eos_v" in ref_curves:
            ax.plot(ref_curves["eos_v"], ref_curves["eos_e"], "ko", ms=3, label="DFT (volume set)")
            ax.plot(ref_curves["eos_fit_v"], ref_curves["eos_fit_e"], "k-", lw=0.8, label="DFT BM fit")
        _model_lines(ax, curves, "eos_v", "eos_e", ".-")
        if "eos_v" in ref_curves:  # a model whose scan fell into a hole must not hide everyone else's curve
            lo, hi = np.min(ref_curves["eos_e"]), np.max(ref_curves["eos_e"])
            ax.set_ylim(lo - 0.3 * (hi - lo), hi + 0.5 * (hi - lo))
        made.append(_save_curve(plt, fig, ax, out / "curves_eos.png", "volume (Å³/atom)", "energy (eV/atom)"))
    if any("rdf_r" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for label, style in (("liquid", "k-"), ("solid", "k:")):
            if f"{label}_rdf_r" in ref_curves:
                ax.plot(ref_curves[f"{label}_rdf_r"], ref_curves[f"{label}_rdf_g"], style, lw=1.5,
                        label=f"DFT {label} frames")
        _model_lines(ax, curves, "rdf_r", "rdf_g")
        made.append(_save_curve(plt, fig, ax, out / "curves_rdf.png", "r (Å)", "g(r)"))
    if any("adf_theta" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        if "liquid_adf_theta" in ref_curves:
            ax.plot(ref_curves["liquid_adf_theta"], ref_curves["liquid_adf"], "k-", lw=1.5, label="DFT liquid frames")
        _model_lines(ax, curves, "adf_theta", "adf")
        made.append(_save_curve(plt, fig, ax, out / "curves_adf.png", "bond angle θ (degrees)",
                                "bond-angle distribution (1/degree)"))
    if any("dos" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        _model_lines(ax, curves, "dos_freq", "dos")
        for key, label in (("phonon_max_THz", "reference max frequency"),
                           ("phonon_gamma_max_THz", "reference highest Γ mode")):
            if key in refs:
                ax.axvline(refs[key]["value"], color="k", ls="--", lw=1, label=label)
        made.append(_save_curve(plt, fig, ax, out / "curves_phonon_dos.png", "frequency (THz)",
                                "DOS (states/THz)"))
    if any("dif_T" in c for c in curves.values()):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for name, c in curves.items():
            if "dif_T" in c:
                ok = c["dif_D"] > 0
                ax.errorbar(1000.0 / c["dif_T"][ok], np.log10(c["dif_D"][ok]),
                            yerr=(c["dif_Derr"][ok] / c["dif_D"][ok] / np.log(10)), fmt="o-", label=name)
        ea = refs.get("activation_energy_eV")
        first = next((c for c in curves.values() if "dif_T" in c and (c["dif_D"] > 0).any()), None)
        if ea and first is not None:  # reference slope, anchored at the first model's hottest point
            ok = first["dif_D"] > 0
            t0, d0 = first["dif_T"][ok].max(), first["dif_D"][ok][np.argmax(first["dif_T"][ok])]
            x = np.linspace(1000.0 / t0, 1000.0 / 300.0, 20)
            y = np.log10(d0) - ea["value"] / (8.617333e-5 * np.log(10)) * (x - 1000.0 / t0) / 1000.0
            ax.plot(x, y, "k--", lw=1, label=f"reference slope, Ea = {ea['value']} eV")
        made.append(_save_curve(plt, fig, ax, out / "curves_arrhenius.png", "1000/T (1/K)", "log10 D (cm²/s)"))
    return made


def failure_lines(rows: list[dict]) -> list[str]:
    """Markdown bullets: why a fitted model has no property row (its crystal flew apart), or which of its
    properties failed while the others were computed."""
    lines = [f"- {r['model']}: {r['status']}" for r in rows if r["status"] != "ok" and "n_params" in r]
    return lines + [f"- {r['model']}: computed the others; failed: {r['notes']}" for r in rows if r.get("notes")]


def write_report(spec, rows, results, refs, ref_curves, wall, command, nranks, provenance=()) -> None:
    out = spec.out
    write_csv(out / "study.csv", rows)
    figs = []
    if plot_property_vs_error(out / "property_error_vs_force_error.png", rows, refs):
        figs.append(("Property error against test force error (the central figure)",
                     "property_error_vs_force_error.png"))
    if plot_pareto(out / "pareto_force_error_vs_md_cost.png", rows):
        figs.append(("Force error against MD cost (Pareto front)", "pareto_force_error_vs_md_cost.png"))
    if plot_parity(out / "parity.png", spec, results):
        figs.append(("Parity plots (train blue, test red)", "parity.png"))
    for f in plot_curves(out, spec, results, ref_curves, refs):
        figs.append((f"Property curves: {f[7:-4]}", f))

    md = [f"# Model-complexity study: {spec.system}", "",
          f"Command: `{command}`  ",
          f"Study deck: `{spec.deck.name}`; base fitting deck: `{spec.base_deck.name}`; "
          f"properties: {', '.join(spec.properties) or 'none'} (property engine in "
          f"{'quick' if spec.property_quick else 'full'} mode"
          + "".join(f", {k} = {v}" for k, v in spec.property_settings) + "); "
          f"MD timing: NVE, preset MD cell × {'×'.join(map(str, spec.md_cell))}, {spec.md_steps} steps, "
          f"{nranks} MPI rank(s).  ",
          f"Wall time of this invocation: {wall:.1f} s (cached stages are not re-run; see each model's "
          f"stage_*.json for stage times).", "",
          "All models use the same data and the same train/test split (the base deck's groups; seeded "
          "when `split_seed` or the deck's random_seed is set). Units: energy meV/atom, force eV/Å, stress bar "
          "(LAMMPS metal), properties in the unit at the end of each name.", ""]
    if provenance:
        md += ["## Data (the labels every model is fitted to)", "", "| group | file | frames | labeler |",
               "|---|---|--:|---|"]
        md += [f"| {p['group']} | {p['file']} | {p['frames']} | {'; '.join(p['labelers']) or 'not recorded'} |"
               for p in provenance]
        if any("surrogate" in who for p in provenance for who in p["labelers"]):
            md.append("\n**These labels come from a surrogate, not from DFT**: every error below is measured against "
                      "the surrogate, and the properties are the surrogate's as learnt by each model.")
        md.append("")
    md += ["## Fitting errors, size and MD speed (all groups)", "",
          "| model | kind | 2J | " + " | ".join(h for _, h, _ in FIT_COLUMNS) + " |",
          "|---|---|--:|" + "--:|" * len(FIT_COLUMNS)]
    for r in rows:
        if "n_params" not in r:
            md.append(f"| {r['model']} | {r['kind']} | | {r['status']} |" + " |" * (len(FIT_COLUMNS) - 1))
            continue
        md.append(f"| {r['model']} | {r['kind']} | {r.get('twojmax', '')} | "
                  + " | ".join(_fmt(r.get(k), f) for k, _, f in FIT_COLUMNS) + " |")
    pkeys = property_keys(rows, refs)
    if pkeys:
        md += ["", "## Properties against the ab initio references (value, error = model − reference)", "",
               "| model | " + " | ".join(f"{k}" for k in pkeys) + " |", "|---|" + "---|" * len(pkeys),
               "| **reference** | " + " | ".join(_fmt(refs[k]["value"]) for k in pkeys) + " |"]
        for r in rows:
            if r["status"] == "ok":
                md.append(f"| {r['model']} | " + " | ".join(
                    f"{_fmt(r.get(k))} ({_fmt(r.get(k + '_err'), '{:+.3g}')})" if k in r else "–" for k in pkeys)
                    + " |")
    other = sorted({k for r in rows for k in ("C11_GPa", "C12_GPa", "C13_GPa", "C33_GPa", "C44_GPa", "C66_GPa",
                                              "phonon_max_THz", "phonon_gamma_max_THz",
                                              "liquid_density_g_cm3", "rdf_first_peak_A", "a_A", "c_A",
                                              "activation_energy_eV", "ionic_conductivity_300K_mS_cm")
                    if k in r and k not in pkeys})
    if other:
        md += ["", "Properties without a reference here:", "",
               "| model | " + " | ".join(other) + " |", "|---|" + "---|" * len(other)]
        md += [f"| {r['model']} | " + " | ".join(_fmt(r.get(k)) for k in other) + " |" for r in rows
               if r["status"] == "ok"]
    failures = failure_lines(rows)
    if failures:
        md += ["", "Failures (each is a result about that model's stability):", ""] + failures
    md += ["", "## References and their sources", "", "| key | value | unit | source |", "|---|---|---|---|"]
    for k, v in refs.items():
        note = "" if v.get("compare", True) else " (shown, not compared)"
        md.append(f"| {k} | {_fmt(v['value'])} | {v.get('unit', '')} | {v['source']}{note} |")
    ok = [r for r in rows if r["status"] == "ok"]
    if pkeys:
        md += ["", "## Correlation of |property error| with fitting errors (Pearson r / Spearman ρ)", "",
               "| property | " + " | ".join(h for _, h in X_ERRORS) + " |", "|---|" + "---|" * len(X_ERRORS)]
        for k in pkeys:
            cells = []
            for x, _ in X_ERRORS:
                n, pr, sr = correlations(ok, x, f"{k}_err")
                cells.append(f"{pr:+.2f} / {sr:+.2f} (n={n})" if math.isfinite(pr) else f"n/a (n={n})")
            md.append(f"| {k} | " + " | ".join(cells) + " |")
    md += ["", "## Does lower fitting error buy better properties? (computed from the tables above)", ""]
    md += answer_text(rows, refs)
    md += ["", "## Plots", ""]
    md += [f"### {title}\n\n![{title}]({f})\n" for title, f in figs]
    (out / "study.md").write_text("\n".join(md) + "\n")
