"""A neural-network fit from a deck ([SOLVER] solver = PYTORCH): read → per-atom descriptors → train → files.

Same stages and conventions as the linear `fit.run_fit`: rank 0 reads and spreads the configurations
(balanced by atoms), every rank computes its own per-atom descriptors and sparse gradients with its own
LAMMPS, training is data-parallel (gradients summed over ranks), the metrics table has the linear models'
rows and units (energy eV/atom, force eV/Å), and rank 0 writes every output file at the end,
all-or-nothing: <pot>.mliap.model, <pot>.mliap.descriptor, <pot>.mod, the metrics .md/.csv, the loss
curve <pot>.loss.csv / .png and the torch state ([PYTORCH] save_state_output).

The checkpoint and saved state carry a fingerprint of everything that defines the fit (descriptor settings,
ESHIFT, reference potential, a hash of the data in deck order, the split, architecture, hyper-parameters),
so a checkpoint of another fit is refused naming the keys that differ.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import Settings
from .descriptors import ENERGY, FORCE, STRESS
from .export.files import write_all
from .export.mliap import mliap_files
from .fit import FitResult, Progress, read_and_compute, refuse_existing
from .metrics import csv_table, markdown_table, merge_sums, residual_sums
from .parallel import collective
from .peratom import check_network_settings, compute_peratom


def network_output_paths(settings: Settings) -> list[Path]:
    pot, metrics = settings.output.potential, settings.output.metrics
    paths = [f"{pot}.mliap.model", f"{pot}.mliap.descriptor", f"{pot}.mod", metrics,
             str(Path(metrics).with_suffix(".csv")), f"{pot}.loss.csv", f"{pot}.loss.png"]
    if settings.network.save_state_output:
        paths.append(settings.network.save_state_output)
    return [Path(p) for p in paths]


def choose_validation(entries_meta: list[tuple[int, bool]], fraction: float, seed: int) -> set[int]:
    """Indices of the training configurations held out for early stopping (seeded; any rank count)."""
    train = np.array(sorted(i for i, test in entries_meta if not test), dtype=np.int64)
    n_val = int(round(fraction * len(train)))
    if fraction > 0 and len(train) > 1:
        n_val = min(max(n_val, 1), len(train) - 1)
    else:
        n_val = 0
    rng = np.random.Generator(np.random.PCG64(seed + 7919))
    return set(int(i) for i in train[rng.permutation(len(train))[:n_val]])


def model_from_settings(settings: Settings):
    """The NetworkSNAP estimator a deck describes (paths relative to the working folder, as the outputs)."""
    from .models.network import NetworkSNAP

    n = settings.network
    return NetworkSNAP(hidden=n.hidden, activation=n.activation, learning_rate=n.learning_rate,
                       num_epochs=n.num_epochs, batch_size=n.batch_size, energy_weight=n.energy_weight,
                       force_weight=n.force_weight, stress_weight=n.stress_weight, seed=n.seed, patience=n.patience,
                       n_elements=settings.bispectrum.numtypes, checkpoint=n.checkpoint, save_freq=n.save_freq,
                       init_state=n.save_state_input, stress_mask=settings.calculator.stress_mask,
                       shuffle=n.shuffle_flag, multi_element_option=n.multi_element_option,
                       deck_error=settings.error)


def descriptor_fingerprint(settings: Settings) -> dict:
    """{[BISPECTRUM] key: value} of the descriptor a network was trained on."""
    return {f.name: repr(getattr(settings.bispectrum, f.name)) for f in dataclasses.fields(settings.bispectrum)}


def data_hash(entries, comm) -> str:
    """sha256 over every rank's configurations in deck order: symbols, positions, cell, labels, group, split."""
    mine = []
    for e in entries:
        f = e.frame
        h = hashlib.sha256(repr((f.group, list(f.symbols), e.test, e.eweight, e.fweight, e.vweight)).encode())
        for a in (f.positions, f.cell, f.forces, f.stress, None if f.energy is None else np.array([f.energy])):
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes())
        mine.append((e.index, h.hexdigest()))
    return hashlib.sha256(repr(sorted(x for part in comm.allgather(mine) for x in part)).encode()).hexdigest()


def provenance(settings: Settings, entries, comm) -> dict:
    """What besides the network's own settings must match for a checkpoint to resume (see the module text)."""
    calc = settings.calculator
    out = descriptor_fingerprint(settings)
    out.update(ESHIFT=repr(sorted(settings.eshift.items())), REFERENCE=repr(settings.reference.commands),
               energy=str(int(calc.energy)), force=str(int(calc.force)), stress=str(int(calc.stress)),
               data=data_hash(entries, comm)[:16], validation_fraction=repr(settings.network.validation_fraction),
               training_fraction=repr(settings.network.training_fraction))
    return out


def check_network_files(settings: Settings) -> None:
    """Before any work (rank 0): save_state_input exists, the checkpoint file can be written."""
    net = settings.network
    if net.save_state_input and not Path(net.save_state_input).is_file():
        raise settings.error(f"{net.save_state_input}: file not found", "PYTORCH", "save_state_input")
    if not net.checkpoint:
        return
    path = Path(net.checkpoint)
    if path.is_dir():
        raise settings.error(f"{path} is a folder; name a file", "PYTORCH", "checkpoint")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise settings.error(f"{path}: {folder} is a file, not a folder", "PYTORCH", "checkpoint")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise settings.error(f"{path}: cannot write in {folder} ({exc.strerror or exc})", "PYTORCH",
                             "checkpoint") from None
    if path.exists() and not os.access(path, os.R_OK):
        raise settings.error(f"{path} cannot be read", "PYTORCH", "checkpoint")


def loss_csv(history: list[dict]) -> str:
    keys = list(history[0]) if history else ["epoch"]
    lines = [",".join(keys)] + [",".join(repr(float(row[k])) if k != "epoch" else str(row[k]) for k in keys)
                                for row in history]
    return "\n".join(lines) + "\n"


def loss_png(history: list[dict], title: str):
    def write(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = [r["epoch"] for r in history]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "energy_mae", "energy MAE (eV/atom)"),
                               (axes[2], "force_mae", "force MAE (eV/Å)")):
            ax.semilogy(ep, [r[f"train_{key}"] for r in history], label="train")
            val = [r[f"val_{key}"] for r in history]
            if not all(np.isnan(val)):
                ax.semilogy(ep, val, label="validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        Path(path).write_bytes(buf.getvalue())
    return write


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def error_sums(settings: Settings, data, model):
    """This rank's metrics sums: the linear fits' rows and units (energy per atom, force components, stress
    in bar)."""
    residual, kinds, groups, test = [], [], [], []
    for c, (energy, forces, stress) in zip(data, model.predict_many(data)):
        n0 = sum(len(r) for r in residual)
        if settings.calculator.energy:
            residual.append(np.array([(energy - c.energy) / c.natoms]))
            kinds.append(np.array([ENERGY]))
        if settings.calculator.force:
            residual.append((forces - c.forces).ravel())
            kinds.append(np.full(3 * c.natoms, FORCE))
        if stress is not None:
            residual.append(stress - c.stress)
            kinds.append(np.full(6, STRESS))
        nrows = sum(len(r) for r in residual) - n0
        groups += [c.group] * nrows
        test += [c.test] * nrows
    cat = (lambda xs, dt: np.concatenate([np.asarray(x, dt) for x in xs]) if xs else np.zeros(0, dt))
    return residual_sums(cat(residual, float), cat(kinds, np.int8), groups, np.array(test, bool))


def run_network_fit(settings: Settings, comm, overwrite: bool = False, progress=None) -> FitResult:
    """Train the per-atom network a deck describes and write its LAMMPS (mliap nn) files."""
    progress = progress or Progress(comm)
    net = settings.network
    timings = {}
    with collective(comm, "checking settings"):
        check_network_settings(settings)
        if comm.rank == 0:
            refuse_existing(network_output_paths(settings), overwrite)
            check_network_files(settings)

    entries, n_total, data = read_and_compute(settings, comm, progress, compute_peratom, timings)
    with collective(comm, "fingerprinting the data"):
        prov = provenance(settings, entries, comm)
    nbytes = comm.allreduce(sum(c.nbytes for c in data))
    npairs = comm.allreduce(sum(len(c.pair_i) for c in data))
    natoms = comm.allreduce(sum(c.natoms for c in data))
    bs = settings.bispectrum
    progress(f"per-atom descriptors done: {natoms} atoms, {npairs} neighbour pairs, {bs.ncoeff} descriptors "
             f"(2J={bs.twojmax}); {nbytes / 2**20:.1f} MiB stored over all ranks in {timings['descriptors']:.2f} s")

    if net.training_fraction is not None:  # FitSNAP's global split overrides the groups' train/test sizes
        for c in data:
            c.test = False
    meta = [m for part in comm.allgather([(c.index, c.test) for c in data]) for m in part]
    held_out = net.validation_fraction if net.training_fraction is None else 1.0 - net.training_fraction
    validation = choose_validation(meta, held_out, net.seed)
    progress(f"training {len(meta) - len(validation) - sum(t for _, t in meta)} configurations, "
             f"validating (early stopping) on {len(validation)}, testing on {sum(t for _, t in meta)}; network "
             f"{bs.ncoeff}-{'-'.join(map(str, net.hidden))}-1 {net.activation}, {net.num_epochs} epochs, "
             f"batch {net.batch_size}, {comm.size} rank(s)")
    t = time.perf_counter()
    with collective(comm, "training"):
        model = model_from_settings(settings)
        model.fit(data, comm, validation, progress, use_energy=settings.calculator.energy,
                  use_force=settings.calculator.force, use_stress=settings.calculator.stress, provenance=prov)
    if net.training_fraction is not None:  # the held-out configurations are the metrics' test rows, as in FitSNAP
        for c in data:
            c.test = c.index in validation
    timings["fit"] = time.perf_counter() - t
    epochs = len(model.history_)
    timings["epoch"] = float(np.mean([r["seconds"] for r in model.history_])) if epochs else 0.0
    timings["peak_rss_mib"] = comm.allreduce(peak_rss_mib(), op=_mpi_max())
    progress(f"trained {epochs} epochs in {timings['fit']:.2f} s ({timings['epoch']:.3f} s/epoch), best epoch "
             f"{model.best_epoch_}; peak memory {timings['peak_rss_mib']:.0f} MiB per rank (max)")

    errors = merge_sums(comm.allgather(error_sums(settings, data, model)))

    t = time.perf_counter()
    out = settings.output
    written = []
    with collective(comm, "writing outputs"):
        if comm.rank == 0:
            arch = f"{bs.ncoeff}-{'-'.join(map(str, net.hidden))}-1 {net.activation}"
            title = (f"# Fitting errors of {out.potential} (PYTORCH network {arch}, 2J={bs.twojmax}; "
                     f"deck {settings.deck.name})")
            files = mliap_files(out.potential, model.layers_, model.scale_[0], model.scale_[1], net.activation,
                                bs, settings.reference, comment=f"{arch}, deck {settings.deck.name}")
            files[out.metrics] = markdown_table(errors, title)
            files[str(Path(out.metrics).with_suffix(".csv"))] = csv_table(errors)
            files[f"{out.potential}.loss.csv"] = loss_csv(model.history_)
            files[f"{out.potential}.loss.png"] = loss_png(model.history_, title.lstrip("# "))
            if net.save_state_output:
                import torch

                state = model.state(descriptor_fingerprint(settings))
                files[net.save_state_output] = lambda p: torch.save(state, p)
            written = write_all(files)
    timings["write"] = time.perf_counter() - t
    progress(f"wrote {', '.join(str(p) for p in written)}" if comm.rank == 0 else "")
    result = FitResult(model.coef_, errors, written, timings, n_total)
    result.model = model
    return result


def _mpi_max():
    from mpi4py import MPI

    return MPI.MAX
