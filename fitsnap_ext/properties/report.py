"""props.json writing, comparison against reference values (JSON + markdown) and the property plots.

Only rank 0 calls these; the engine takes care of that.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fitsnap_ext.errors import FitsnapError
from fitsnap_ext.units import EV_PER_A3_TO_GPA, KB_EV

META_KEYS = ("system", "potential", "quick", "properties", "elements")


def write_json(path: Path, data: dict) -> None:
    """Pretty JSON with plain Python floats."""
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")


def load_reference(path: Path) -> dict:
    """A flat JSON of reference values (literature numbers or another potential's props.json)."""
    path = Path(path)
    if not path.is_file():
        raise FitsnapError(f"reference file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FitsnapError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise FitsnapError(f"{path}: expected a JSON object of property: value")
    return data


def compare(props: dict, reference: dict) -> list[dict]:
    """One row per numeric property present in both: value, reference, error, relative error (%).

    Lists (e.g. phonon_gamma_THz, li_diffusivity_cm2_s) are compared element by element and reported by
    their largest absolute error. Standard errors (`*_sd`) are not properties and get no row.
    """
    rows = []
    for key in sorted(k for k in set(props) & set(reference) - set(META_KEYS) if not k.endswith("_sd")):
        value, ref = props[key], reference[key]
        try:
            v, r = np.atleast_1d(np.asarray(value, dtype=float)), np.atleast_1d(np.asarray(ref, dtype=float))
        except (TypeError, ValueError):
            continue
        if v.shape != r.shape or v.size == 0:
            continue
        err = v - r
        k = int(np.argmax(np.abs(err)))
        rel = 100.0 * err[k] / r[k] if r[k] != 0 else float("nan")
        rows.append({"property": key, "value": value, "reference": ref,
                     "error": float(err[k]) if v.size > 1 else float(err[0]),
                     "relative_error_percent": float(rel)})
    return rows


def _fmt(x) -> str:
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_fmt(y) for y in x) + "]"
    return f"{x:.6g}" if isinstance(x, (int, float)) else str(x)


def comparison_markdown(rows: list[dict], title: str) -> str:
    """Markdown table; units are in each property name (e.g. _GPa), error columns share the property's unit."""
    lines = [f"# {title}", "",
             "| property (unit in name) | value | reference | error (same unit; max over a list) "
             "| relative error (%) |", "|---|---|---|---|---|"]
    lines += [f"| {r['property']} | {_fmt(r['value'])} | {_fmt(r['reference'])} | {_fmt(r['error'])} "
              f"| {r['relative_error_percent']:.3g} |" for r in rows]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_eos(path: Path, volumes, energies, bm, birch_murnaghan) -> None:
    """E–V points with the Birch–Murnaghan fit (per atom)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    v = np.linspace(volumes.min(), volumes.max(), 200)
    ax.plot(volumes, energies, "o", label="LAMMPS (ions relaxed)")
    ax.plot(v, birch_murnaghan(v, *bm), "-", label=f"Birch–Murnaghan, B = {bm[2] * EV_PER_A3_TO_GPA:.1f} GPa")
    ax.set_xlabel("volume (Å$^3$/atom)")
    ax.set_ylabel("energy (eV/atom)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_phonons(path: Path, result) -> None:
    """Dispersion along the standard path (each continuous segment drawn separately) with the DOS beside it."""
    plt = _pyplot()
    fig, (ax, ax_dos) = plt.subplots(1, 2, figsize=(8, 4), sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    axis = result.axis
    for start, stop in axis.segments:
        ax.plot(axis.x[start:stop], result.bands[start:stop], "k-", lw=1)
    for x in axis.tick_x:
        ax.axvline(x, color="0.7", lw=0.5)
    ax.set_xticks(axis.tick_x)
    ax.set_xticklabels(axis.tick_labels)
    ax.set_xlim(axis.x[0], axis.x[-1])
    ax.set_ylabel("frequency (THz)")
    ax_dos.plot(result.dos, result.dos_freq, "k-")
    ax_dos.set_xlabel("DOS (states/THz/cell)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rdf_adf(path: Path, r, g, theta, adf) -> None:
    """Radial and angular distribution functions of the liquid."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(r, g)
    a1.set_xlabel("r (Å)")
    a1.set_ylabel("g(r)")
    a2.plot(theta, adf)
    a2.set_xlabel("bond angle (degrees)")
    a2.set_ylabel("ADF (normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_diffusion(path: Path, curves: dict, temperatures, d_mean, d_err, fit) -> None:
    """MSD(t) per temperature and the Arrhenius plot with its fit; fit = (prefactor cm²/s, Ea eV)."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for temp, (t, msd) in curves.items():
        a1.plot(t, msd, label=f"{temp:.0f} K")
    a1.set_xlabel("time (ps)")
    a1.set_ylabel("MSD (Å$^2$)")
    a1.legend()
    inv = 1000.0 / np.asarray(temperatures)
    d = np.asarray(d_mean)
    a2.errorbar(inv, d, yerr=d_err, fmt="o")
    if fit is not None:
        x = np.linspace(inv.min(), max(inv.max(), 1000.0 / 300.0), 50)
        a2.plot(x, fit[0] * np.exp(-fit[1] / (KB_EV * 1000.0 / x)), "-",
                label=f"E$_a$ = {fit[1]:.3f} eV")
        a2.legend()
    a2.set_yscale("log")
    a2.set_xlabel("1000/T (1/K)")
    a2.set_ylabel("D (cm$^2$/s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
