"""The Python API: what `import fitsnap_ext` offers a notebook or a script (see docs/api.md).

Every function here is a thin, documented entry to the same code the command line runs; nothing is written to
the current folder unless it is named as an output folder. (The property engine and the study are
`compute_properties` and `run_study`: a function named `properties` or `study` would be replaced by the
subpackage of that name as soon as it is imported — Python binds a subpackage to its parent's attribute.)
"""
from __future__ import annotations

from pathlib import Path

from .config import Settings, load_deck


def fit(settings, frames=None, comm=None, out_dir=None, overwrite: bool = False, progress=None):
    """Fit the model a deck describes → FitResult (`.model`, the fitted LinearSNAP or NetworkSNAP; `.errors`, a
    pandas DataFrame of MAE/RMSE by group, split and quantity; `.files`).

    `settings`: a Settings, a deck path, deck text or a FitSNAP-style dict of sections. `frames` (Frames or ASE
    Atoms with calculator results) replace the deck's data. With `out_dir` the deck's outputs (potential, metrics,
    dumps) are written there; without it nothing is written. `comm`: an MPI communicator (default: the world).
    """
    from .pipeline import run_fit
    from .parallel import world

    settings = settings if isinstance(settings, Settings) else load_deck(settings)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        settings = settings.in_folder(out_dir)
    return run_fit(settings, comm or world(), overwrite, progress or (lambda message: None), frames,
                   write=out_dir is not None)


def compute_properties(mod_path, system: str = "si", properties=None, quick: bool = True, out=None, reference=None,
                       comm=None, overwrite: bool = False) -> dict:
    """Simulated properties of any LAMMPS include file (`system`: si | gan | lgps) → the props.json dict.

    Outputs (props.json, curves, plots, the LAMMPS runs) go to `out` (default: `<mod folder>/props.json`)."""
    from .properties import run_properties

    mod_path = Path(mod_path)
    out = Path(out) if out is not None else mod_path.with_name("props.json")
    return run_properties(mod_path, system, list(properties) if properties else None, quick, out, reference, comm,
                          overwrite=overwrite)


def run_study(deck, quick: bool = False, out=None, only=None, force: bool = False, overrides=(), comm=None) -> dict:
    """Run a study deck's model ladder (fits, properties, MD speed, report) → {"rows": [...], "wall_s": ...}."""
    from .parallel import world
    from .study import read_study
    from .study import run_study as run

    overrides = list(overrides) + ([("STUDY", "quick", "1")] if quick else [])
    if out is not None:
        overrides += [("STUDY", key, str(Path(out).resolve())) for key in ("out", "quick_out")]
    return run(read_study(deck, overrides), comm or world(), force=force, only=only,
               command="fitsnap_ext.run_study(...)")
