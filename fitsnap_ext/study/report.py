"""The study report (rank 0): study.csv, study.md (tables, correlations, written answer) and the plots.

Units: energy meV/atom, force eV/Å, stress bar (LAMMPS metal); properties in the unit at the end of each name.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .plots import plot_curves, plot_parity, plot_pareto, plot_property_vs_error
from .statistics import correlation_ci, pair_tests
from .summary import correlation_points, correlations, property_keys

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
# properties listed in their own table when no reference compares them
UNREFERENCED = ("C11_GPa", "C12_GPa", "C13_GPa", "C33_GPa", "C44_GPa", "C66_GPa", "phonon_max_THz",
                "phonon_gamma_max_THz", "liquid_density_g_cm3", "rdf_first_peak_A", "a_A", "c_A",
                "activation_energy_eV", "ionic_conductivity_300K_mS_cm")


def _fmt(v, f="{:.4g}"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x, "{:.3g}") for x in v) + "]"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def _pm(r: dict, key: str, f="{:.4g}") -> str:
    """The row's value of `key`, with ± its `<key>_sd` where that exists."""
    sd = r.get(key + "_sd")
    text = _fmt(r.get(key), f)
    return text if sd is None or text == "–" else f"{text} ± {_fmt(sd, '{:.0f}' if abs(sd) >= 10 else '{:.2g}')}"


def write_csv(path: Path, rows: list[dict]) -> None:
    """The rows as CSV (the union of their columns; floats as repr, so they read back exactly)."""
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


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


def failure_lines(rows: list[dict]) -> list[str]:
    """Markdown bullets: why a fitted model has no property row (its crystal flew apart), which of its
    properties failed while the others were computed, and which members (ensemble networks, coefficient sets)
    failed — its error bars are then over the others only."""
    lines = [f"- {r['model']}: {r['status']}" for r in rows if r["status"] != "ok" and "n_params" in r]
    lines += [f"- {r['model']}: computed the others; failed: {r['notes']}" for r in rows if r.get("notes")]
    return lines + [f"- {r['model']}: members failed, {r['members_failed']} — its sds are over the other members "
                    f"only" for r in rows if r.get("members_failed")]


def _figures(out: Path, spec, rows, results, refs, ref_curves) -> list[tuple[str, str]]:
    """Draw every plot that has data; (title, file name) of each."""
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
    return figs


def _header(spec, wall, command, nranks, provenance) -> list[str]:
    """The report's title, how it was made, and the data it rests on."""
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
    return md


def _fit_table(rows) -> list[str]:
    """Fitting errors, size and MD speed of every model."""
    md = ["## Fitting errors, size and MD speed (all groups)", "",
          "| model | kind | 2J | " + " | ".join(h for _, h, _ in FIT_COLUMNS) + " |",
          "|---|---|--:|" + "--:|" * len(FIT_COLUMNS)]
    for r in rows:
        if "n_params" not in r:
            md.append(f"| {r['model']} | {r['kind']} | | {r['status']} |" + " |" * (len(FIT_COLUMNS) - 1))
            continue
        md.append(f"| {r['model']} | {r['kind']} | {r.get('twojmax', '')} | "
                  + " | ".join(_pm(r, k, f) for k, _, f in FIT_COLUMNS) + " |")
    return md


def _property_tables(rows, refs, pkeys) -> list[str]:
    """Properties against their references, properties without one, and the failures."""
    md = []
    if pkeys:
        md += ["", "## Properties against the ab initio references (value ± sd, error = model − reference)", "",
               "| model | " + " | ".join(f"{k}" for k in pkeys) + " |", "|---|" + "---|" * len(pkeys),
               "| **reference** | " + " | ".join(_fmt(refs[k]["value"]) for k in pkeys) + " |"]
        for r in rows:
            if r["status"] == "ok":
                md.append(f"| {r['model']} | " + " | ".join(
                    f"{_pm(r, k)} ({_fmt(r.get(k + '_err'), '{:+.3g}')})" if k in r else "–" for k in pkeys)
                    + " |")
    other = sorted({k for r in rows for k in UNREFERENCED if k in r and k not in pkeys})
    if other:
        md += ["", "Properties without a reference here:", "",
               "| model | " + " | ".join(other) + " |", "|---|" + "---|" * len(other)]
        md += [f"| {r['model']} | " + " | ".join(_pm(r, k) for k in other) + " |" for r in rows
               if r["status"] == "ok"]
    failures = failure_lines(rows)
    if failures:
        md += ["", "Failures (each is a result about that model's stability):", ""] + failures
    return md


def _references_and_correlations(rows, refs, pkeys) -> list[str]:
    """The references with their sources, and |property error| against the fitting errors."""
    md = ["", "## References and their sources", "", "| key | value | unit | source |", "|---|---|---|---|"]
    for k, v in refs.items():
        note = "" if v.get("compare", True) else " (shown, not compared)"
        md.append(f"| {k} | {_fmt(v['value'])} | {v.get('unit', '')} | {v['source']}{note} |")
    ok = [r for r in rows if r["status"] == "ok"]
    if pkeys:
        md += ["", "## Correlation of |property error| with fitting errors (Pearson r / Spearman ρ, bootstrap 95 % "
               "intervals)", "",
               "| property | " + " | ".join(h for _, h in X_ERRORS) + " |", "|---|" + "---|" * len(X_ERRORS)]
        md += [f"| {k} | " + " | ".join(_correlation_cell(ok, x, k) for x, _ in X_ERRORS) + " |" for k in pkeys]
        md += ["", "Each interval: 2000 replicates that resample the models with replacement and draw every fitting "
               "error and property error from a normal with its sd (where known); 2.5 and 97.5 percentiles."]
    return md


def _correlation_cell(ok: list[dict], x: str, key: str) -> str:
    """`r [lo, hi] / ρ [lo, hi] (n=…)` of |key error| against the fitting error `x`."""
    pts = correlation_points(ok, x, f"{key}_err")
    sd = (lambda r, k: r.get(k + "_sd", math.nan))
    c = correlation_ci([r[x] for r in pts], [r[f"{key}_err"] for r in pts], [sd(r, x) for r in pts],
                       [sd(r, key) for r in pts], absolute_y=True)
    if not math.isfinite(c["pearson"]):
        return f"n/a (n={c['n']})"
    ci = (lambda lo_hi: "[" + ", ".join(_fmt(v, "{:+.2f}") for v in lo_hi) + "]")
    return (f"{c['pearson']:+.2f} {ci(c['pearson_ci'])} / {c['spearman']:+.2f} {ci(c['spearman_ci'])} "
            f"(n={c['n']})")


def resolved_differences(rows: list[dict], pkeys: list[str]) -> list[str]:
    """Markdown: per compared property, the pairs of models whose |errors| differ by more than 2 combined sds,
    and how many pairs are resolved, unresolved or without an uncertainty."""
    ok = [r for r in rows if r["status"] == "ok"]
    md = ["", "## Which differences are resolved", "",
          "For every pair of models, z = (|err_A| − |err_B|) / sqrt(sd_A² + sd_B²) with A the model closer to the "
          "reference (sd: see docs/study.md, error bars); |z| > 2 is resolved. A pair where either model has no sd "
          "has no uncertainty.", "",
          "| property | resolved | unresolved | no uncertainty | resolved pairs |", "|---|--:|--:|--:|---|"]
    for key in pkeys:
        tests = pair_tests(ok, key)
        count = {v: sum(t["verdict"] == v for t in tests) for v in ("resolved", "unresolved", "no uncertainty")}
        pairs = "; ".join(f"{t['a']} closer to the reference than {t['b']}, z = {t['z']:+.1f}"
                          for t in sorted(tests, key=lambda t: t["z"] if t["z"] is not None else 0)
                          if t["verdict"] == "resolved")
        md.append(f"| {key} | {count['resolved']} | {count['unresolved']} | {count['no uncertainty']} | "
                  f"{pairs or '–'} |")
    return md


def write_report(spec, rows, results, refs, ref_curves, wall, command, nranks, provenance=()) -> None:
    """study.csv, the plots and study.md in the study's out folder."""
    out = spec.out
    write_csv(out / "study.csv", rows)
    figs = _figures(out, spec, rows, results, refs, ref_curves)
    pkeys = property_keys(rows, refs)
    md = _header(spec, wall, command, nranks, provenance) + _fit_table(rows)
    md += _property_tables(rows, refs, pkeys) + resolved_differences(rows, pkeys)
    md += _references_and_correlations(rows, refs, pkeys)
    md += ["", "## Does lower fitting error buy better properties? (computed from the tables above)", ""]
    md += answer_text(rows, refs)
    md += ["", "## Plots", ""]
    md += [f"### {title}\n\n![{title}]({f})\n" for title, f in figs]
    (out / "study.md").write_text("\n".join(md) + "\n")
