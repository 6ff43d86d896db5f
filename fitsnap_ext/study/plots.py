"""The study's figures (PNG, rank 0): property error against fitting error, force error against MD cost (the
Pareto front), parity plots, and property curves of every model over the ab initio reference.

Units: force eV/Å, energy eV/atom or meV/atom, stress bar, MD cost µs per atom-step.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..units import KB_EV

from .summary import correlations, property_keys


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_property_vs_error(path: Path, rows, refs):
    """|property error| against test force RMSE, one panel per compared property, with error bars (x: the RMSE's
    bootstrap sd, y: the property's sd) where known; False when none."""
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
        pts = [(r["force_test_rmse_eV_A"], abs(r[f"{key}_err"]), r["model"], r.get("force_test_rmse_eV_A_sd"),
                r.get(f"{key}_sd")) for r in ok if f"{key}_err" in r and "force_test_rmse_eV_A" in r]
        for x, y, name, xsd, ysd in pts:
            ax.errorbar(x, y, xerr=xsd, yerr=ysd, fmt="o", capsize=2, elinewidth=0.8)
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
    """Test force RMSE against MD cost with the Pareto front; False when no model was timed."""
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
    """Predicted against reference energy, force and stress of every model (from its parity.df); False when none."""
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
        made.append(_plot_arrhenius(plt, out / "curves_arrhenius.png", curves, refs))
    return made


def _plot_arrhenius(plt, path: Path, curves: dict, refs: dict) -> str:
    """log10 D against 1000/T of every model with diffusion curves, and the reference activation energy's slope."""
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
        y = np.log10(d0) - ea["value"] / (KB_EV * np.log(10)) * (x - 1000.0 / t0) / 1000.0
        ax.plot(x, y, "k--", lw=1, label=f"reference slope, Ea = {ea['value']} eV")
    return _save_curve(plt, fig, ax, path, "1000/T (1/K)", "log10 D (cm²/s)")
