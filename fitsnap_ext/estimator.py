"""What every model on SNAP descriptors shares: scikit-learn's estimator contract and the fit pipeline's hooks.

A model is built from a deck's settings (`settings`: a `Settings`, a deck path, deck text or a FitSNAP-style
dict) plus its own parameters; the constructor only stores them. `fit(frames)` learns (`*_` attributes),
`predict(frames)` gives energies, forces and stresses of the whole potential (reference included) in metal
units, and `export(out_dir, stem)` writes the LAMMPS files. The fit pipeline (`fitsnap_ext.pipeline`) drives the
same hooks over MPI ranks with the deck's data: `descriptors` → `fit_descriptors` → `error_sums` → `files`.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import Settings, load_deck
from .errors import FitsnapError
from .export.files import write_all


def quiet(message: str) -> None:
    """The default progress printer of a library call: says nothing."""


class SnapEstimator:
    """Base class: parameters, `fit`, `predict`, `export`; subclasses provide the pipeline hooks."""

    kind = ""
    calibration_scaled_on = "the validation split"  # where a model fits its σ scale factor (metrics text)

    # ------------------------------------------------------------------ scikit-learn's contract
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "SnapEstimator":
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} of {type(self).__name__}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k != "settings"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    # ------------------------------------------------------------------ library use
    def resolved_settings(self) -> Settings:
        """The deck's settings with this estimator's parameters applied (what `fit` uses)."""
        if self.settings is None:
            raise FitsnapError(f"{type(self).__name__} needs descriptor settings: settings=<deck path, deck text, "
                               f"dict of sections or Settings>")
        settings = self.settings if isinstance(self.settings, Settings) else load_deck(self.settings)
        return self.apply_params(settings)

    def fit(self, frames, comm=None, progress=quiet) -> "SnapEstimator":
        """Learn from `frames` (fitsnap_ext Frames or ASE Atoms with calculator results); every rank of `comm`
        calls it, rank 0's frames are used."""
        from .parallel import world
        from .workload import read_and_compute

        comm = comm or world()
        settings = self.resolved_settings()
        entries, _, data = read_and_compute(settings, comm, progress, self.descriptors, {}, as_frames(frames))
        return self.fit_descriptors(settings, entries, data, comm, progress)

    def predict(self, frames, return_std: bool = False):
        """(energies (n,) eV, forces [(N_i, 3)] eV/Å, stresses (n, 6) bar) of the fitted potential, reference
        included, in each frame's own orientation; stresses are pressure-positive Voigt (xx yy zz yz xz xy),
        NaN for a frame that is not periodic in all three directions. With `return_std`, also the predictive σ:
        energies (n,) eV and per-atom forces [(N_i,)] eV/Å (from the posterior covariance of an ANL fit, or the
        spread of an ensemble's members). Runs on this rank alone."""
        self._check_fitted()
        frames = as_frames(frames)
        settings = self.settings_
        unknown = sorted({s for f in frames for s in f.symbols} - set(settings.bispectrum.types))
        if unknown:
            raise FitsnapError(f"element(s) {', '.join(unknown)} not in the model's {' '.join(settings.bispectrum.types)}")
        rows = list(self.predict_frames(settings, frames, return_std))
        energies = np.array([r[0] for r in rows])
        forces = [r[1] for r in rows]
        stresses = np.array([np.full(6, np.nan) if r[2] is None else r[2] for r in rows]).reshape(-1, 6)
        if not return_std:
            return energies, forces, stresses
        return energies, forces, stresses, np.array([r[3] for r in rows]), [r[4] for r in rows]

    def export(self, out_dir: "str | Path", stem: str = "potential") -> list[Path]:
        """Write the LAMMPS files of the fitted potential as `out_dir/stem.*` (all or nothing); their paths."""
        self._check_fitted()
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return write_all(self.potential_files(str(Path(out_dir) / stem)))

    @property
    def has_std(self) -> bool:
        """Whether `predict(..., return_std=True)` can give a σ (an ANL fit, an ensemble)."""
        return False

    def _check_fitted(self) -> None:
        if not hasattr(self, "settings_"):
            raise FitsnapError(f"this {type(self).__name__} is not fitted yet: call fit(frames) first")

    # ------------------------------------------------------------------ hooks (subclasses)
    @classmethod
    def from_settings(cls, settings: Settings) -> "SnapEstimator":
        """The estimator a deck describes."""
        raise NotImplementedError

    def apply_params(self, settings: Settings) -> Settings:
        raise NotImplementedError

    def descriptors(self, settings: Settings, entries, comm, progress):
        """This rank's descriptor data of `entries`."""
        raise NotImplementedError

    def fit_descriptors(self, settings: Settings, entries, data, comm, progress, timings=None):
        """Learn from every rank's descriptor data; sets `settings_` and the learned state; returns self."""
        raise NotImplementedError

    def error_sums(self, settings: Settings, entries, data) -> dict:
        """This rank's residual sums for the metrics table (metrics.residual_sums)."""
        raise NotImplementedError

    def potential_files(self, stem: str) -> dict:
        """{path: content} of the LAMMPS files (`stem.mod` and what it names)."""
        raise NotImplementedError

    def check_files(self, settings: Settings) -> None:
        """Before any work (rank 0): the input files the model reads exist."""

    def fit_files(self, settings: Settings, entries, data, comm) -> dict:
        """Extra files a deck's fit writes beside the potential and the metrics (dumps, loss curves, state); every
        rank calls it, rank 0's dict is written."""
        return {}

    def describe(self) -> str:
        """The model in a few words, for titles."""
        raise NotImplementedError

    def metrics_note(self) -> str:
        """A warning the metrics table must carry ('' for none)."""
        return ""

    def calibration(self, settings: Settings, entries, data, comm) -> list[dict] | None:
        """Rows of calibration.calibration_row for the test split (collective; rank 0's list), or None for a model
        without predictive σ."""
        return None

    def predict_frames(self, settings: Settings, frames, return_std: bool = False):
        """(energy, forces, stress or None, energy σ, per-atom force σ) per frame, reference included, in the frame's
        own orientation; the σ's are None unless `return_std` (which raises where the model has no σ)."""
        raise NotImplementedError


def as_frames(frames) -> list | None:
    """fitsnap_ext Frames from Frames or ASE Atoms (labels from the atoms' calculator results); None stays None."""
    if frames is None:
        return None
    from .data.frame import Frame

    return [f if isinstance(f, Frame) else Frame.from_atoms(f) for f in frames]


def with_solver(settings: Settings, **solver) -> Settings:
    """`settings` with [SOLVER] fields replaced."""
    return replace(settings, solver=replace(settings.solver, **solver))


def unlabelled_entries(settings: Settings, frames):
    """Entries for prediction: frames without labels get zeros (the targets are not used)."""
    from .data.dataset import Entry

    entries = []
    for i, frame in enumerate(frames):
        f = frame.copy()
        f.energy = 0.0 if f.energy is None else f.energy
        f.forces = np.zeros((f.natoms, 3)) if f.forces is None else f.forces
        f.stress = np.zeros((3, 3)) if f.stress is None else f.stress
        f.index = i if f.index is None else f.index
        entries.append(Entry(f, False, 1.0, 1.0, 1.0, i))
    return entries


def prediction_settings(settings: Settings, frames) -> Settings:
    """Settings that compute every row a prediction needs: energies, forces, and stresses (all six, in LAMMPS'
    frame) when every frame is periodic."""
    periodic = all(all(f.pbc) for f in frames)
    return replace(settings, calculator=replace(settings.calculator, energy=True, force=True, stress=periodic,
                                                stress_components="all"))
