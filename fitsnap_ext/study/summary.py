"""One row per model of the study (fit errors in report units, properties and their errors against the
references, MD speed) and the statistics the report and the plots draw from the rows.

Units: energy meV/atom, force eV/Å, stress bar; properties in the unit at the end of each name.
"""
from __future__ import annotations

import math

from .deck import ModelSpec
from .statistics import correlation, property_uncertainty

# properties shown in the report even without a reference
SHOWN_PROPERTIES = ("lattice_constant_A", "a_A", "c_A", "bulk_modulus_GPa", "C11_GPa", "C12_GPa", "C13_GPa",
                    "C33_GPa", "C44_GPa", "C66_GPa", "phonon_max_THz", "phonon_gamma_max_THz",
                    "liquid_density_g_cm3", "rdf_first_peak_A", "activation_energy_eV",
                    "ionic_conductivity_300K_mS_cm")
# a fitting error's report column: quantity → (name, unit, factor from eV/atom, eV/Å, bar)
ERROR_UNITS = {"Energy": ("energy", "meV_atom", 1000.0), "Force": ("force", "eV_A", 1.0),
               "Stress": ("stress", "bar", 1.0)}


def summary_row(model: ModelSpec, fit: dict | None, props: dict | None, md: dict | None, refs: dict,
                status: str, members: dict | None = None) -> dict:
    """The model's row of study.csv from its stage records (any of them None when the stage did not run).
    `fit["uncertainty"]` (bootstrap sds of its errors) gives `<error>_sd` columns; the members' properties
    (`members`, the properties_members stage) and the engine's `<property>_sd` give `<property>_sd` (and
    `<property>_spread`, the members' part)."""
    row = {"model": model.name, "kind": model.kind, "status": status}
    if fit:
        row.update(twojmax=fit["twojmax"], n_params=fit["n_params"], fit_wall_s=fit["fit_wall_s"])
        for e in fit["errors"]:
            if e["group"] != "*ALL":
                continue
            q, unit, f = ERROR_UNITS[e["quantity"]]
            sp = e["split"].lower()
            row[f"{q}_{sp}_mae_{unit}"] = e["mae"] * f
            row[f"{q}_{sp}_rmse_{unit}"] = e["rmse"] * f
        _error_sds(row, fit.get("uncertainty") or [])
    if props:
        row["props_wall_s"] = props.get("props_wall_s")
        notes = [f"{k}: {v}" for k, v in props["props"].get("failed_properties", {}).items()]
        if notes:
            row["notes"] = "; ".join(notes)
        for key, ref in refs.items():
            if key not in props["props"]:
                continue
            val = props["props"][key]
            row[key] = val
            if ref.get("compare", True) and not isinstance(val, list):
                try:
                    row[f"{key}_err"] = float(val) - float(ref["value"])
                except (TypeError, ValueError):
                    pass
        for key in SHOWN_PROPERTIES:
            if key in props["props"] and key not in row:
                row[key] = props["props"][key]
        _property_sds(row, props["props"], members)
    if md:
        row.update(md_katom_steps_per_s=md["md_katom_steps_per_s"], md_atoms=md["md_atoms"],
                   md_ranks=md["md_ranks"])
    return row


def _error_sds(row: dict, uncertainty: list[dict]) -> None:
    """`<error column>_sd` of every bootstrapped fitting error (a NaN sd — one configuration — is left out)."""
    for u in uncertainty:
        q, unit, f = ERROR_UNITS[u["quantity"]]
        for stat in ("mae", "rmse"):
            column = f"{q}_{u['split'].lower()}_{stat}_{unit}"
            if column in row and math.isfinite(u[f"{stat}_sd"]):
                row[column + "_sd"] = u[f"{stat}_sd"] * f


def _property_sds(row: dict, props: dict, members: dict | None) -> None:
    """`<property>_sd` = sqrt(spread² + stat²) and `<property>_spread` of every numeric property of the row:
    spread over the members' values (two or more), stat the engine's `<property>_sd` of the deployed model."""
    member_props = [m["props"] for m in (members or {}).get("members", []) if m.get("props")]
    if members:
        row["n_members"] = len(member_props)
        failed = [f"{m['name']} ({m.get('error', 'no properties')})" for m in members["members"] if not m.get("props")]
        if failed:  # a member that loses the crystal says the rung's spread is not bounded by the others'
            row["members_failed"] = f"{len(failed)} of {len(members['members'])}: " + "; ".join(failed)
    for key in [k for k, v in row.items() if k in props and isinstance(v, (int, float))
                and not isinstance(v, bool) and not k.endswith("_sd")]:
        u = property_uncertainty([m.get(key) for m in member_props], props.get(f"{key}_sd"))
        for part in ("sd", "spread"):
            if part in u:
                row[f"{key}_{part}"] = u[part]


def property_keys(rows, refs):
    """The compared references that at least one row has an error for."""
    return [k for k, ref in refs.items() if ref.get("compare", True) and any(f"{k}_err" in r for r in rows)]


def correlation_points(rows: list[dict], xkey: str, ykey: str) -> list[dict]:
    """The rows whose `xkey` and `ykey` are both finite numbers."""
    return [r for r in rows if all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) for k in (xkey, ykey))]


def correlations(rows: list[dict], xkey: str, ykey: str):
    """(n, Pearson r, Spearman ρ) of |y| against x over models with both finite (NaN below three models or for a
    constant variable)."""
    pts = correlation_points(rows, xkey, ykey)
    pearson, spearman = correlation([r[xkey] for r in pts], [abs(r[ykey]) for r in pts])
    return len(pts), pearson, spearman
