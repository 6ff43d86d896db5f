"""Samplers: deterministic streams of unlabelled configurations, each with an id ``<group>:<index>``.

The same deck and seed always give the same configurations with the same ids, so a rerun can skip the ids that
are already in the output file. `needed(index)` lets a sampler skip work whose configurations all exist.
"""
from __future__ import annotations

import zlib
from typing import Callable, Iterator

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, DeckError
from fitsnap_ext.generate.deck import GeneratorDeck, GroupSettings
from fitsnap_ext.generate.structures import atoms_to_frame, frame_to_atoms, load_structure
from fitsnap_ext.progress import Progress


def group_seed(seed: int, group: str, *more: int) -> list[int]:
    """Seed material for numpy's default_rng: stable across runs, processes and platforms."""
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(group.encode()) & 0xFFFFFFFF] + [int(m) for m in more]


def _int_seed(seed, group, *more) -> int:
    return int(np.random.default_rng(group_seed(seed, group, *more)).integers(1, 2**30))


def config_id(group: str, index: int) -> str:
    return f"{group}:{index}"


def n_configs(g: GroupSettings) -> int:
    """How many configurations (ids) a group has."""
    if g.sampler in ("lammps_md", "ase_md"):
        return g.n_frames * len(g.temperatures)
    return g.n_frames


def _tag(frame: Frame, g: GroupSettings, index: int, **info) -> Frame:
    frame.group = g.name
    frame.info = {"config_id": config_id(g.name, index), **info}
    frame.source = config_id(g.name, index)
    return frame


def _structure(g: GroupSettings) -> Frame:
    return load_structure(g.structure, g.lattice, g.supercell, g.structure_index)


# ---------------------------------------------------------------------------------------------- strain/rattle


def _ase_calculator(g: GroupSettings, labeler, key: str = "md_calculator"):
    """The group's ASE calculator: the labeler's own (`labeler`) or `module:Class` with its kwargs."""
    import importlib

    if g.md_calculator == "labeler":
        if labeler is None:
            raise DeckError(f"{g.sampler} with md_calculator = labeler needs the labeler", section=f"GROUP {g.name}",
                            key=key)
        return labeler.ase_calculator()
    mod, cls = g.md_calculator.split(":")
    try:
        return getattr(importlib.import_module(mod), cls)(**g.md_calculator_kwargs)
    except (ImportError, AttributeError) as exc:
        raise DeckError(f"cannot import {g.md_calculator}: {exc}", section=f"GROUP {g.name}", key=key)


def _relax_ions(positions: np.ndarray, base: Frame, cell: np.ndarray, g: GroupSettings, calc) -> tuple:
    """FIRE on the ions at a fixed cell to max |F| < relax_fmax (or relax_steps): an E–V point with relaxed
    ions, as the property engine's E–V scan has. Returns (positions, steps, max |F|)."""
    from ase.optimize import FIRE
    from ase.parallel import DummyMPI

    atoms = frame_to_atoms(Frame(symbols=list(base.symbols), positions=positions, cell=cell, pbc=base.pbc))
    atoms.calc = calc
    opt = FIRE(atoms, logfile=None, comm=DummyMPI())
    opt.run(fmax=g.relax_fmax, steps=g.relax_steps)
    fmax = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())
    return np.array(atoms.get_positions()), int(opt.get_number_of_steps()), fmax


def strain_rattle(deck: GeneratorDeck, g: GroupSettings, needed: Callable[[int], bool], labeler=None) -> Iterator:
    base = _structure(g)
    calc = _ase_calculator(g, labeler, "relax_fmax") if g.relax_fmax else None
    n = g.n_frames
    for i in range(n):
        if not needed(i):
            continue
        rng = np.random.default_rng(group_seed(deck.generate.seed, g.name, i))
        eps = np.zeros((3, 3))
        info = {}
        low = -g.strain if g.strain_min is None else g.strain_min
        if g.strain_mode == "isotropic_grid":
            s = low + ((g.strain - low) * i / (n - 1) if n > 1 else (g.strain - low) / 2)
            eps = np.eye(3) * s
            info["strain"] = float(s)
        elif g.strain_mode == "isotropic":
            s = float(rng.uniform(low, g.strain))
            eps = np.eye(3) * s
            info["strain"] = s
        elif g.strain_mode == "random":
            e = rng.uniform(-g.strain, g.strain, (3, 3))
            eps = np.triu(e) + np.triu(e, 1).T  # symmetric, 6 independent components
        deform = np.eye(3) + eps
        pos = base.positions @ deform
        if calc is not None:
            pos, info["relax_steps"], info["relax_max_force"] = _relax_ions(pos, base, base.cell @ deform, g, calc)
        if g.rattle > 0:
            pos = pos + rng.normal(0.0, g.rattle, pos.shape)
        fr = Frame(symbols=list(base.symbols), positions=pos, cell=base.cell @ deform, pbc=base.pbc)
        yield i, _tag(fr, g, i, **info)


# ------------------------------------------------------------------------------------------------------ MD


def _md_potential(deck: GeneratorDeck, g: GroupSettings):
    lab = deck.labeler
    if g.md_potential == "labeler":
        if lab.mod:
            return lab.mod, lab.masses
        return [f"pair_style {lab.pair_style}"] + [
            ln if ln.startswith("pair_coeff") else f"pair_coeff {ln}" for ln in lab.pair_coeff] + list(
            lab.pair_commands), lab.masses
    return g.md_potential, lab.masses if lab.type == "lammps" else []


def _elements(deck: GeneratorDeck, structure: Frame) -> list[str]:
    if deck.generate.elements:
        return list(deck.generate.elements)
    seen = []
    for s in structure.symbols:
        if s not in seen:
            seen.append(s)
    return seen


def _lammps_md_stream(deck, g, potential, masses, needed, temperatures, n_per_t, id_offset=0):
    from fitsnap_ext.lammps_engine import LammpsEngine
    base = _structure(g)
    eng = LammpsEngine(_elements(deck, base), potential, masses or None)
    try:
        for ti, t in enumerate(temperatures):
            first = id_offset + ti * n_per_t
            wanted = [k for k in range(n_per_t) if needed(first + k)]
            if not wanted:
                continue
            stream = eng.md(base, t, wanted[-1] + 1, g.interval, g.equilibration, g.timestep,
                            _int_seed(deck.generate.seed, g.name, ti), g.ensemble, g.pressure, g.damping,
                            g.melt_temperature, g.melt_steps)
            for k, (step, temp, fr) in enumerate(stream):
                idx = first + k
                if needed(idx):
                    yield idx, _tag(fr, g, idx, temperature=float(t), step=int(step))
    finally:
        eng.close()


def lammps_md(deck: GeneratorDeck, g: GroupSettings, needed) -> Iterator:
    potential, masses = _md_potential(deck, g)
    yield from _lammps_md_stream(deck, g, potential, masses, needed, g.temperatures, g.n_frames)


def ase_md(deck: GeneratorDeck, g: GroupSettings, needed, labeler=None) -> Iterator:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import Stationary
    from ase.parallel import DummyMPI
    try:
        from ase.md.velocitydistribution import thermalize_momenta as thermalize
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize

    calc = _ase_calculator(g, labeler)
    base = _structure(g)
    for ti, t in enumerate(g.temperatures):
        first = ti * g.n_frames
        wanted = [k for k in range(g.n_frames) if needed(first + k)]
        if not wanted:
            continue
        atoms = frame_to_atoms(base)
        atoms.calc = calc
        seed = _int_seed(deck.generate.seed, g.name, ti)
        # serial on this rank (never ASE's MPI world: under mpirun only rank 0 samples)
        thermalize(atoms, temperature_K=2.0 * t, comm=DummyMPI(), rng=np.random.default_rng(seed))
        Stationary(atoms)
        atoms.set_constraint(FixCom())
        dyn = Langevin(atoms, timestep=g.timestep * 1000.0 * units.fs, temperature_K=t,
                       friction=1.0 / (g.damping * 1000.0 * units.fs), fixcm=False,
                       rng=np.random.RandomState(seed + 1), comm=DummyMPI())
        if g.equilibration:
            dyn.run(g.equilibration)
        step = g.equilibration
        for k in range(wanted[-1] + 1):
            dyn.run(g.interval)
            step += g.interval
            idx = first + k
            if needed(idx):
                fr = atoms_to_frame(atoms)
                yield idx, _tag(fr, g, idx, temperature=float(t), step=int(step))


# ---------------------------------------------------------------------------------------------------- file


def from_file(deck: GeneratorDeck, g: GroupSettings, needed) -> Iterator:
    """Frames structure_index, structure_index + every, ... of a file ASE reads (any format), repeated by
    `supercell`; only symbols, positions, cell and pbc are kept (the frame is relabelled). Each carries
    `source_index`, its index in the file."""
    import ase.io
    wanted = [i for i in range(g.n_frames) if needed(i)]
    if not wanted:
        return
    last = g.structure_index + wanted[-1] * g.every
    got = 0
    try:
        for k, atoms in enumerate(ase.io.iread(g.structure, index=f":{last + 1}", parallel=False)):
            got = k + 1
            off = k - g.structure_index
            if off < 0 or off % g.every:
                continue
            i = off // g.every
            if not needed(i):
                continue
            atoms = atoms.repeat(tuple(int(x) for x in g.supercell))
            fr = Frame(symbols=atoms.get_chemical_symbols(), positions=np.array(atoms.get_positions()),
                       cell=np.array(atoms.cell.array), pbc=tuple(bool(p) for p in atoms.pbc))
            yield i, _tag(fr, g, i, source_index=int(k))
    except Exception as exc:
        if isinstance(exc, (DataError, DeckError)):
            raise
        raise DataError(f"cannot read frames: {type(exc).__name__}: {exc}", g.structure) from exc
    if got <= last:
        raise DeckError(f"{g.structure} has {got} frames; n_frames = {g.n_frames} with structure_index = "
                        f"{g.structure_index} and every = {g.every} needs {last + 1}", section=f"GROUP {g.name}",
                        key="n_frames")


# -------------------------------------------------------------------------------------------- active learning


def force_sigma(frames, mods, elements, masses=None) -> list[np.ndarray]:
    """Per-atom predicted force σ (eV/Å) of each frame over the models `mods` (two or more .mod files: an ANL fit's
    `<pot>.sample*.mod`, an ensemble's `<pot>.member*.mod`, or any potentials): sqrt of the summed sample variances
    (ddof 1) of the three components, the σ that `predict(..., return_std=True)` gives for an ensemble."""
    from fitsnap_ext.lammps_engine import LammpsEngine
    forces = []
    for mod in mods:
        eng = LammpsEngine(elements, mod, masses or None)
        try:
            forces.append([eng.compute(fr)[1] for fr in frames])
        finally:
            eng.close()
    return [np.sqrt(np.array([f[j] for f in forces]).var(axis=0, ddof=1).sum(axis=1)) for j in range(len(frames))]


def force_disagreement(frames, mods, elements, masses=None) -> np.ndarray:
    """The active sampler's criterion, one number per frame: the largest per-atom force σ (`force_sigma`), eV/Å."""
    return np.array([float(s.max()) for s in force_sigma(frames, mods, elements, masses)])


def active(deck: GeneratorDeck, g: GroupSettings, needed, progress: Progress) -> Iterator:
    """Candidates (a file, or LAMMPS MD with the first model) -> keep the n_frames with the largest predicted
    force σ (`force_disagreement`: max over atoms of the per-atom σ over the ensemble), in candidate order."""
    if not any(needed(i) for i in range(g.n_frames)):
        return
    if g.candidates:
        import ase.io
        try:
            cands = [(atoms_to_frame(a), {}) for a in ase.io.iread(g.candidates, index=":", parallel=False)]
        except Exception as exc:
            raise DataError(f"cannot read candidates: {type(exc).__name__}: {exc}", g.candidates) from exc
        base = cands[0][0]
    else:
        base = _structure(g)
        # the candidate MD is the long part of this sampler before any labelling
        progress(f"{g.name}: {g.n_candidates} MD candidates per temperature "
                 f"({', '.join(f'{t:g}' for t in g.temperatures)} K) with {g.ensemble_mods[0]}")
        cands = [(fr, fr.info) for _, fr in _lammps_md_stream(
            deck, g, g.ensemble_mods[0], [], lambda i: True, g.temperatures, g.n_candidates)]
    if len(cands) < g.n_frames:
        raise DeckError(f"{len(cands)} candidates for n_frames = {g.n_frames}", section=f"GROUP {g.name}",
                        key="n_frames")
    elements = _elements(deck, base)
    masses = deck.labeler.masses if deck.labeler.type == "lammps" else []
    spread = force_disagreement([c[0] for c in cands], g.ensemble_mods, elements, masses)
    order = np.argsort(-spread, kind="stable")[: g.n_frames]
    progress(f"{g.name}: max-atom force σ over {len(g.ensemble_mods)} models, {len(cands)} candidates: "
             f"median {np.median(spread):.3g} eV/Å, picked {spread[order].min():.3g}-{spread[order].max():.3g}")
    picked = sorted(int(j) for j in order)
    for idx, j in enumerate(picked):
        if not needed(idx):
            continue
        fr, info = cands[j]
        extra = {k: v for k, v in info.items() if k in ("temperature", "step")}
        fr = Frame(symbols=list(fr.symbols), positions=fr.positions.copy(), cell=fr.cell.copy(), pbc=fr.pbc)
        yield idx, _tag(fr, g, idx, candidate=int(j), force_std_max=float(spread[j]), **extra)


def sample(deck: GeneratorDeck, g: GroupSettings, needed, labeler=None, progress: Progress | None = None) -> Iterator:
    """(index, frame) of the group's configurations whose index is `needed`; `progress` hears the long steps."""
    if g.sampler == "strain_rattle":
        return strain_rattle(deck, g, needed, labeler)
    if g.sampler == "lammps_md":
        return lammps_md(deck, g, needed)
    if g.sampler == "ase_md":
        return ase_md(deck, g, needed, labeler)
    if g.sampler == "active":
        return active(deck, g, needed, progress or Progress(prefix="generate", quiet=not deck.generate.progress))
    if g.sampler == "file":
        return from_file(deck, g, needed)
    raise DeckError(f"unknown sampler {g.sampler!r}", section=f"GROUP {g.name}", key="sampler")
