"""The study's ab initio references: what the data rest on (each group's labeler), E–V fits of the volume set
(Birch–Murnaghan; GaN's (a, c) grid as a surface), the liquid's g(r), coordination and bond angles from DFT frames,
and literature values from input_files/reference/*.json.

Units: eV/atom, Å³/atom, Å, GPa, g/cm³, degrees; every value carries its source.
"""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np

from ..settings import Settings
from ..data.dataset import group_file, group_files
from ..errors import DataError, FitsnapError
from .deck import StudySpec, repo_relative

MIN_EOS_FRAMES = 5  # E0, V0, B0, B0' and one degree of freedom


def labeler_summary(info: dict) -> str:
    """`cp2k (PBE, GTH-PBE, DZVP-MOLOPT-SR-GTH)`, `lammps (sw)`, `sevenn (7net-0) — surrogate: ...` from a frame's
    generator keys; '' when the frame records no labeler."""
    if "labeler" not in info:
        return ""
    try:
        settings = json.loads(info.get("labeler_settings", "{}"))
    except (TypeError, ValueError):
        settings = {}
    details = [str(settings[k]) for k in ("xc", "potential", "basis", "pair_style", "model") if k in settings]
    text = str(info["labeler"]) + (f" ({', '.join(details)})" if details else "")
    return text + (f" — {info['labeler_note']}" if "labeler_note" in info else "")


def data_provenance(settings: Settings) -> list[dict]:
    """Per group of the fitting deck: its file, frame count and labeler(s) as the generator recorded them
    (`labeler`, `labeler_note` on every frame; absent from public sets), so a report says what it rests on — a
    surrogate-labelled set above all."""
    from ase.io.extxyz import key_val_str_to_dict

    from ..data.extxyz import scan_extxyz

    rows = []
    for group in settings.groups.groups:
        path = group_file(settings, group)
        row = {"group": group.name, "file": path.name if path else "missing", "frames": 0, "labelers": []}
        if path is not None and path.is_file():
            spans, _, _ = scan_extxyz(path)
            with open(path, "rb") as fh:
                for start, _ in spans:
                    fh.seek(start)
                    fh.readline()
                    info = key_val_str_to_dict(fh.readline().decode())
                    who = labeler_summary(info)
                    if who and who not in row["labelers"]:
                        row["labelers"].append(who)
            row["frames"] = len(spans)
        elif path is not None:
            row["frames"] = len(group_files(settings, group))
        rows.append(row)
    return rows


def _read_frames(path: Path):
    from ase.io import read

    return read(str(path), index=":", parallel=False)  # rank 0 alone: ASE must not broadcast


def rdf_numpy(frames, rmax: float, dr: float = 0.02):
    """g(r) averaged over frames (minimum image; rmax ≤ half the shortest perpendicular cell width)."""
    edges = np.arange(0.0, rmax + dr, dr)
    hist = np.zeros(len(edges) - 1)
    rho_sum = 0.0
    for a in frames:
        cell = a.cell.array
        frac = a.get_scaled_positions(wrap=True)
        d = frac[:, None, :] - frac[None, :, :]
        d -= np.round(d)
        r = np.linalg.norm(d @ cell, axis=-1)
        iu = np.triu_indices(len(a), 1)
        hist += 2 * np.histogram(r[iu], bins=edges)[0]
        rho_sum += len(a) ** 2 / a.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (shell * rho_sum)
    r = 0.5 * (edges[1:] + edges[:-1])
    coord = np.cumsum(hist) / sum(len(a) for a in frames)  # running coordination number n(r_upper)
    return r, g, coord


def abinitio_reference(spec: StudySpec, out_dir: Path) -> tuple[dict, dict]:
    """({key: {value, unit, source}}, curves) computed from the ab initio data sets named in [REFERENCE]."""
    refs, curves = {}, {}
    shown = partial(repo_relative, deck=spec.deck)
    if spec.volume_set is not None:
        refs.update(_volume_reference(spec, shown, curves))
    for key, label in (("liquid_set", "liquid"), ("solid_md_set", "solid")):
        path = getattr(spec, key)
        if path is None:
            continue
        frames = _read_frames(path)
        widths = min(a.get_volume() / np.linalg.norm(np.cross(*np.delete(a.cell.array, i, 0)))
                     for a in frames[:1] for i in range(3))
        r, g, coord = rdf_numpy(frames, rmax=min(6.0, 0.5 * widths - 1e-6))
        curves.update({f"{label}_rdf_r": r, f"{label}_rdf_g": g})
        if label == "liquid":
            refs.update(_liquid_reference(frames, r, g, coord, f"{path.name} ({shown(path)})", path.name, curves))
    return refs, curves


def _volume_reference(spec: StudySpec, shown, curves: dict) -> dict:
    """E0, V0, B (and a, or a and c for GaN) from the volume set's energies; adds the E–V curves to `curves`."""
    from ..properties.eos import birch_murnaghan, fit_birch_murnaghan
    from ..units import EV_PER_A3_TO_GPA as EV_A3_TO_GPA

    frames = _read_frames(spec.volume_set)
    v = np.array([a.get_volume() / len(a) for a in frames])
    e = np.array([a.get_potential_energy() / len(a) for a in frames])
    where = f"[ABINITIO] volume_set ({len(frames)} frames)"
    who = labeler_summary(frames[0].info) or "DFT"
    if spec.system == "gan":
        what = f"{spec.volume_set.name} ({shown(spec.volume_set)}; labels: {who})"
        return _hexagonal_reference(frames, v, e, what, where, spec.volume_set, curves)
    if len(frames) < MIN_EOS_FRAMES:
        raise DataError(f"{where}: a Birch–Murnaghan fit needs at least {MIN_EOS_FRAMES} frames", spec.volume_set)
    try:
        e0, v0, b0, bp = fit_birch_murnaghan(v, e)
    except FitsnapError as exc:
        raise DataError(f"{where}: {exc}", spec.volume_set) from None
    src = (f"3rd-order Birch–Murnaghan fit to (V/atom, E/atom) of the {len(frames)} frames of "
           f"{spec.volume_set.name} ({shown(spec.volume_set)}; labels: {who})")
    refs = {"energy_per_atom_eV": {"value": e0, "unit": "eV/atom", "source": src},
            "volume_per_atom_A3": {"value": v0, "unit": "Å³/atom", "source": src},
            "bulk_modulus_GPa": {"value": b0 * EV_A3_TO_GPA, "unit": "GPa", "source": src}}
    if spec.system == "si":
        refs["lattice_constant_A"] = {"value": (8 * v0) ** (1 / 3), "unit": "Å", "source": src + "; a = (8 V0)^(1/3)"}
    vv = np.linspace(v.min(), v.max(), 100)
    curves.update(eos_v=v, eos_e=e, eos_fit_v=vv, eos_fit_e=birch_murnaghan(vv, e0, v0, b0, bp))
    return refs


def _liquid_reference(frames, r, g, coord, what: str, name: str, curves: dict) -> dict:
    """First g(r) peak, coordination and bond angles of DFT liquid frames (`what`: the file as reports name it);
    adds the bond-angle distribution to `curves`."""
    from ..properties.liquid import (ADF_BOND_CUTOFF, SMALL_ANGLE_DEG, adf_numpy, first_peak_and_coordination,
                                     small_angle_fraction)

    peak, rmin, cn = first_peak_and_coordination(r, g, coord)
    theta, adf, _ = adf_numpy(frames)
    curves.update(liquid_adf_theta=theta, liquid_adf=adf)
    masses = frames[0].get_masses().sum()
    dens = masses / frames[0].get_volume() * 1.66053906660
    src = (f"g(r) of the {len(frames)} DFT liquid frames of {what}; these are "
           f"fixed-volume snapshots at {dens:.3f} g/cm³, the engine's liquid is NPT at P = 0: "
           f"compare with care")
    how = f"; bond angles with both bonds < {ADF_BOND_CUTOFF} Å (as the engine's compute adf)"
    return {
        "rdf_first_peak_A": {"value": peak, "unit": "Å", "source": src},
        "coordination_number": {"value": cn, "unit": "atoms (to the first g(r) minimum)",
                                "source": src + f"; first minimum at {rmin:.2f} Å"},
        "adf_small_angle_fraction": {"value": small_angle_fraction(theta, adf), "unit": "",
                                     "source": src + how + f", fraction below {SMALL_ANGLE_DEG:g}°"},
        "adf_peak_deg": {"value": float(theta[np.argmax(adf)]), "unit": "degrees", "compare": False,
                         "source": src + how + "; most probable angle — not compared: two peaks of "
                                               "similar height, the argmax jumps between them"},
        "dft_liquid_frames_density_g_cm3": {
            "value": dens, "unit": "g/cm³", "compare": False,
            "source": f"density of the fixed cell of {name}; NOT an equilibrium liquid density "
                      f"(the AIMD ran at fixed volume), so not compared with liquid_density_g_cm3"},
    }


def _hexagonal_reference(frames, v, e, what: str, where: str, path: Path, curves: dict) -> dict:
    """a, c, E0, V0 and B of a hexagonal crystal from a grid of (a, c) cells (GaN's strained-cell set): the
    minimum and curvature of a cubic E(a, c) surface; E–V curve along isotropic scaling of (a0, c0)."""
    from ..generate.cp2k import labelled_kpoint_mesh
    from ..properties.eos import fit_hexagonal_surface
    from ..units import EV_PER_A3_TO_GPA as EV_A3_TO_GPA

    la = np.array([fr.cell.lengths()[0] for fr in frames])
    lc = np.array([fr.cell.lengths()[2] for fr in frames])
    # a k-point spacing rounds to different meshes across the grid, each with its own k-point error: one energy
    # zero per mesh, the densest first (GaN, kspacing 0.4: 5x3x3 above c = 5.236 Å, 5x3x4 below, 1.1 meV/atom)
    meshes = [labelled_kpoint_mesh(fr.info, fr.cell.array) for fr in frames]
    order = sorted(set(meshes), key=lambda m: -math.prod(m) if m else 0)
    zero_groups = [order.index(m) for m in meshes]
    try:
        hexa = fit_hexagonal_surface(la, lc, v, e, zero_groups=zero_groups if len(order) > 1 else None)
    except FitsnapError as exc:
        raise DataError(f"{where}: {exc}", path) from None
    per_mesh = ""
    if len(order) > 1:
        mesh = lambda m: "x".join(map(str, m))  # noqa: E731
        per_mesh = ("; one energy zero per DFT k-mesh (energies of the " + mesh(order[0]) + " cells; " +
                    ", ".join(f"{mesh(order[k])} {hexa.offsets[k] * 1e3:+.2f} meV/atom" for k in hexa.offsets) +
                    ")")
    src = (f"minimum of a cubic E(a, c) fitted to the {len(frames)} cells of {what} (rms {hexa.rms * 1e3:.2g} "
           f"meV/atom; internal coordinates as in the cells{per_mesh})")
    bsrc = src + "; B = V d²E/dV² for isotropic scaling of (a0, c0), as the engine's E–V scan"
    scale = np.linspace((v.min() / hexa.v0) ** (1 / 3), (v.max() / hexa.v0) ** (1 / 3), 100)
    on_first_mesh = e - np.array([hexa.offsets.get(z, 0.0) for z in zero_groups])  # the plotted points
    curves.update(eos_v=v, eos_e=on_first_mesh, eos_fit_v=hexa.v0 * scale ** 3,
                  eos_fit_e=hexa.energy(hexa.a0 * scale, hexa.c0 * scale))
    return {"energy_per_atom_eV": {"value": hexa.e0, "unit": "eV/atom", "source": src},
            "volume_per_atom_A3": {"value": hexa.v0, "unit": "Å³/atom", "source": src},
            "bulk_modulus_GPa": {"value": hexa.bulk_modulus * EV_A3_TO_GPA, "unit": "GPa", "source": bsrc},
            "a_A": {"value": hexa.a0, "unit": "Å", "source": src},
            "c_A": {"value": hexa.c0, "unit": "Å", "source": src}}


def load_literature(path: Path | None) -> dict:
    """input_files/reference/*.json: {"values": {key: {"value", "unit", "source"}}}; every value needs a source."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise FitsnapError(f"{path}: not valid JSON ({exc})") from None
    values = data.get("values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise FitsnapError(f"{path}: expected {{\"values\": {{key: {{\"value\", \"unit\", \"source\"}}}}}}")
    for k, v in values.items():
        if not isinstance(v, dict) or "value" not in v or not v.get("source"):
            raise FitsnapError(f"{path}: reference {k!r} needs a value and a source")
    return values
