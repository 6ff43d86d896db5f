"""run_properties: relax the crystal, run the requested property decks, write props.json, plots and errors."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from fitsnap_ext.errors import FitsnapError, first_line
from fitsnap_ext.properties import report
from fitsnap_ext.properties.runner import DeckRunner, default_comm, lammps_cell, read_data, write_data
from fitsnap_ext.properties.systems import ALL_PROPERTIES, SystemPreset, get_preset


MD_PROPERTIES = ("liquid", "melting", "thermal", "diffusion")


def md_cell(preset: SystemPreset, relaxed_data: Path, volume_per_atom: float):
    """Cell for MD: the preset's orthogonal cell scaled to the relaxed volume, else the relaxed cell itself."""
    if preset.build_md is None:
        return read_data(relaxed_data, preset.elements)
    atoms = preset.build_md()
    scale = (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1.0 / 3.0)
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return atoms


def work_dir_for(out: Path) -> Path:
    """Folder for a run's LAMMPS outputs, logs and plots: next to props.json, named after it."""
    return out.parent / f"{out.stem}_files"


def curves_path(out: Path) -> Path:
    """Where run_properties puts the curves behind its plots (E–V, phonon DOS, g(r)/ADF, MSD/Arrhenius)."""
    return Path(out).with_name(Path(out).stem + "_curves.npz")


def run_properties(pot_mod: Path, system: str | SystemPreset, properties: list[str] | None = None,
                   quick: bool = False, out: Path = Path("props.json"), reference: Path | None = None,
                   comm=None) -> dict:
    """Compute the properties of one potential and write props.json (and errors against `reference`).

    The equation of state always runs first: its zero-pressure cell is the starting point of every other
    property. Every rank must call this (LAMMPS decomposes each run over `comm`); rank 0 writes the files.
    """
    comm = default_comm(comm)
    preset = get_preset(system) if isinstance(system, str) else system
    wanted = list(properties) if properties else list(preset.properties)
    unknown = [p for p in wanted if p not in ALL_PROPERTIES]
    if unknown:
        raise FitsnapError(f"unknown property {unknown} (known: {', '.join(ALL_PROPERTIES)})")
    if "diffusion" in wanted and (not preset.diffusing_element or not preset.diffusion_T):
        raise FitsnapError(f"system '{preset.name}' has no diffusing element/temperatures for 'diffusion'")
    pot_mod, out = Path(pot_mod).resolve(), Path(out).resolve()
    ref_values = report.load_reference(reference) if reference is not None else None
    work = work_dir_for(out)
    rank0 = comm.Get_rank() == 0
    dirs = {name: work / name for name in ["structure"] + ["eos"] + wanted}
    if rank0:
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    runner = DeckRunner(pot_mod, work / "logs", comm)

    atoms = preset.build()
    data = dirs["structure"] / "structure.data"
    if rank0:
        write_data(data, atoms, preset.elements, preset.masses)
    comm.Barrier()
    _, rotation = lammps_cell(atoms.cell.array)

    from fitsnap_ext.properties import eos as eos_mod

    props: dict = {"system": preset.name, "potential": str(pot_mod), "quick": bool(quick),
                   "elements": list(preset.elements), "properties": wanted,
                   "run_settings": asdict(preset.mode(quick))}
    eos = eos_mod.run_eos(runner, preset, data, dirs["eos"], quick)
    props.update(eos.values)
    curves = {"eos_v": eos.volumes, "eos_e": eos.energies}
    if eos.bm is not None:
        curves["eos_bm"] = eos.bm
        if rank0:
            report.plot_eos(work / "eos.png", eos.volumes, eos.energies, eos.bm, eos_mod.birch_murnaghan)

    md_data = dirs["structure"] / "md.data"
    if rank0 and any(p in wanted for p in MD_PROPERTIES):
        write_data(md_data, md_cell(preset, eos.relaxed_data, eos.values["volume_per_atom_A3"]),
                   preset.elements, preset.masses)
    comm.Barrier()

    def elastic():
        from fitsnap_ext.properties.elastic import run_elastic

        values, _ = run_elastic(runner, preset, eos.relaxed_data, dirs["elastic"], quick, rotation)
        props.update(values)

    def phonons():
        from fitsnap_ext.properties.phonons import run_phonons

        ph = run_phonons(runner, preset, eos.relaxed_data, dirs["phonons"], quick)
        props.update(ph.values)
        curves.update(dos_freq=ph.dos_freq, dos=ph.dos)
        if rank0:
            report.plot_phonons(work / "phonons.png", ph)

    def liquid():
        from fitsnap_ext.properties.liquid import run_liquid

        liq = run_liquid(runner, preset, md_data, dirs["liquid"], quick)
        props.update(liq.values)
        curves.update(rdf_r=liq.r, rdf_g=liq.g, adf_theta=liq.theta, adf=liq.adf)
        if rank0:
            report.plot_rdf_adf(work / "rdf_adf.png", liq.r, liq.g, liq.theta, liq.adf)

    def melting():
        from fitsnap_ext.properties.melting import run_melting

        props.update(run_melting(runner, preset, md_data, dirs["melting"], quick))

    def thermal():
        from fitsnap_ext.properties.thermal import run_thermal

        props.update(run_thermal(runner, preset, md_data, dirs["thermal"], quick))

    def diffusion():
        from fitsnap_ext.properties.diffusion import run_diffusion

        dif = run_diffusion(runner, preset, md_data, dirs["diffusion"], quick)
        props.update(dif.values)
        curves.update(dif_T=dif.temperatures, dif_D=dif.d_mean, dif_Derr=dif.d_err)
        curves.update({f"msd_{i}": np.asarray(c, float) for i, c in enumerate(dif.curves.values())})
        if rank0:
            report.plot_diffusion(work / "diffusion.png", dif.curves, dif.temperatures, dif.d_mean, dif.d_err,
                                  dif.arrhenius)

    # one property failing (an E–V scan falling into a hole, an MD run losing atoms) is that property's result:
    # the others are still computed, and the failure is recorded in props.json
    failed = {"eos_scan": eos.scan_failure} if eos.scan_failure else {}
    for name, compute in (("elastic", elastic), ("phonons", phonons), ("liquid", liquid), ("melting", melting),
                          ("thermal", thermal), ("diffusion", diffusion)):
        if name in wanted:
            try:
                compute()
            except FitsnapError as exc:
                failed[name] = first_line(exc)
    if failed:
        props["failed_properties"] = failed

    if rank0:
        out.parent.mkdir(parents=True, exist_ok=True)
        report.write_json(out, props)
        np.savez(curves_path(out), **{k: np.asarray(v, float) for k, v in curves.items()})
        if ref_values is not None:
            rows = report.compare(props, ref_values)
            report.write_json(out.with_name(out.stem + "_errors.json"), {"reference": str(reference),
                                                                         "rows": rows})
            out.with_name(out.stem + "_errors.md").write_text(
                report.comparison_markdown(rows, f"{preset.name}: {pot_mod.name} vs {Path(reference).name}"))
    comm.Barrier()
    return props
