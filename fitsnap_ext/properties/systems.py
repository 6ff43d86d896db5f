"""System presets (Si, GaN, LGPS) and custom structures for the property engine.

A preset bundles what the decks need besides the potential: the crystal (a primitive cell built with ASE),
the element order that fixes LAMMPS atom types, masses, temperatures and supercell sizes for quick and full
modes, and which properties make sense for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from fitsnap_ext.errors import FitsnapError

ALL_PROPERTIES = ("eos", "elastic", "phonons", "liquid", "melting", "thermal", "diffusion")


@dataclass(frozen=True)
class ModeSettings:
    """Run lengths and sizes for one mode (quick for tests, full for studies); times in ps."""

    elastic_supercell: tuple[int, int, int] = (2, 2, 2)
    phonon_supercell: tuple[int, int, int] = (4, 4, 4)
    md_supercell: tuple[int, int, int] = (3, 3, 3)
    timestep_ps: float = 0.001
    # liquid
    liquid_melt_ps: float = 5.0
    liquid_equil_ps: float = 5.0
    liquid_prod_ps: float = 10.0
    # melting (solid-liquid coexistence, NPH)
    melt_supercell: tuple[int, int, int] = (3, 3, 8)
    melt_prep_ps: float = 5.0
    melt_nph_ps: float = 50.0
    # thermal conductivity (direct method, heat flow along z)
    thermal_supercell: tuple[int, int, int] = (2, 2, 12)
    thermal_equil_ps: float = 5.0
    thermal_steady_ps: float = 20.0
    thermal_prod_ps: float = 20.0
    thermal_swap_steps: int = 50
    thermal_runs: int = 1               # independent runs (velocity seeds): κ's mean and standard error
    # diffusion
    diffusion_supercell: tuple[int, int, int] = (1, 1, 1)
    diffusion_equil_ps: float = 5.0
    diffusion_prod_ps: float = 50.0
    diffusion_runs: int = 3


@dataclass(frozen=True)
class SystemPreset:
    """A material: crystal builder, element order (= LAMMPS types 1..n), masses (amu), temperatures (K).

    `lattice` names how lattice parameters are reported: "diamond" (a of the cubic cell), "wurtzite"
    (a, c, internal u), "tetragonal" (a, c) or "generic" (lengths of the cell vectors).
    """

    name: str
    elements: tuple[str, ...]
    masses: tuple[float, ...]
    build: Callable[[], "object"]          # returns an ase.Atoms primitive cell, symbols in `elements`
    build_md: Callable[[], "object"] | None = None   # orthogonal cell for MD (scaled to the relaxed volume)
    lattice: str = "generic"
    elastic_symmetry: str = "none"          # "cubic", "hexagonal" or "none" (all 21 constants)
    properties: tuple[str, ...] = ("eos", "elastic", "phonons")
    liquid_T: float = 1750.0
    liquid_coordination: tuple[float, float] | None = None   # a liquid's sensible range (suspect outside)
    melt_T_guess: float = 1700.0
    thermal_T: float = 300.0
    diffusion_T: tuple[float, ...] = ()
    diffusing_element: str = ""
    carrier_charge: int = 1
    quick: ModeSettings = field(default_factory=ModeSettings)
    full: ModeSettings = field(default_factory=ModeSettings)

    def mode(self, quick: bool) -> ModeSettings:
        """Settings for quick (tests) or full (studies) mode."""
        return self.quick if quick else self.full


def build_si(a: float = 5.431, cubic: bool = False):
    """Diamond Si (ASE bulk): the two-atom fcc primitive cell, or the eight-atom cubic cell (MD boxes)."""
    from ase.build import bulk

    return bulk("Si", "diamond", a=a, cubic=cubic)


def build_gan(a: float = 3.189, c: float = 5.185, u: float = 0.377, orthorhombic: bool = False):
    """Wurtzite GaN (ASE bulk): the four-atom hexagonal cell (Ga at 2b, N at 2b + u c), or the eight-atom
    orthogonal cell (a, √3 a, c; MD boxes)."""
    from ase.build import bulk

    return bulk("GaN", "wurtzite", a=a, c=c, u=u, orthorhombic=orthorhombic)


# Ordered 50-atom Li20Ge2P4S24 model of tetragonal LGPS (P4_2/nmc, a = 8.69407 Å, c = 12.5994 Å), taken from
# the disordered experimental cell (Li10GeP2S12_disordered.cif, site labels kept in the comments).
# Li: the 4 fully occupied sites (Li17-20) plus 16 of the 24 partial sites, chosen by a search that maximises
# the smallest Li-Li distance: the partial sites contain 1.73 Å pairs (Li1/Li9 type) that cannot both be
# filled; the chosen set (Li1-4, Li13-16 of the 0.691 sites and all eight 0.643 sites Li21-28) has its closest
# Li-Li pair at 2.32 Å. Ge/P: the two Ge of the shared 4d sites go on 29 and 32, the pair farthest apart
# (7.8 Å); P on 30 and 31, plus the two full P sites. Charge: 20(+1) + 2(+4) + 4(+5) + 24(-2) = 0.
LGPS_CELL_A = (8.69407, 8.69407, 12.5994)
LGPS_SITES = (
    ("Li", 0.7437, 0.7282, 0.8168), ("Li", 0.2563, 0.2718, 0.8168),   # Li1, Li2
    ("Li", 0.7718, 0.2437, 0.3168), ("Li", 0.2282, 0.7563, 0.3168),   # Li3, Li4
    ("Li", 0.7437, 0.2718, 0.8168), ("Li", 0.2563, 0.7282, 0.8168),   # Li13, Li14
    ("Li", 0.7718, 0.7563, 0.3168), ("Li", 0.2282, 0.2437, 0.3168),   # Li15, Li16
    ("Li", 0.0000, 0.5000, 0.0554), ("Li", 0.0000, 0.5000, 0.5554),   # Li17, Li18
    ("Li", 0.5000, 0.0000, 0.4446), ("Li", 0.5000, 0.0000, 0.9446),   # Li19, Li20
    ("Li", 0.7537, 0.7537, 0.0000), ("Li", 0.2463, 0.2463, 0.0000),   # Li21, Li22
    ("Li", 0.7463, 0.2537, 0.5000), ("Li", 0.2537, 0.7463, 0.5000),   # Li23, Li24
    ("Li", 0.7463, 0.7463, 0.5000), ("Li", 0.2537, 0.2537, 0.5000),   # Li25, Li26
    ("Li", 0.7537, 0.2463, 0.0000), ("Li", 0.2463, 0.7537, 0.0000),   # Li27, Li28
    ("Ge", 0.0000, 0.5000, 0.3093), ("Ge", 0.5000, 0.0000, 0.6907),   # 29, 32
    ("P", 0.0000, 0.5000, 0.8093), ("P", 0.5000, 0.0000, 0.1907),     # 30, 31
    ("P", 0.0000, 0.0000, 0.5000), ("P", 0.5000, 0.5000, 0.0000),     # P33, P34
    ("S", 0.0000, 0.8157, 0.5897), ("S", 0.0000, 0.1843, 0.5897), ("S", 0.6843, 0.5000, 0.0897),
    ("S", 0.3157, 0.5000, 0.0897), ("S", 0.5000, 0.3157, 0.9103), ("S", 0.5000, 0.6843, 0.9103),
    ("S", 0.8157, 0.0000, 0.4103), ("S", 0.1843, 0.0000, 0.4103), ("S", 0.0000, 0.7009, 0.9050),
    ("S", 0.0000, 0.2991, 0.9050), ("S", 0.7991, 0.5000, 0.4050), ("S", 0.2009, 0.5000, 0.4050),
    ("S", 0.5000, 0.2009, 0.5950), ("S", 0.5000, 0.7991, 0.5950), ("S", 0.7009, 0.0000, 0.0950),
    ("S", 0.2991, 0.0000, 0.0950), ("S", 0.0000, 0.3010, 0.2086), ("S", 0.0000, 0.6990, 0.2086),
    ("S", 0.1990, 0.5000, 0.7086), ("S", 0.8010, 0.5000, 0.7086), ("S", 0.5000, 0.8010, 0.2914),
    ("S", 0.5000, 0.1990, 0.2914), ("S", 0.3010, 0.0000, 0.7914), ("S", 0.6990, 0.0000, 0.7914),
)


def build_lgps(sites=LGPS_SITES, cell=LGPS_CELL_A):
    """The ordered 50-atom Li20Ge2P4S24 cell from fractional coordinates (symbols sorted Li, Ge, P, S)."""
    from ase import Atoms

    return Atoms(symbols=[s[0] for s in sites], scaled_positions=[s[1:] for s in sites],
                 cell=np.diag(cell), pbc=True)


def _presets() -> dict[str, SystemPreset]:
    si = SystemPreset(
        name="si", elements=("Si",), masses=(28.0855,), build=build_si, build_md=partial(build_si, cubic=True),
        lattice="diamond",
        elastic_symmetry="cubic",
        properties=("eos", "elastic", "phonons", "liquid", "melting", "thermal"),
        liquid_T=1750.0, melt_T_guess=1700.0, thermal_T=300.0,
        # liquid Si: 6.4 by neutron diffraction (Waseda); 5-7 for SW and DFT; an amorphous network has 4
        liquid_coordination=(4.0, 8.0),
        # quick: 2.34 M MD atom-steps: a 64-atom liquid (the size of the first ab initio liquid-Si runs), a
        # 128-atom coexistence box, a thermal box of the earlier quick length (12 cells, 65 Å) on a 2x1
        # cross-section, run with 3 velocity seeds (one run's blocks under-state κ's spread 2.5-fold); converged
        # numbers come from full mode (docs/properties.md)
        quick=ModeSettings(elastic_supercell=(2, 2, 2), phonon_supercell=(4, 4, 4), md_supercell=(2, 2, 2),
                           liquid_melt_ps=1.5, liquid_equil_ps=1.5, liquid_prod_ps=2.0,
                           melt_supercell=(2, 2, 4), melt_prep_ps=1.0, melt_nph_ps=2.0,
                           thermal_supercell=(2, 1, 12), thermal_equil_ps=0.5, thermal_steady_ps=1.0,
                           thermal_prod_ps=1.0, thermal_runs=3),
        full=ModeSettings(elastic_supercell=(3, 3, 3), phonon_supercell=(5, 5, 5), md_supercell=(5, 5, 5),
                          liquid_melt_ps=10.0, liquid_equil_ps=20.0, liquid_prod_ps=50.0,
                          melt_supercell=(5, 5, 12), melt_prep_ps=10.0, melt_nph_ps=300.0,
                          thermal_supercell=(4, 4, 40), thermal_equil_ps=20.0, thermal_steady_ps=200.0,
                          thermal_prod_ps=500.0),
    )
    gan = SystemPreset(
        name="gan", elements=("Ga", "N"), masses=(69.723, 14.0067), build=build_gan,
        build_md=partial(build_gan, orthorhombic=True), lattice="wurtzite", elastic_symmetry="hexagonal",
        properties=("eos", "elastic", "phonons", "thermal"), thermal_T=300.0,
        quick=ModeSettings(elastic_supercell=(3, 3, 2), phonon_supercell=(4, 4, 3),
                           thermal_supercell=(3, 2, 12), thermal_equil_ps=2.0, thermal_steady_ps=8.0,
                           thermal_prod_ps=8.0, thermal_runs=3),
        full=ModeSettings(elastic_supercell=(4, 4, 3), phonon_supercell=(6, 6, 4),
                          thermal_supercell=(6, 4, 40), thermal_equil_ps=20.0, thermal_steady_ps=200.0,
                          thermal_prod_ps=500.0),
    )
    lgps = SystemPreset(
        name="lgps", elements=("Li", "Ge", "P", "S"), masses=(6.94, 72.630, 30.973762, 32.06),
        build=build_lgps, lattice="tetragonal", elastic_symmetry="none",
        properties=("eos", "diffusion"), diffusing_element="Li", carrier_charge=1,
        diffusion_T=(600.0, 700.0, 800.0, 900.0),
        quick=ModeSettings(diffusion_supercell=(1, 1, 1), diffusion_equil_ps=1.0, diffusion_prod_ps=10.0,
                           diffusion_runs=2, timestep_ps=0.002),
        full=ModeSettings(diffusion_supercell=(2, 2, 1), diffusion_equil_ps=20.0, diffusion_prod_ps=500.0,
                          diffusion_runs=4, timestep_ps=0.001),
    )
    return {p.name: p for p in (si, gan, lgps)}


def get_preset(name: str) -> SystemPreset:
    """Look up a preset by name; unknown names are a user error listing the known ones."""
    presets = _presets()
    if name not in presets:
        raise FitsnapError(f"unknown system '{name}' (known: {', '.join(sorted(presets))}; "
                           "or give a structure file with --structure)")
    return presets[name]


def with_run_settings(system: SystemPreset, settings: dict[str, str]) -> SystemPreset:
    """The system with some run lengths/sizes replaced in both modes, e.g. {"diffusion_prod_ps": "50",
    "diffusion_supercell": "2 2 1"} — a diffusion setting between quick (too noisy) and full (days)."""
    defaults = {f.name: f.default for f in fields(ModeSettings)}
    parsed = {}
    for key, text in settings.items():
        if key not in defaults:
            raise FitsnapError(f"unknown run setting {key!r} (known: {', '.join(defaults)})")
        kind = defaults[key]
        try:
            if isinstance(kind, tuple):
                value = tuple(int(v) for v in str(text).split())
                ok = len(value) == 3 and min(value) >= 1
            else:
                value = type(kind)(text)
                ok = value > 0
        except ValueError:
            ok = False
        if not ok:
            want = "three positive integers" if isinstance(kind, tuple) else f"a positive {type(kind).__name__}"
            raise FitsnapError(f"run setting {key} = {text!r}: {want} expected")
        parsed[key] = value
    return replace(system, quick=replace(system.quick, **parsed), full=replace(system.full, **parsed))


def custom_system(structure: Path, elements: list[str] | None = None,
                  properties: tuple[str, ...] = ("eos", "elastic", "phonons"),
                  base: SystemPreset | None = None, **overrides) -> SystemPreset:
    """A preset-free system from any structure file ASE can read; element order from `elements` or the file."""
    from ase.data import atomic_masses, atomic_numbers
    from ase.io import read

    structure = Path(structure)
    if not structure.is_file():
        raise FitsnapError(f"structure file not found: {structure}")
    try:
        atoms = read(str(structure), parallel=False)  # every caller reads for itself: no ASE broadcast
    except Exception as exc:  # ASE raises many types for unreadable files
        raise FitsnapError(f"{structure}: cannot read structure ({exc})") from exc
    found = list(dict.fromkeys(atoms.get_chemical_symbols()))
    order = list(elements) if elements else found
    missing = set(found) - set(order)
    if missing:
        raise FitsnapError(f"{structure}: elements {sorted(missing)} not in --elements {order}")
    masses = tuple(float(atomic_masses[atomic_numbers[e]]) for e in order)
    template = base or SystemPreset(name="custom", elements=(), masses=(), build=lambda: None)
    return replace(template, name=structure.stem, elements=tuple(order), masses=masses,
                   build=lambda: read(str(structure)), build_md=None, properties=tuple(properties),
                   **overrides)
