"""The study's stages and its run: for every model, fit it, compute its properties with the property engine, time
NVE MD on a fixed supercell; then the report.

Stages are cached per model (`<out>/<model>/stage_<name>.json` holds the stage's cache key, see cache.py): a rerun
— or a resumed, interrupted study — skips every stage whose key is unchanged. Every rank calls everything (LAMMPS
runs are domain-decomposed over the communicator); rank 0 alone writes the records and the report. Nothing is
written to the current folder.

Units: LAMMPS metal (eV, Å, ps, K); MD speed in katom-steps per second.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from ..config import Settings, load_settings
from ..errors import FitsnapError, first_line
from ..parallel import collective
from .abinitio import abinitio_reference, data_provenance, load_literature
from .cache import cached, fit_key, mark_done, stage_key, structure_key
from .deck import ModelSpec, StudySpec, member_potentials, model_settings, study_system
from .report import write_report
from .statistics import bootstrap_errors
from .summary import summary_row


def log(comm, message: str) -> None:
    """A timestamped progress line (rank 0)."""
    if comm.rank == 0:
        print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _cached(folder: Path, stage: str, key: str, comm, force: bool, what: str) -> dict | None:
    """The stage's cached record (logging the skip as `what`), or None."""
    hit = cached(folder, stage, key, comm, force)
    if hit is not None:
        log(comm, f"{what} cached (key {key}), skipped")
    return hit


def parameter_count(settings: Settings, coef=None) -> int:
    """Fitted parameters of a model: network weights and biases, or the linear/quadratic coefficients."""
    bs = settings.bispectrum
    if settings.network is not None:
        n, nin = 0, bs.n_linear
        for h in settings.network.hidden:
            n += nin * h + h
            nin = h
        return bs.numtypes * (n + nin + 1)
    if coef is not None:
        return int(np.size(coef))
    return bs.numtypes * (bs.ncoeff + (0 if bs.bzeroflag else 1))


def network_available() -> str | None:
    """None if neural-network fits can run, else why not (torch is an optional dependency)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install -e '.[nn]')"
    return None


def stage_fit(spec: StudySpec, model: ModelSpec, settings: Settings, folder: Path, comm, force: bool) -> dict:
    """Fit the model; its files (pot.*, metrics.md, parity.df) go to `folder`."""
    key = fit_key(settings)
    hit = _cached(folder, "fit", key, comm, force, f"{model.name}: fit")
    if hit is not None:
        if "uncertainty" not in hit and (folder / "parity.df").is_file():  # a record of an earlier version
            hit["uncertainty"] = fit_error_uncertainty(folder / "parity.df") if comm.rank == 0 else []
            if comm.rank == 0:
                mark_done(folder, "fit", key, {k: v for k, v in hit.items() if k != "key"})
        return hit
    from ..pipeline import Progress, run_fit

    log(comm, f"{model.name}: fitting ({model.kind}, 2J={settings.bispectrum.twojmax})")
    t0 = time.perf_counter()
    result = run_fit(settings.in_folder(folder), comm, overwrite=True, progress=Progress(comm))
    wall = time.perf_counter() - t0
    data = {"kind": model.kind, "twojmax": settings.bispectrum.twojmax,
            "n_params": parameter_count(settings, None if settings.network else result.coef),
            "n_descriptors": settings.bispectrum.ncoeff, "fit_wall_s": wall,
            "n_configs": result.n_configs,
            "errors": [dataclasses.asdict(e) for e in result.error_rows], "overrides": list(model.overrides)}
    if comm.rank == 0:  # the bootstrap sds live in the record: parity.df is a work file (not committed)
        data["uncertainty"] = fit_error_uncertainty(folder / "parity.df")
        mark_done(folder, "fit", key, data)
    comm.Barrier()
    return {"key": key, **data}


def _property_key(spec: StudySpec, fitkey: str, **more) -> str:
    """The key of a properties stage: the fit's, the property list, engine mode, system, structure, run settings."""
    settings = {"run_settings": dict(spec.property_settings)} if spec.property_settings else {}
    return stage_key(fitkey, properties=spec.properties, quick=spec.property_quick, system=spec.system,
                     **structure_key(spec), **settings, **more)


def _run_engine(spec: StudySpec, mod: Path, out: Path, comm) -> tuple[dict, float]:
    """(props, wall seconds) of the study's properties of the potential `mod`, written to `out` (props.json)."""
    from ..properties import run_properties

    t0 = time.perf_counter()
    props = run_properties(mod, study_system(spec), list(spec.properties), spec.property_quick, out, None, comm,
                           overwrite=True)  # the stage's own cache folder
    return props, time.perf_counter() - t0


def stage_properties(spec: StudySpec, model: ModelSpec, fitkey: str, folder: Path, comm, force: bool) -> dict:
    """The study's properties of the fitted pot.mod (props.json and curves.npz in `folder`)."""
    key = _property_key(spec, fitkey)
    hit = _cached(folder, "properties", key, comm, force, f"{model.name}: properties")
    if hit is not None:
        return hit
    from ..properties.engine import curves_path

    log(comm, f"{model.name}: properties {', '.join(spec.properties)} ({'quick' if spec.property_quick else 'full'} engine mode)")
    props, wall = _run_engine(spec, folder / "pot.mod", folder / "props.json", comm)
    if comm.rank == 0:
        from ..properties.report import write_json

        props["potential"] = "pot.mod"  # as found from props.json (the engine records an absolute path)
        write_json(folder / "props.json", props)
        os.replace(curves_path(folder / "props.json"), folder / "curves.npz")
        mark_done(folder, "properties", key, {"props": props, "props_wall_s": wall})
    comm.Barrier()
    return {"key": key, "props": props, "props_wall_s": wall}


def stage_member_properties(spec: StudySpec, model: ModelSpec, fitkey: str, folder: Path, comm,
                            force: bool) -> dict | None:
    """The same properties of every member potential of the rung (ensemble members `pot.member<k>.mod`, posterior
    samples `pot.sample<k>.mod`), each into `folder/<member|sample><k>/props.json`; None for a rung without
    members. A member whose properties fail is recorded with its error; the others go on."""
    stems = member_potentials(spec, model)
    if not stems:
        return None
    key = _property_key(spec, fitkey, members=stems)
    hit = _cached(folder, "properties_members", key, comm, force, f"{model.name}: member properties")
    if hit is not None:
        return hit
    members, t0 = [], time.perf_counter()
    for i, stem in enumerate(stems):
        name = stem.split(".", 1)[1]
        log(comm, f"{model.name}: properties of {name} ({i + 1} of {len(stems)})")
        if comm.rank == 0:
            (folder / name).mkdir(exist_ok=True)
        comm.Barrier()
        try:
            props, wall = _run_engine(spec, folder / f"{stem}.mod", folder / name / "props.json", comm)
            members.append({"name": name, "props": props, "props_wall_s": wall})
        except FitsnapError as exc:
            log(comm, f"{model.name}: {name}: properties failed: {first_line(exc)}")
            members.append({"name": name, "props": None, "error": first_line(exc)})
    data = {"members": members, "members_wall_s": time.perf_counter() - t0}
    if comm.rank == 0:
        mark_done(folder, "properties_members", key, data)
    comm.Barrier()
    return {"key": key, **data}


def fit_error_uncertainty(parity: Path, seed: int = 0) -> list[dict]:
    """Bootstrap sds of the fit's MAE and RMSE over configurations (statistics.bootstrap_errors), per split and
    quantity of all groups, from the fit's parity.df (eV/atom, eV/Å, bar; empty without the file)."""
    if not parity.is_file():
        return []
    import pandas as pd

    df = pd.read_pickle(parity)
    configs = df["Groups"].astype(str) + "/" + df["Configs"].astype(str)
    out = []
    for (testing, kind), sel in df.groupby(["Testing", "Row_Type"]).groups.items():
        rows = df.loc[sel]
        stats = bootstrap_errors(rows["preds"].to_numpy(float) - rows["truths"].to_numpy(float),
                                 configs.loc[sel].to_numpy(), seed=seed)
        out.append({"split": "Test" if testing else "Train", "quantity": kind, **stats})
    return out


def stage_md_speed(spec: StudySpec, model: ModelSpec, fitkey: str, folder: Path, comm, force: bool,
                   volume_per_atom: float | None) -> dict:
    """NVE on the preset's MD cell × md_cell (e.g. 4×4×4 cubic Si = 512 atoms); only `run` is timed."""
    key = stage_key(fitkey, cell=spec.md_cell, steps=spec.md_steps, T=spec.md_temperature, system=spec.system,
                    ranks=comm.size, **structure_key(spec))
    hit = _cached(folder, "md", key, comm, force, f"{model.name}: MD timing")
    if hit is not None:
        return hit
    data = _md_cell(spec, folder / "md_speed.data", volume_per_atom, comm)
    natoms, wall, temp = _time_md(spec, model, data, folder / "pot.mod", comm)
    data_out = {"md_atoms": natoms, "md_steps": spec.md_steps, "md_ranks": comm.size, "md_wall_s": wall,
                "md_katom_steps_per_s": natoms * spec.md_steps / wall / 1e3, "md_final_T_K": temp}
    log(comm, f"{model.name}: MD {natoms} atoms × {spec.md_steps} steps on {comm.size} rank(s): "
              f"{data_out['md_katom_steps_per_s']:.2f} katom-step/s")
    if comm.rank == 0:
        mark_done(folder, "md", key, data_out)
    comm.Barrier()
    return {"key": key, **data_out}


def _md_cell(spec: StudySpec, data: Path, volume_per_atom: float | None, comm) -> Path:
    """Write the timing cell (the preset's MD cell at the model's volume when known, × md_cell) to `data`."""
    from ..properties.runner import write_data

    preset = study_system(spec)
    atoms = preset.build_md() if preset.build_md is not None else preset.build()
    if volume_per_atom and math.isfinite(volume_per_atom):
        scale = (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1.0 / 3.0)
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    atoms = atoms.repeat(spec.md_cell)
    if comm.rank == 0:
        write_data(data, atoms, preset.elements, preset.masses)
    comm.Barrier()
    return data


def _time_md(spec: StudySpec, model: ModelSpec, data: Path, mod: Path, comm) -> tuple[int, float, float]:
    """(atoms, wall seconds of the timed run, final temperature) of NVE MD on `data` with the potential `mod`."""
    from ..errors import LammpsError
    from ..lammps_session import LammpsSession, include_commands

    warm = max(5, spec.md_steps // 10)
    with collective(comm, "MD timing"):
        try:
            with LammpsSession(comm) as session:
                session.commands(["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
                                  *include_commands(mod), "timestep 0.001",
                                  f"velocity all create {spec.md_temperature * 2} 4928459 mom yes rot yes "
                                  "dist gaussian", "fix nve all nve", "thermo 0", f"run {warm}"])
                comm.Barrier()
                t0 = time.perf_counter()
                session.command(f"run {spec.md_steps}")
                comm.Barrier()
                wall = time.perf_counter() - t0
                return int(session.lmp.get_natoms()), wall, float(session.lmp.get_thermo("temp"))
        except LammpsError as exc:
            raise FitsnapError(f"{model.name}: MD timing failed in LAMMPS: {exc}") from None


def _references(spec: StudySpec, comm) -> tuple[dict, dict]:
    """The ab initio and literature references (computed on rank 0, written to reference.json/.npz, shared)."""
    refs, ref_curves = {}, {}
    with collective(comm, "references"):
        if comm.rank == 0:
            refs, ref_curves = abinitio_reference(spec, spec.out)
            for k, v in load_literature(spec.literature).items():
                refs.setdefault(k, v)  # values from the ab initio data itself take precedence
            (spec.out / "reference.json").write_text(json.dumps(refs, indent=1, default=float) + "\n")
            np.savez(spec.out / "reference_curves.npz", **ref_curves)
    refs = comm.bcast(refs, root=0)
    log(comm, f"{len(refs)} reference values ({', '.join(refs)})")
    return refs, ref_curves


def _run_model(spec: StudySpec, model: ModelSpec, settings: Settings, folder: Path, comm, force: bool,
               refs: dict) -> tuple[dict, tuple]:
    """One model's stages: (its summary row, (model, fit, props, md))."""
    t0 = time.perf_counter()
    fit = stage_fit(spec, model, settings, folder, comm, force)
    status, props, md = "ok", None, None
    try:  # a potential that blows up in MD is a result, not a reason to stop the study
        props = stage_properties(spec, model, fit["key"], folder, comm, force) if spec.properties else None
    except FitsnapError as exc:
        status = f"properties failed: {first_line(exc)}"
        log(comm, f"{model.name}: {status}")
    members = None
    try:
        members = stage_member_properties(spec, model, fit["key"], folder, comm, force) if props else None
    except FitsnapError as exc:
        log(comm, f"{model.name}: member properties failed: {first_line(exc)}")
    vpa = props["props"].get("volume_per_atom_A3") if props else None
    try:
        md = stage_md_speed(spec, model, fit["key"], folder, comm, force, vpa)
    except FitsnapError as exc:
        status = f"MD timing failed: {first_line(exc)}" if status == "ok" else status
        log(comm, f"{model.name}: {status}")
    log(comm, f"{model.name}: done in {time.perf_counter() - t0:.1f} s")
    row = summary_row(model, fit, props, md, refs, status, members)
    return row, (model, fit, props, md)


def run_study(spec: StudySpec, comm, force: bool = False, only: list[str] | None = None,
              command: str = "") -> dict:
    """Run every model of the study (or those named in `only`) and write the report; {"rows", "wall_s"}."""
    t_start = time.perf_counter()
    if comm.rank == 0:
        spec.out.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    refs, ref_curves = _references(spec, comm)
    provenance = data_provenance(load_settings(spec.base_deck, list(spec.base_overrides))) if comm.rank == 0 else []
    nn_problem = network_available()
    rows, results = [], []
    for model in spec.models:
        if only and model.name not in only:
            continue
        settings = model_settings(spec, model)
        folder = spec.out / model.name
        if comm.rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        comm.Barrier()
        if settings.network is not None and nn_problem:
            log(comm, f"{model.name}: SKIPPED — neural-network rung needs {nn_problem}")
            rows.append(summary_row(model, None, None, None, refs, f"skipped: {nn_problem}"))
            continue
        row, result = _run_model(spec, model, settings, folder, comm, force, refs)
        rows.append(row)
        results.append(result)
    wall = time.perf_counter() - t_start
    if comm.rank == 0:
        write_report(spec, rows, results, refs, ref_curves, wall, command, comm.size, provenance)
        log(comm, f"report: {spec.out / 'study.md'} ({wall:.1f} s)")
    comm.Barrier()
    return {"rows": rows, "wall_s": wall}
