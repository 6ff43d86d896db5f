"""The fit pipeline, one for every model kind: read → descriptors (per rank) → model.fit → metrics → files.

Each stage is a plain call with explicit inputs. Rank 0 reads the data (or takes frames given in memory) and
hands each rank its share (balanced by atom count); every rank computes its own descriptors with its own LAMMPS
instance; the model learns from all ranks' descriptors (a TSQR-reduced least squares, or data-parallel
training); rank 0 writes every output file at the end, all-or-nothing. The model kind comes from MODEL_KINDS.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FitsnapError
from .estimator import SnapEstimator, as_frames
from .export.files import unwritable_reason, write_all
from .linear_snap import LinearSNAP
from .metrics import ErrorRow, csv_table, error_frame, markdown_table, merge_sums
from .network_snap import NetworkSNAP
from .parallel import collective
from .progress import Progress
from .settings import Settings, calibration_csv, output_files
from .workload import read_and_compute

MODEL_KINDS = {"linear": LinearSNAP, "network": NetworkSNAP}


@dataclass
class FitResult:
    """What a fit gives: the fitted estimator, its errors (`errors`: a pandas DataFrame with group, split,
    quantity, unit, count, MAE, RMSE; `error_rows` the same as records), the files written, stage timings."""

    model: SnapEstimator
    error_rows: list[ErrorRow]
    files: list[Path] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    n_configs: int = 0

    @property
    def errors(self):
        return error_frame(self.error_rows)

    @property
    def coef(self):
        return self.model.coef_


def model_kind(settings: Settings) -> str:
    return "network" if settings.network is not None else "linear"


def output_paths(settings: Settings) -> list[Path]:
    """Every file a fit writes (relative to the current directory, as FitSNAP does)."""
    return [Path(name) for name, _ in output_files(settings)]


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Stop before any work if an output already exists and --overwrite was not given."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FitsnapError(f"output exists: {', '.join(existing)} (use --overwrite)")


def check_outputs(settings: Settings, overwrite: bool) -> None:
    """Before any work: no output exists (unless `overwrite`) and every output's folder can be written."""
    refuse_existing(output_paths(settings), overwrite)
    for name, (section, key) in output_files(settings):
        problem = unwritable_reason(Path(name).parent)
        if problem:
            raise settings.error(f"cannot write {name!r}: {problem}", section, key)


def run_fit(settings: Settings, comm, overwrite: bool = False, progress=None, frames=None,
            write: bool = True) -> FitResult:
    """Fit the model a deck describes (on its data, or on `frames`) and, with `write`, write its files."""
    progress = progress or Progress(comm)
    for note in settings.notes:
        progress(note)
    model = MODEL_KINDS[model_kind(settings)].from_settings(settings)
    timings = {}
    with collective(comm, "checking inputs and outputs"):
        if comm.rank == 0:
            model.check_files(settings)
            if write:
                check_outputs(settings, overwrite)

    entries, n_total, data = read_and_compute(settings, comm, progress, model.descriptors, timings,
                                              as_frames(frames))
    t = time.perf_counter()
    model.fit_descriptors(settings, entries, data, comm, progress, timings)
    timings["fit"] = time.perf_counter() - t
    errors = merge_sums(comm.allgather(model.error_sums(settings, entries, data)))
    written = []
    if write:
        t = time.perf_counter()
        extra = model.fit_files(settings, entries, data, comm)  # collective: dumps gather rows on rank 0
        calibration = model.calibration(settings, entries, data, comm)  # collective
        with collective(comm, "writing outputs"):
            if comm.rank == 0:
                written = write_all({**model.potential_files(settings.output.potential),
                                     **metrics_files(settings, model, errors, calibration), **extra})
        timings["write"] = time.perf_counter() - t
        progress(f"wrote {', '.join(str(p) for p in written)}" if comm.rank == 0 else "")
    return FitResult(model, errors, written, timings, n_total)


def metrics_files(settings: Settings, model: SnapEstimator, errors: list[ErrorRow], calibration=None) -> dict:
    """The error table as markdown (with the model's warning, if any) and CSV; with predictive σ, the calibration
    table appended to the markdown and as `<metrics stem>_calibration.csv`."""
    from . import calibration as calib

    out = settings.output
    title = f"# Fitting errors of {Path(out.potential).name} ({model.describe()}; deck {settings.deck.name})"
    note = model.metrics_note()
    text = markdown_table(errors, title) + (f"\n**{note}**\n" if note else "")
    files = {str(Path(out.metrics).with_suffix(".csv")): csv_table(errors)}
    if calibration:
        text += "\n" + calib.markdown_table(calibration, "## Calibration of the predictive σ (test split)",
                                            model.calibration_scaled_on)
        files[calibration_csv(out.metrics)] = calib.csv_table(calibration)
    files[out.metrics] = text
    return files


def run_deck(settings: Settings, comm, overwrite: bool = False) -> FitResult:
    """What a deck asks for: the fit, then (with [PROPERTIES]) the fitted potential's properties; a property
    that failed makes the run fail (its reason is in the log and props.json)."""
    result = run_fit(settings, comm, overwrite)
    p = settings.properties
    if p is not None:
        from .properties import run_properties

        props = run_properties(Path(f"{settings.output.potential}.mod"), p.system, list(p.properties) or None,
                               p.quick, Path(p.out or f"{settings.output.potential}_props.json"), p.reference, comm,
                               overwrite=overwrite)
        failed = props.get("failed_properties", {})
        if failed:
            error = FitsnapError(f"[PROPERTIES]: {len(failed)} properties failed: "
                                 + "; ".join(f"{name}: {why}" for name, why in failed.items()))
            error.on_every_rank = True  # run_properties returns the same dict on every rank
            raise error
    return result
