"""Starting structures: named presets (Si and GaN built by the property presets' builders) or a file ASE reads."""
from __future__ import annotations

import os

import numpy as np

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError
from fitsnap_ext.properties.systems import build_gan, build_si


def _si_diamond(a):
    return build_si(a or 5.431, cubic=True)


def _si_diamond_primitive(a):
    return build_si(a or 5.431)


def _gan_wurtzite(a):
    a = a or 3.19
    return build_gan(a, c=a * 1.627, u=0.377, orthorhombic=True)


def _ta_bcc(a):
    from ase.build import bulk
    return bulk("Ta", "bcc", a=a or 3.304, cubic=True)


# name -> (builder(lattice or 0 for default), description)
PRESETS = {
    "si_diamond": (_si_diamond, "cubic 8-atom diamond Si, a = 5.431 Å"),
    "si_diamond_primitive": (_si_diamond_primitive, "2-atom fcc-primitive diamond Si, a = 5.431 Å"),
    "gan_wurtzite": (_gan_wurtzite, "orthorhombic 8-atom wurtzite GaN, a = 3.19 Å, c/a = 1.627"),
    "ta_bcc": (_ta_bcc, "cubic 2-atom bcc Ta, a = 3.304 Å"),
}


def load_structure(spec: str, lattice: float = 0.0, supercell=(1, 1, 1), index: int = 0) -> Frame:
    """A preset name or a file (any format ASE reads; `index` picks the configuration), repeated by `supercell`."""
    if spec in PRESETS:
        atoms = PRESETS[spec][0](lattice)
    else:
        import ase.io
        if not os.path.isfile(spec):
            raise DataError("structure file not found", spec)
        try:
            atoms = ase.io.read(spec, index=index, parallel=False)
        except Exception as exc:
            raise DataError(f"cannot read structure: {type(exc).__name__}: {exc}", spec, index) from exc
        if lattice:
            raise DataError("lattice applies to presets only", spec)
    atoms = atoms.repeat(tuple(int(x) for x in supercell))
    return Frame(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(),
                 cell=np.asarray(atoms.cell.array), pbc=tuple(bool(p) for p in atoms.pbc), source=spec)


def frame_to_atoms(frame: Frame):
    from ase import Atoms
    return Atoms(symbols=frame.symbols, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def atoms_to_frame(atoms, **kw) -> Frame:
    return Frame(symbols=atoms.get_chemical_symbols(), positions=np.array(atoms.get_positions()),
                 cell=np.array(atoms.cell.array), pbc=tuple(bool(p) for p in atoms.pbc), **kw)
