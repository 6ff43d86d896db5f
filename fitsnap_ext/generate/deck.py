"""Generator deck (INI, read by `config.RawDeck`): typed, validated settings. Errors name the deck file, line,
section and key."""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field

from fitsnap_ext.ini import RawDeck
from fitsnap_ext.errors import DeckError

LABELER_TYPES = ("lammps", "cp2k", "sevenn", "ase")
SAMPLERS = ("strain_rattle", "lammps_md", "ase_md", "active", "file")
STRAIN_MODES = ("isotropic_grid", "isotropic", "random", "none")


@dataclass
class GenerateSettings:
    output: str                      # absolute folder for the per-group files
    seed: int = 12345
    elements: list[str] = field(default_factory=list)
    progress: bool = True
    time_limit: float = 0.0          # seconds; 0 = none. Stops cleanly (resumable) when exceeded
    file_suffix: str = ".xyz"
    upto: int = 0                    # command line --upto K: label only indices < K of each group (0: all)
    prepare: bool = False            # command line --prepare: write the labeler's inputs to run elsewhere, no labels


@dataclass
class LabelerSettings:
    type: str
    # lammps
    pair_style: str = ""
    pair_coeff: list[str] = field(default_factory=list)
    pair_commands: list[str] = field(default_factory=list)   # extra LAMMPS lines (e.g. pair_modify)
    mod: str = ""                    # alternatively a pair_style/pair_coeff include file (.mod)
    elements: list[str] = field(default_factory=list)
    masses: list[float] = field(default_factory=list)
    # cp2k
    cutoff: float = 400.0            # Ry
    rel_cutoff: float = 50.0         # Ry
    kpoints: list[int] = field(default_factory=lambda: [4, 4, 4])
    kspacing: float = 0.0            # 1/Å; when > 0, k-points from the cell: n_i = ceil(|b_i| / kspacing)
    basis: str = "DZVP-MOLOPT-SR-GTH"
    potential: str = "GTH-PBE"
    xc: str = "PBE"
    eps_scf: float = 1.0e-7
    max_scf: int = 100
    eps_default: float = 1.0e-12
    smearing: float = 0.0            # electronic temperature (K) for Fermi-Dirac smearing; 0 = none
    added_mos: int = 0
    mixing_alpha: float = 0.4
    scf: str = "diagonalization"     # or "ot": orbital transformation (Γ-only insulators; several times faster)
    scf_guess: str = "atomic"        # or "restart": start from the previous configuration's wavefunction
    data_dir: str = ""               # CP2K data folder (BASIS_MOLOPT, GTH_POTENTIALS); default: found at run time
    executable: str = "cp2k.psmp"
    mpi_ranks: int = 2
    mpi_command: str = ""            # default: the OpenMPI mpirun next to cp2k (Debian), "-np {ranks}"
    workdir: str = ""                # scratch folder for CP2K runs (default: <output>/.cp2k)
    keep_files: bool = False
    # sevenn
    model: str = "7net-0"
    device: str = "cpu"
    # ase
    calculator: str = ""             # "module:Class"
    calculator_kwargs: dict = field(default_factory=dict)


@dataclass
class GroupSettings:
    name: str
    sampler: str
    structure: str = ""              # preset name or file (absolute after parsing)
    structure_index: int = 0
    supercell: list[int] = field(default_factory=lambda: [1, 1, 1])
    lattice: float = 0.0             # overrides the preset's lattice constant (Å)
    n_frames: int = 10               # per temperature for MD samplers
    # file: configurations structure_index, structure_index + every, ... of the structure file
    every: int = 1
    # strain_rattle
    strain: float = 0.0
    strain_min: float | None = None  # isotropic modes: lowest strain (default -strain), e.g. expanded cells only
    strain_mode: str = "random"
    rattle: float = 0.0              # Å, Gaussian standard deviation
    relax_fmax: float = 0.0          # eV/Å; > 0: relax the ions of each strained cell (md_calculator, FIRE)
    relax_steps: int = 300           #   at most this many FIRE steps, before the rattle
    # md
    temperatures: list[float] = field(default_factory=list)
    timestep: float = 0.001          # ps
    equilibration: int = 1000        # steps
    interval: int = 100              # steps between kept snapshots (thinning)
    ensemble: str = "nvt"            # nvt | npt
    pressure: float = 0.0            # bar, for npt
    damping: float = 0.1             # ps (thermostat)
    melt_temperature: float = 0.0    # K; > 0: first run melt_steps at this temperature (to make a liquid)
    melt_steps: int = 0
    md_potential: str = "labeler"    # labeler | path to a .mod file
    md_calculator: str = "labeler"   # ase_md: labeler | module:Class
    md_calculator_kwargs: dict = field(default_factory=dict)
    # active
    ensemble_mods: list[str] = field(default_factory=list)
    candidates: str = ""             # file of candidate structures; default: LAMMPS MD with the first model
    n_candidates: int = 0            # per temperature when candidates come from MD

    def fingerprint(self, folder: str = "") -> str:
        """The sampler settings recorded in the output file. n_frames is left out where the configurations do
        not depend on it (random strains, MD), so that such a set can be extended by raising n_frames."""
        d = asdict(self)
        if self.sampler in ("lammps_md", "ase_md") or (self.sampler == "strain_rattle"
                                                       and self.strain_mode != "isotropic_grid"):
            d.pop("n_frames")
        d.pop("name")
        if not self.relax_fmax:  # keys added later stay out at their default, so older files still match
            d.pop("relax_fmax")
            d.pop("relax_steps")
        if self.strain_min is None:
            d.pop("strain_min")
        if self.sampler == "file":  # frame i is file frame structure_index + i*every: extendable
            d.pop("n_frames")
        else:  # keys of other samplers stay out, so files made before they existed still match
            d.pop("every")
        if folder:  # record files relative to the deck, so that a moved project still matches
            rel = lambda p: os.path.relpath(p, folder) if p and os.path.isabs(p) else p  # noqa: E731
            for k in ("structure", "candidates", "md_potential"):
                d[k] = rel(d[k])
            d["ensemble_mods"] = [rel(p) for p in d["ensemble_mods"]]
        return json.dumps(d, sort_keys=True)


@dataclass
class GeneratorDeck:
    path: str
    folder: str
    generate: GenerateSettings
    labeler: LabelerSettings
    groups: list[GroupSettings]


def _value(raw: RawDeck, section: str, key: str, kind):
    """The value of `key` as `kind`: str, int, float, bool (as RawDeck reads them) or one of the list kinds."""
    if kind in (str, int, float, bool):
        return raw.get(section, key, kind)
    text = raw.get(section, key, str)
    try:
        if kind == "floats":
            return [float(x) for x in text.replace(",", " ").split()]
        if kind == "ints":
            return [int(x) for x in text.replace(",", " ").split()]
        if kind == "words":
            return text.replace(",", " ").split()
        if kind == "lines":
            return [ln.strip() for ln in text.splitlines() if ln.strip()]
        if kind == "json":
            v = json.loads(text) if text else {}
            if isinstance(v, dict):
                return v
    except ValueError:  # json.JSONDecodeError is one
        pass
    names = {"floats": "numbers", "ints": "integers", "words": "words", "lines": "lines", "json": "a JSON object"}
    raise raw.error(f"expected {names[kind]}, got {text!r}", section, key)


def _read_section(raw: RawDeck, section: str, spec: dict) -> dict:
    """Read the keys of `section` typed by `spec` {key: kind}; unknown keys are errors."""
    out = {}
    for key, _ in raw.items(section):
        if key.lower() not in spec:
            known = ", ".join(sorted(spec))
            raise raw.error(f"unknown key (known: {known})", section, key)
        out[key.lower()] = _value(raw, section, key, spec[key.lower()])
    return out


_GEN_SPEC = {"output": str, "seed": int, "elements": "words", "progress": bool, "time_limit": float,
             "file_suffix": str}
_LAB_SPEC = {"type": str, "pair_style": str, "pair_coeff": "lines", "pair_commands": "lines", "mod": str,
             "elements": "words", "masses": "floats", "cutoff": float, "rel_cutoff": float, "kpoints": "ints",
             "kspacing": float, "basis": str, "potential": str, "xc": str, "eps_scf": float, "max_scf": int,
             "eps_default": float, "smearing": float, "added_mos": int, "mixing_alpha": float, "scf": str,
             "scf_guess": str, "data_dir": str,
             "executable": str, "mpi_ranks": int, "mpi_command": str, "workdir": str, "keep_files": bool,
             "model": str, "device": str, "calculator": str, "calculator_kwargs": "json"}
_GROUP_SPEC = {"sampler": str, "structure": str, "structure_index": int, "supercell": "ints", "lattice": float,
               "n_frames": int, "every": int, "strain": float, "strain_min": float, "strain_mode": str, "rattle": float,
               "relax_fmax": float, "relax_steps": int, "temperatures": "floats",
               "timestep": float, "equilibration": int, "interval": int, "ensemble": str, "pressure": float,
               "damping": float, "melt_temperature": float, "melt_steps": int, "md_potential": str, "md_calculator": str, "md_calculator_kwargs": "json",
               "ensemble_mods": "words", "candidates": str, "n_candidates": int}


def _abs(folder, p):
    return p if not p or os.path.isabs(p) else os.path.normpath(os.path.join(folder, p))


def _labeler(raw: RawDeck, folder: str, elements=()) -> LabelerSettings:
    """The validated [LABELER] section (elements default to [GENERATE] elements)."""
    lab = _read_section(raw, "LABELER", _LAB_SPEC)
    if "type" not in lab:
        raise raw.error("required (one of " + ", ".join(LABELER_TYPES) + ")", "LABELER", "type")
    lab["type"] = lab["type"].lower()
    if lab["type"] not in LABELER_TYPES:
        raise raw.error(f"unknown labeler {lab['type']!r} (one of " + ", ".join(LABELER_TYPES) + ")",
                       "LABELER", "type")
    for k in ("mod", "workdir", "data_dir"):
        if lab.get(k):
            lab[k] = _abs(folder, lab[k])
    labeler = LabelerSettings(**lab)
    if not labeler.elements:
        labeler.elements = list(elements)
    if labeler.type == "lammps":
        if not labeler.mod and not labeler.pair_style:
            raise raw.error("required for a lammps labeler (or give mod = FILE.mod)", "LABELER", "pair_style")
        if labeler.pair_style and not labeler.pair_coeff:
            raise raw.error("required with pair_style", "LABELER", "pair_coeff")
        if labeler.mod and not os.path.isfile(labeler.mod):
            raise raw.error(f"file not found: {labeler.mod}", "LABELER", "mod")
        if not labeler.elements:
            raise raw.error("required for a lammps labeler (LAMMPS type order)", "LABELER", "elements")
        if labeler.masses and len(labeler.masses) != len(labeler.elements):
            raise raw.error(f"{len(labeler.masses)} masses for {len(labeler.elements)} elements", "LABELER",
                           "masses")
    if labeler.type == "cp2k":
        if len(labeler.kpoints) != 3 or min(labeler.kpoints) < 1:
            raise raw.error("three positive integers expected", "LABELER", "kpoints")
        if labeler.cutoff <= 0 or labeler.rel_cutoff <= 0:
            raise raw.error("must be > 0", "LABELER", "cutoff" if labeler.cutoff <= 0 else "rel_cutoff")
        if labeler.mpi_ranks < 1:
            raise raw.error("must be >= 1", "LABELER", "mpi_ranks")
        labeler.scf = labeler.scf.lower()
        if labeler.scf not in ("diagonalization", "ot"):
            raise raw.error(f"{labeler.scf!r}: one of diagonalization, ot", "LABELER", "scf")
        labeler.scf_guess = labeler.scf_guess.lower()
        if labeler.scf_guess not in ("atomic", "restart"):
            raise raw.error(f"{labeler.scf_guess!r}: one of atomic, restart", "LABELER", "scf_guess")
        if labeler.scf == "ot" and (labeler.smearing > 0 or labeler.kspacing > 0 or labeler.kpoints != [1, 1, 1]):
            raise raw.error("ot (orbital transformation) needs Gamma-only k-points (kpoints = 1 1 1) and no "
                            "smearing: it is for insulators", "LABELER", "scf")
    if labeler.type == "ase" and not re.match(r"^[\w.]+:[\w.]+$", labeler.calculator or ""):
        raise raw.error("required for an ase labeler, as module:Class", "LABELER", "calculator")
    return labeler


def load_labeler(path) -> LabelerSettings:
    """Only the validated [LABELER] of a generator deck: for scripts that label with a deck's settings before
    its groups can be read (e.g. the structure its groups need does not exist yet)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise DeckError("deck file not found", path)
    raw = RawDeck.read(path, continuation=True)
    if "LABELER" not in raw.sections:
        raise DeckError("missing section", path, section="LABELER")
    return _labeler(raw, os.path.dirname(path))


def load_deck(path, only: list[str] | None = None) -> GeneratorDeck:
    """Parse and validate a generator deck. Relative paths are relative to the deck's folder.

    only: the groups to keep (the others are not read, so their inputs need not exist yet: e.g. a group that
    relabels MD snapshots still being sampled); each name must be a [GROUP name] of the deck."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise DeckError("deck file not found", path)
    raw = RawDeck.read(path, continuation=True)
    folder = os.path.dirname(path)
    sections = list(raw.sections)
    for s in sections:
        if s not in ("GENERATE", "LABELER") and not s.startswith("GROUP "):
            raise raw.error("unknown section (expected [GENERATE], [LABELER], [GROUP name])", s)
    if "GENERATE" not in sections:
        raise DeckError("missing section", path, section="GENERATE")
    if "LABELER" not in sections:
        raise DeckError("missing section", path, section="LABELER")

    g = _read_section(raw, "GENERATE", _GEN_SPEC)
    if not g.get("output"):
        raise raw.error("required", "GENERATE", "output")
    g["output"] = _abs(folder, g["output"])
    gen = GenerateSettings(**g)
    if gen.time_limit < 0:
        raise raw.error("must be >= 0", "GENERATE", "time_limit")

    labeler = _labeler(raw, folder, gen.elements)
    if not gen.elements:
        gen.elements = list(labeler.elements)

    names = [s[len("GROUP "):] for s in sections if s.startswith("GROUP ")]
    unknown = [g for g in (only or []) if g not in names]
    if unknown:
        raise DeckError(f"--groups {' '.join(unknown)}: no such [GROUP] (the deck has {', '.join(names)})", path)
    groups = []
    for s in sections:
        if not s.startswith("GROUP ") or (only and s[len("GROUP "):] not in only):
            continue
        name = s[len("GROUP "):]
        if not re.match(r"^[A-Za-z0-9_.\-]+$", name):
            raise raw.error("group names may contain letters, digits, _ . - only", s)
        d = _read_section(raw, s, _GROUP_SPEC)
        if "sampler" not in d:
            raise raw.error("required (one of " + ", ".join(SAMPLERS) + ")", s, "sampler")
        d["sampler"] = d["sampler"].lower()
        if d["sampler"] not in SAMPLERS:
            raise raw.error(f"unknown sampler {d['sampler']!r} (one of " + ", ".join(SAMPLERS) + ")", s,
                           "sampler")
        from fitsnap_ext.generate.structures import PRESETS
        st = d.get("structure", "")
        if st and st not in PRESETS:
            d["structure"] = _abs(folder, st)
            if not os.path.isfile(d["structure"]):
                raise raw.error(f"neither a preset ({', '.join(sorted(PRESETS))}) nor an existing file", s,
                               "structure")
        for k in ("candidates",):
            if d.get(k):
                d[k] = _abs(folder, d[k])
                if not os.path.isfile(d[k]):
                    raise raw.error(f"file not found: {d[k]}", s, k)
        if d.get("md_potential") and d["md_potential"] != "labeler":
            d["md_potential"] = _abs(folder, d["md_potential"])
            if not os.path.isfile(d["md_potential"]):
                raise raw.error(f"file not found: {d['md_potential']}", s, "md_potential")
        if d.get("ensemble_mods"):
            d["ensemble_mods"] = [_abs(folder, p) for p in d["ensemble_mods"]]
            for p in d["ensemble_mods"]:
                if not os.path.isfile(p):
                    raise raw.error(f"file not found: {p}", s, "ensemble_mods")
        grp = GroupSettings(name=name, **d)
        _validate_group(raw, s, grp, labeler)
        groups.append(grp)
    if not groups:
        raise DeckError("no [GROUP name] section", path)
    return GeneratorDeck(path=path, folder=folder, generate=gen, labeler=labeler, groups=groups)


def _validate_group(raw: RawDeck, s: str, g: GroupSettings, labeler: LabelerSettings):
    if g.sampler != "active" or not g.candidates:
        if not g.structure:
            raise raw.error("required", s, "structure")
    if g.n_frames < 1:
        raise raw.error("must be >= 1", s, "n_frames")
    if len(g.supercell) != 3 or min(g.supercell) < 1:
        raise raw.error("three positive integers expected", s, "supercell")
    if g.strain < 0 or g.strain >= 0.5:
        raise raw.error("must be in [0, 0.5)", s, "strain")
    if g.rattle < 0:
        raise raw.error("must be >= 0", s, "rattle")
    if g.strain_mode not in STRAIN_MODES:
        raise raw.error("one of " + ", ".join(STRAIN_MODES), s, "strain_mode")
    if g.strain_min is not None and (not g.strain_mode.startswith("isotropic") or not -0.5 < g.strain_min < g.strain):
        raise raw.error("for the isotropic strain modes, in (-0.5, strain)", s, "strain_min")
    if g.relax_fmax < 0 or (g.relax_fmax and g.sampler != "strain_rattle"):
        raise raw.error("a force tolerance >= 0 (eV/Å), for the strain_rattle sampler", s, "relax_fmax")
    if g.relax_steps < 1:
        raise raw.error("must be >= 1", s, "relax_steps")
    if g.sampler in ("lammps_md", "ase_md") or (g.sampler == "active" and not g.candidates):
        if not g.temperatures or min(g.temperatures) <= 0:
            raise raw.error("positive temperatures (K) required", s, "temperatures")
        if g.interval < 1:
            raise raw.error("must be >= 1", s, "interval")
        if g.equilibration < 0:
            raise raw.error("must be >= 0", s, "equilibration")
        if g.timestep <= 0:
            raise raw.error("must be > 0", s, "timestep")
        if g.ensemble not in ("nvt", "npt"):
            raise raw.error("nvt or npt", s, "ensemble")
        if g.melt_temperature < 0 or g.melt_steps < 0:
            raise raw.error("must be >= 0", s, "melt_temperature" if g.melt_temperature < 0 else "melt_steps")
        if g.damping <= 0:
            raise raw.error("must be > 0", s, "damping")
    if g.sampler == "lammps_md" and g.md_potential == "labeler" and labeler.type != "lammps":
        raise raw.error("the labeler is not a LAMMPS potential: give a .mod file", s, "md_potential")
    if g.sampler == "ase_md" and g.melt_temperature:
        raise raw.error("melt_temperature is for lammps_md", s, "melt_temperature")
    if g.sampler == "ase_md" and g.ensemble != "nvt":
        raise raw.error("ase_md supports nvt only", s, "ensemble")
    if (g.sampler == "ase_md" or g.relax_fmax) and g.md_calculator != "labeler" and not re.match(r"^[\w.]+:[\w.]+$",
                                                                                 g.md_calculator):
        raise raw.error("labeler or module:Class", s, "md_calculator")
    if g.sampler == "file":
        from fitsnap_ext.generate.structures import PRESETS
        if g.structure in PRESETS:
            raise raw.error("the file sampler needs a structure file, not a preset", s, "structure")
        if g.every < 1:
            raise raw.error("must be >= 1", s, "every")
        if g.structure_index < 0:
            raise raw.error("must be >= 0", s, "structure_index")
        if g.lattice:
            raise raw.error("lattice applies to presets only", s, "lattice")
    elif g.every != 1:
        raise raw.error("every is for the file sampler", s, "every")
    if g.sampler == "active":
        if len(g.ensemble_mods) < 2:
            raise raw.error("at least two .mod files (the ensemble) required", s, "ensemble_mods")
        if not g.candidates and g.n_candidates * len(g.temperatures) < g.n_frames:
            raise raw.error("n_candidates (per temperature) x temperatures must be >= n_frames", s,
                           "n_candidates")
