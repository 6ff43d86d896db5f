"""fitsnap_ext: SNAP, quadratic SNAP and neural-network potentials on LAMMPS bispectrum descriptors, and what they
are worth in LAMMPS molecular dynamics. Metal units throughout (eV, Å, ps, bar). See docs/api.md.

    import fitsnap_ext as fx
    settings = fx.load_deck("in.si")                       # or deck text, or {"BISPECTRUM": {...}, ...}
    result = fx.fit(settings, frames=atoms_list)           # ASE Atoms with energy/forces/stress results
    energies, forces, stresses = result.model.predict(atoms_list)
    result.model.export("out", "Si_pot")                   # out/Si_pot.mod (+ coefficient files)
    atoms.calc = fx.calculator("out/Si_pot.mod", ["Si"])   # the exported potential in ASE, run by LAMMPS

Importing the package loads neither LAMMPS, MPI nor torch: they load when first used.
"""
from importlib.metadata import PackageNotFoundError, version

from .api import compute_properties, fit, run_study
from .calculator import calculator
from .config import Settings, load_deck
from .data.frame import Frame
from .data.io import read_frames
from .linear_snap import LinearSNAP
from .network_snap import NetworkSNAP

try:
    __version__ = version("fitsnap_ext")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Frame", "LinearSNAP", "NetworkSNAP", "Settings", "__version__", "calculator", "compute_properties", "fit",
           "load_deck", "read_frames", "run_study"]
