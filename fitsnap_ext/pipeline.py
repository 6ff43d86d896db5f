"""A fit from a deck: read → descriptors (per rank) → solve (reduced over ranks) → metrics → files.

Each stage is a plain call with explicit inputs. Rank 0 reads the data and hands each rank its share
(balanced by atom count); every rank computes its own rows with its own LAMMPS instance; the solver
reduces the rows to a small R factor; rank 0 writes every output file at the end, all-or-nothing.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Settings, output_files
from .data.dataset import Entry, load_entries
from .descriptors import KIND_NAMES, Rows, SnapCalculator, n_columns
from .errors import FitsnapError
from .export.files import write_all
from .export.snap import snap_files
from .metrics import ErrorRow, csv_table, markdown_table, merge_sums, residual_sums
from .models.linear import LinearSNAP, column_groups
from .parallel import collective, map_entries, split_by_atoms


class Progress:
    """Timestamped stage lines on rank 0 only (stdout, flushed: batch logs show them live)."""

    def __init__(self, comm, stream=None):
        self.rank = comm.rank
        self.stream = stream or sys.stdout
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.rank == 0:
            print(f"[{time.perf_counter() - self.t0:8.2f} s] {message}", file=self.stream, flush=True)


@dataclass
class FitResult:
    coef: np.ndarray
    errors: list[ErrorRow]
    files: list[Path] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    n_configs: int = 0


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
        problem = unwritable_reason(Path(name))
        if problem:
            raise settings.error(f"cannot write {name!r}: {problem}", section, key)


def unwritable_reason(path: Path) -> str:
    """Why `path` cannot be written ('' if it can): tried by creating and removing a small file in the nearest
    existing folder, which catches read-only and full file systems and a file standing where a folder must be."""
    folder = path.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    return ""


def distribute(settings: Settings, comm, progress, frames=None) -> tuple[list[Entry], int]:
    """Rank 0 reads and splits the data (or takes `frames`); each rank receives its configurations."""
    parts = None
    with collective(comm, "reading data"):
        if comm.rank == 0:
            entries = load_entries(settings, frames)
            n_test = sum(e.test for e in entries)
            ngroups = len({e.frame.group for e in entries})
            progress(f"read {len(entries)} configurations ({len(entries) - n_test} train, {n_test} test) "
                     f"in {ngroups} groups from {settings.data_path if frames is None else 'memory'}")
            shares = split_by_atoms([e.frame.natoms for e in entries], comm.size)
            parts = [[entries[i] for i in share] for share in shares]
    mine = comm.scatter(parts, root=0)
    total = comm.bcast(sum(len(p) for p in parts) if comm.rank == 0 else None, root=0)
    return mine, total


def read_and_compute(settings: Settings, comm, progress, compute, timings: dict, frames=None):
    """The first two stages of every fit, timed: read and spread the data (or `frames`), then `compute(settings,
    entries, comm, progress)` on each rank's share → (this rank's entries, total count, what compute returned)."""
    t = time.perf_counter()
    entries, n_total = distribute(settings, comm, progress, frames)
    timings["read"] = time.perf_counter() - t
    t = time.perf_counter()
    computed = compute(settings, entries, comm, progress)
    comm.Barrier()
    timings["descriptors"] = time.perf_counter() - t
    return entries, n_total, computed


def compute_rows(settings: Settings, entries: list[Entry], comm, progress) -> Rows:
    """This rank's rows of the linear system."""
    blocks = map_entries(lambda: SnapCalculator(settings), lambda calc, entry: calc.rows(entry), entries, comm,
                         progress, "descriptors")
    return Rows.concatenate(blocks, n_columns(settings))


def gather_rows(rows: Rows, comm) -> Rows | None:
    """All rows on rank 0 in deck order (only for the optional FitSNAP-style dumps)."""
    parts = comm.gather(rows, root=0)
    if comm.rank != 0:
        return None
    full = Rows.concatenate(parts, rows.a.shape[1])
    order = np.argsort(full.entry, kind="stable")
    return Rows(full.a[order], full.b[order], full.w[order], full.kind[order], full.entry[order])


def dump_files(settings: Settings, rows: Rows, pred: np.ndarray, entries_meta: dict) -> dict:
    out = settings.output
    files = {}
    if out.dump_descriptors:
        files[out.descriptors_file] = lambda p: np.save(open(p, "wb"), rows.a)
    if out.dump_truth:
        files[out.truth_file] = lambda p: np.save(open(p, "wb"), rows.b)
    if out.dump_weights:
        files[out.weights_file] = lambda p: np.save(open(p, "wb"), rows.w)
    if out.dump_dataframe:
        def write_frame(p):
            import pandas as pd

            meta = [entries_meta[int(i)] for i in rows.entry]
            pd.DataFrame({"Groups": [m[0] for m in meta], "Configs": [m[1] for m in meta],
                          "Testing": [m[2] for m in meta], "Row_Type": [KIND_NAMES[k] for k in rows.kind],
                          "truths": rows.b, "preds": pred, "weights": rows.w}).to_pickle(p)
        files[out.dataframe_file] = write_frame
    return files


TOTAL_ENERGY_EV_PER_ATOM = 20.0  # |E/atom| above this is a total energy (GTH/plane-wave codes), not a cohesive one


def bzero_offset_note(settings: Settings, entries, comm) -> str:
    """A note when bzeroflag = 1 meets total-energy labels: that flag fits no per-element constant (an isolated
    atom has zero energy), so an offset of hundreds of eV/atom must come from the descriptors and ruins the fit."""
    bs = settings.bispectrum
    if not (bs.bzeroflag and settings.calculator.energy):
        return ""
    energy = comm.allreduce(sum(e.frame.energy for e in entries))  # every frame has one (the readers check)
    atoms = comm.allreduce(sum(e.frame.natoms for e in entries))
    if atoms == 0 or abs(energy / atoms) < TOTAL_ENERGY_EV_PER_ATOM:
        return ""
    return (f"note: the energies average {energy / atoms:.1f} eV/atom (total energies) and bzeroflag = 1 fits no "
            f"per-element constant: the descriptors must carry that offset and the fit suffers; set [BISPECTRUM] "
            f"bzeroflag = 0 (a constant per element) or subtract isolated-atom energies")


def rank_warning(rank: int, ncoef: int, settings: Settings) -> str:
    """A loud line when the data determine fewer coefficients than the model has (rcutfac or radelem too small
    to see neighbours, too few configurations, duplicated columns): those coefficients are the solver's choice."""
    if rank >= ncoef:
        return ""
    bs = settings.bispectrum
    return (f"WARNING: rank-deficient fit: the data determine {rank} of {ncoef} coefficients; the other "
            f"{ncoef - rank} are set by the solver's regularisation, not by the data (check [BISPECTRUM] rcutfac "
            f"{bs.rcutfac!r} and radelem {' '.join(map(repr, bs.radelem))}: cutoff "
            f"{2 * bs.rcutfac * max(bs.radelem):.3g} Å; and the amount of data)")


def run_fit(settings: Settings, comm, overwrite: bool = False, progress=None, frames=None) -> FitResult:
    """Fit the linear (or quadratic) SNAP a deck describes (on its data, or on `frames`) and write its files."""
    progress = progress or Progress(comm)
    for note in settings.notes:
        progress(note)
    if settings.network is not None:
        from .fit_network import run_network_fit
        return run_network_fit(settings, comm, overwrite, progress)
    timings = {}
    with collective(comm, "checking outputs"):
        if comm.rank == 0:
            check_outputs(settings, overwrite)

    entries, n_total, rows = read_and_compute(settings, comm, progress, compute_rows, timings, frames)
    bs = settings.bispectrum
    note = bzero_offset_note(settings, entries, comm)
    if note:
        progress(note)
    progress(f"descriptors done: {comm.allreduce(len(rows.b))} rows × {rows.a.shape[1]} columns "
             f"(2J={bs.twojmax}, {'quadratic' if bs.quadraticflag else 'linear'}) in {timings['descriptors']:.2f} s")

    t = time.perf_counter()
    test_of = np.zeros(n_total, bool)
    group_of = np.empty(n_total, dtype=object)
    for e in entries:
        test_of[e.index], group_of[e.index] = e.test, e.frame.group
    test = test_of[rows.entry]
    with collective(comm, "solving"):
        if comm.allreduce(int((~test).sum())) == 0:
            raise FitsnapError("no training rows: every configuration is in the test split")
        model = LinearSNAP(settings.solver.solver, settings.solver.alpha, settings.solver.rcond,
                           groups=column_groups(bs))  # chemflag's identical columns get one coefficient
        model.fit(rows, comm, train_mask=~test)
    timings["fit"] = time.perf_counter() - t
    tied = f" ({len(model.coef_)} with chemflag's tied copies)" if model.n_free_ < len(model.coef_) else ""
    progress(f"solved {settings.solver.solver}: rank {model.rank_} of {model.n_free_} coefficients{tied}, "
             f"condition {model.singular_values_[0] / model.singular_values_[-1]:.3g} in {timings['fit']:.2f} s")
    warning = rank_warning(model.rank_, model.n_free_, settings)
    if warning:
        progress(warning)

    pred = model.predict(rows.a)
    sums = residual_sums(pred - rows.b, rows.kind, group_of[rows.entry], test)
    errors = merge_sums(comm.allgather(sums))

    t = time.perf_counter()
    out = settings.output
    dumps = {}
    if out.dump_descriptors or out.dump_truth or out.dump_weights or out.dump_dataframe:
        meta = {e.index: (e.frame.group, e.frame.label(), e.test) for e in entries}
        all_meta = comm.gather(meta, root=0)
        full = gather_rows(rows, comm)
        if comm.rank == 0:
            merged = {k: v for m in all_meta for k, v in m.items()}
            dumps = dump_files(settings, full, model.predict(full.a), merged)
    written = []
    with collective(comm, "writing outputs"):
        if comm.rank == 0:
            title = (f"# Fitting errors of {out.potential} ({settings.solver.solver}, 2J={bs.twojmax}, "
                     f"{'quadratic' if bs.quadraticflag else 'linear'} SNAP; deck {settings.deck.name})")
            files = snap_files(out.potential, model.coef_, bs, settings.reference)
            files[out.metrics] = markdown_table(errors, title) + (f"\n**{warning}**\n" if warning else "")
            files[str(Path(out.metrics).with_suffix(".csv"))] = csv_table(errors)
            files.update(dumps)
            written = write_all(files)
    timings["write"] = time.perf_counter() - t
    progress(f"wrote {', '.join(str(p) for p in written)}" if comm.rank == 0 else "")
    return FitResult(model.coef_, errors, written, timings, n_total)


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
