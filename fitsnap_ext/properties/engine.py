"""run_properties: relax the crystal, run the requested property decks, write props.json, plots and errors."""
from __future__ import annotations

import os

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fitsnap_ext.errors import FitsnapError, first_line
from fitsnap_ext.parallel import comm_or_world
from fitsnap_ext.properties import report
from fitsnap_ext.properties.cost import RunProgress, measure_speed, planned_runs, speed_replication
from fitsnap_ext.properties.outputs import (CreatedFolders, check_outputs, clear_outputs, curves_path, errors_paths,
                                            on_rank0, work_dir_for)
from fitsnap_ext.properties.runner import DeckRunner, lammps_cell, read_data, write_data
from fitsnap_ext.properties.sanity import suspect_flags
from fitsnap_ext.properties.systems import ALL_PROPERTIES, SystemPreset, get_preset

__all__ = ["run_properties", "raise_if_failed", "curves_path", "work_dir_for"]

MD_PROPERTIES = ("liquid", "melting", "thermal", "diffusion")


def md_cell(preset: SystemPreset, relaxed_data: Path, volume_per_atom: float):
    """Cell for MD: the preset's orthogonal cell scaled to the relaxed volume, else the relaxed cell itself."""
    if preset.build_md is None:
        return read_data(relaxed_data, preset.elements)
    atoms = preset.build_md()
    scale = (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1.0 / 3.0)
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return atoms


@dataclass
class PropertyRun:
    """What one property needs (the relaxed crystal, the MD cell, its folder) and where it puts its results."""

    runner: DeckRunner
    preset: SystemPreset
    quick: bool
    eos: object
    md_data: Path
    out: Path                  # this property's folder
    work: Path                 # the run's folder (plots)
    rotation: np.ndarray
    props: dict
    curves: dict

    def plot(self, name: str, draw, *args) -> None:
        on_rank0(self.runner.comm, f"plotting {self.work / name}", lambda: draw(self.work / name, *args))

    def elastic(self):
        from fitsnap_ext.properties.elastic import run_elastic

        values, _ = run_elastic(self.runner, self.preset, self.eos.relaxed_data, self.out, self.quick, self.rotation)
        self.props.update(values)

    def phonons(self):
        from fitsnap_ext.properties.phonons import run_phonons

        ph = run_phonons(self.runner, self.preset, self.eos.relaxed_data, self.out, self.quick)
        self.props.update(ph.values)
        self.curves.update(dos_freq=ph.dos_freq, dos=ph.dos)
        self.plot("phonons.png", report.plot_phonons, ph)

    def liquid(self):
        from fitsnap_ext.properties.liquid import run_liquid

        liq = run_liquid(self.runner, self.preset, self.md_data, self.out, self.quick)
        self.props.update(liq.values)
        self.curves.update(rdf_r=liq.r, rdf_g=liq.g, adf_theta=liq.theta, adf=liq.adf)
        self.plot("rdf_adf.png", report.plot_rdf_adf, liq.r, liq.g, liq.theta, liq.adf)

    def melting(self):
        from fitsnap_ext.properties.melting import run_melting

        self.props.update(run_melting(self.runner, self.preset, self.md_data, self.out, self.quick))

    def thermal(self):
        from fitsnap_ext.properties.thermal import run_thermal

        self.props.update(run_thermal(self.runner, self.preset, self.md_data, self.out, self.quick))

    def diffusion(self):
        from fitsnap_ext.properties.diffusion import run_diffusion

        dif = run_diffusion(self.runner, self.preset, self.md_data, self.out, self.quick)
        self.props.update(dif.values)
        self.curves.update(dif_T=dif.temperatures, dif_D=dif.d_mean, dif_Derr=dif.d_err)
        self.curves.update({f"msd_{i}": np.asarray(c, float) for i, c in enumerate(dif.curves.values())})
        self.plot("diffusion.png", report.plot_diffusion, dif.curves, dif.temperatures, dif.d_mean, dif.d_err,
                  dif.arrhenius)


def raise_if_failed(props: dict) -> None:
    """Raise a FitsnapError naming every property that failed (props.json still holds the others): a run with a
    failure must not end with exit status 0."""
    failed = props.get("failed_properties") or {}
    if failed:
        raise FitsnapError("properties failed: " + "; ".join(f"{name}: {why}" for name, why in failed.items()))


def run_properties(pot_mod: Path, system: str | SystemPreset, properties: list[str] | None = None,
                   quick: bool = False, out: Path = Path("props.json"), reference: Path | None = None,
                   comm=None, overwrite: bool = False, stream=None) -> dict:
    """Compute the properties of one potential and write props.json (and errors against `reference`).

    The equation of state always runs first: its zero-pressure cell is the starting point of every other
    property. Every rank must call this (LAMMPS decomposes each run over `comm`); rank 0 writes the files.
    Existing outputs are refused unless `overwrite`; a property that fails is recorded in props.json under
    "failed_properties" (see `raise_if_failed`); physically suspect values under "suspect". Progress lines go
    to `stream` (stdout) on rank 0.
    """
    comm = comm_or_world(comm)
    preset = get_preset(system) if isinstance(system, str) else system
    wanted = list(properties) if properties else list(preset.properties)
    unknown = [p for p in wanted if p not in ALL_PROPERTIES]
    if unknown:
        raise FitsnapError(f"unknown property {unknown} (known: {', '.join(ALL_PROPERTIES)})")
    if "diffusion" in wanted and (not preset.diffusing_element or not preset.diffusion_T):
        raise FitsnapError(f"system '{preset.name}' has no diffusing element/temperatures for 'diffusion'")
    pot_mod, out = Path(pot_mod).resolve(), Path(out).resolve()
    ref_values = report.load_reference(reference) if reference is not None else None
    runner = DeckRunner(pot_mod, work_dir_for(out) / "logs", comm)
    on_rank0(comm, f"checking {out}", lambda: check_outputs(out, overwrite))
    folders = CreatedFolders()
    try:
        if overwrite:
            on_rank0(comm, f"removing the old outputs of {out}", lambda: clear_outputs(out))
        props = _compute(runner, preset, wanted, quick, out, folders, stream)
        props["potential"] = os.path.relpath(pot_mod, out.parent)  # props.json names no machine path
        _write_outputs(comm, props, out, reference, ref_values, f"{preset.name}: {pot_mod.name}")
        on_rank0(comm, f"tidying {work_dir_for(out)}", lambda: folders.remove_empty(work_dir_for(out)))
    except Exception:
        if comm.Get_rank() == 0:   # a failed run leaves nothing behind: no half-written outputs, no empty folders
            try:
                clear_outputs(out)
            except OSError:        # the error being raised says more than a failed clean-up
                pass
            folders.remove_all()
        raise
    return props


def _write_outputs(comm, props: dict, out: Path, reference, ref_values, title: str) -> None:
    """props.json, the curves and (with a reference) the comparison, written by rank 0."""
    curves = props.pop("_curves")

    def write():
        report.write_json(out, props)
        np.savez(curves_path(out), **{k: np.asarray(v, float) for k, v in curves.items()})
        if ref_values is not None:
            rows = report.compare(props, ref_values)
            errors_json, errors_md = errors_paths(out)
            report.write_json(errors_json, {"reference": os.path.relpath(Path(reference).resolve(), out.parent),
                                            "rows": rows})
            errors_md.write_text(report.comparison_markdown(rows, f"{title} vs {Path(reference).name}"))

    on_rank0(comm, f"writing {out}", write)


def _estimate(runner: DeckRunner, progress: RunProgress, md_atoms, md_data: Path, temperature: float):
    """Measure the MD speed and print the estimated cost: (atom-steps/s, seconds per property), or (None, {}) with a
    warning if the speed run failed (the properties themselves may still run)."""
    try:
        speed = measure_speed(runner, md_atoms, md_data, md_data.parent, temperature)
    except FitsnapError as exc:
        progress.warn(f"MD speed not measured, no estimate: {first_line(exc, 200)}")
        return None, {}
    cells = int(np.prod(speed_replication(md_atoms.cell.lengths(), len(md_atoms))))
    return speed, progress.estimate(speed, len(md_atoms) * cells)


def _compute(runner: DeckRunner, preset: SystemPreset, wanted: list[str], quick: bool, out: Path,
             folders: CreatedFolders, stream) -> dict:
    """EOS, the speed measurement and estimate, then each wanted property; returns props (curves under "_curves")."""
    comm, work = runner.comm, work_dir_for(out)

    def folder(name: str) -> Path:
        on_rank0(comm, f"creating {work / name}", lambda: folders.make(work / name))
        return work / name

    atoms = preset.build()
    md_atoms = preset.build_md() if preset.build_md is not None else atoms
    progress = RunProgress(comm, planned_runs(preset, quick, wanted, len(atoms), len(md_atoms)), stream)
    runner.monitor = progress
    progress(f"{', '.join(wanted)} of {runner.pot_mod.name} for '{preset.name}' ({'quick' if quick else 'full'} "
             f"mode) -> {out}")
    folder("logs")
    data = folder("structure") / "structure.data"
    on_rank0(comm, f"writing {data}", lambda: write_data(data, atoms, preset.elements, preset.masses))
    _, rotation = lammps_cell(atoms.cell.array)

    from fitsnap_ext.properties import eos as eos_mod

    props: dict = {"system": preset.name, "potential": str(runner.pot_mod), "quick": bool(quick),
                   "elements": list(preset.elements), "properties": wanted,
                   "run_settings": asdict(preset.mode(quick))}
    t0 = time.perf_counter()
    eos = eos_mod.run_eos(runner, preset, data, folder("eos"), quick)
    walls = {"eos": time.perf_counter() - t0}
    progress(f"eos: done in {walls['eos']:.1f} s{progress.left()}")
    props.update(eos.values)
    curves = {"eos_v": eos.volumes, "eos_e": eos.energies}
    if eos.bm is not None:
        curves["eos_bm"] = eos.bm
        on_rank0(comm, f"plotting {work / 'eos.png'}", lambda: report.plot_eos(
            work / "eos.png", eos.volumes, eos.energies, eos.bm, eos_mod.birch_murnaghan))

    md_data = work / "structure" / "md.data"
    md_atoms = md_cell(preset, eos.relaxed_data, eos.values["volume_per_atom_A3"])
    on_rank0(comm, f"writing {md_data}", lambda: write_data(md_data, md_atoms, preset.elements, preset.masses))
    speed, estimated = _estimate(runner, progress, md_atoms, md_data, preset.thermal_T) if set(wanted) - {"eos"} \
        else (None, {})

    failed = {"eos_scan": eos.scan_failure} if eos.scan_failure else {}
    for name in [p for p in ALL_PROPERTIES if p in wanted and p != "eos"]:
        progress(f"{name}: started{progress.left()}")
        t0 = time.perf_counter()
        try:
            run = PropertyRun(runner, preset, quick, eos, md_data, folder(name), work, rotation, props, curves)
            getattr(run, name)()
        except FitsnapError as exc:
            # one property failing (an MD run losing atoms) is that property's result: the others still run
            failed[name] = first_line(exc)
            progress(f"{name}: FAILED after {time.perf_counter() - t0:.1f} s: {failed[name]}")
        else:
            progress(f"{name}: done in {time.perf_counter() - t0:.1f} s{progress.left()}")
        walls[name] = time.perf_counter() - t0
    if failed:
        props["failed_properties"] = failed
    flags = suspect_flags(props, preset.elastic_symmetry, preset.liquid_coordination,
                          preset.liquid_T if "liquid" in wanted else None)
    if flags:
        props["suspect"] = flags
    for key, why in flags.items():
        progress.warn(f"suspect {key}: {why}")
    props["timing_s"] = {"md_speed_atom_steps_per_s": speed, "estimated": estimated, "wall": walls,
                         "ranks": comm.Get_size()}
    progress(f"all done in {progress.elapsed():.1f} s" + (f" ({len(failed)} failed)" if failed else ""))
    props["_curves"] = curves
    return props
