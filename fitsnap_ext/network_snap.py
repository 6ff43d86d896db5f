"""A per-atom neural network on the same bispectrum descriptors as an estimator ([SOLVER] solver = PYTORCH):
per-atom descriptors and their sparse gradients → data-parallel training → `pair_style mliap model nn` files.

Rank 0 reads and spreads the configurations (balanced by atoms), every rank computes its own per-atom descriptors
with its own LAMMPS, training sums gradients over ranks, and the metrics have the linear models' rows and units
(energy eV/atom, force eV/Å, stress bar). A deck's fit also writes the loss curve <pot>.loss.csv / .png and the
torch state ([PYTORCH] save_state_output). With [PYTORCH] ensemble_size K ≥ 2, K members are trained side by side
(models.ensemble); the mean is exported as one network, each member on its own, and the members' spread is the
predictive σ, calibrated on the test split in the metrics.

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
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .descriptors import ENERGY, FORCE, KIND_NAMES, STRESS
from .errors import FitsnapError
from .estimator import SnapEstimator, prediction_settings, unlabelled_entries
from .export.ensemble import Member, ensemble_mliap_files
from .export.files import unwritable_reason
from .export.mliap import mliap_files
from .metrics import residual_sums
from .models.ensemble import NetworkEnsemble, share_members, train_members
from .parallel import collective, threads_per_rank
from .peratom import PerAtomCalculator, check_network_settings, compute_peratom
from .settings import NetworkSettings, Settings
from .units import to_frame

NETWORK_PARAMS = tuple(f.name for f in dataclasses.fields(NetworkSettings))


class NetworkSNAP(SnapEstimator):
    """E = Σ_i NN_element(i)((B_i − mean)/std) on the linear bispectrum; parameters are [PYTORCH]'s keys (their
    defaults here are the deck's defaults, except that nothing is saved unless `save_state_output` is named).
    Learned: `network_` (the torch model and trainer; with ensemble_size K ≥ 2 a models.ensemble.NetworkEnsemble
    of K members, whose mean is the prediction and whose spread is σ), `layers_`, `scale_`, `coef_` (of the one
    exported network), `history_`, `best_epoch_`, `settings_`. `NetworkSNAP.from_settings(load_deck(...))` takes
    a deck's [PYTORCH] section."""

    kind = "network"
    calibration_scaled_on = "the validation split (the configurations held out for early stopping)"

    def __init__(self, settings=None, hidden=(32, 32), activation="tanh", learning_rate=5e-3, num_epochs=300,
                 batch_size=4, energy_weight=None, force_weight=None, stress_weight=0.0, seed=0,
                 validation_fraction=0.1, training_fraction=None, shuffle_flag=True, multi_element_option=2,
                 patience=50, save_state_output="", save_state_input="", checkpoint="", save_freq=10,
                 ensemble_size=1, ensemble_bootstrap=False, ema_decay=0.0, weight_decay=0.0, linear_baseline=False):
        self.settings = settings
        self.hidden = hidden
        self.activation = activation
        self.learning_rate = learning_rate
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.energy_weight = energy_weight
        self.force_weight = force_weight
        self.stress_weight = stress_weight
        self.seed = seed
        self.validation_fraction = validation_fraction
        self.training_fraction = training_fraction
        self.shuffle_flag = shuffle_flag
        self.multi_element_option = multi_element_option
        self.patience = patience
        self.save_state_output = save_state_output
        self.save_state_input = save_state_input
        self.checkpoint = checkpoint
        self.save_freq = save_freq
        self.ensemble_size = ensemble_size
        self.ensemble_bootstrap = ensemble_bootstrap
        self.ema_decay = ema_decay
        self.weight_decay = weight_decay
        self.linear_baseline = linear_baseline

    @classmethod
    def from_settings(cls, settings: Settings) -> "NetworkSNAP":
        return cls(settings, **dataclasses.asdict(settings.network))

    def apply_params(self, settings: Settings) -> Settings:
        params = {name: getattr(self, name) for name in NETWORK_PARAMS}
        params["hidden"] = tuple(int(h) for h in params["hidden"])
        network = NetworkSettings(**params)
        settings = replace(settings, network=network, solver=replace(settings.solver, solver="PYTORCH"),
                           calculator=replace(settings.calculator, nonlinear=True))
        check_network_settings(settings)
        return settings

    @property
    def has_std(self) -> bool:
        return self.ensemble_size >= 2

    def describe(self) -> str:
        s = self.settings_
        k = s.network.ensemble_size
        return f"PYTORCH {f'ensemble of {k} networks' if k > 1 else 'network'} {self.architecture()}, " \
               f"2J={s.bispectrum.twojmax}"

    def architecture(self) -> str:
        n = self.settings_.network
        return f"{self.settings_.bispectrum.ncoeff}-{'-'.join(map(str, n.hidden))}-1 {n.activation}"

    @property
    def layers_(self):
        return self.network_.layers_

    @property
    def scale_(self):
        return self.network_.scale_

    @property
    def coef_(self) -> np.ndarray:
        return self.network_.coef_

    # ------------------------------------------------------------------ pipeline hooks
    def check_files(self, settings: Settings) -> None:
        check_network_settings(settings)
        check_network_files(settings)

    def descriptors(self, settings: Settings, entries, comm, progress):
        data = compute_peratom(settings, entries, comm, progress)
        nbytes = comm.allreduce(sum(c.nbytes for c in data))
        npairs = comm.allreduce(sum(len(c.pair_i) for c in data))
        natoms = comm.allreduce(sum(c.natoms for c in data))
        progress(f"per-atom descriptors done: {natoms} atoms, {npairs} neighbour pairs, "
                 f"{settings.bispectrum.ncoeff} descriptors (2J={settings.bispectrum.twojmax}); "
                 f"{nbytes / 2**20:.1f} MiB stored over all ranks")
        return data

    def fit_descriptors(self, settings: Settings, entries, data, comm, progress, timings=None):
        net = settings.network
        self._parity_rows = None  # a previous fit's
        with collective(comm, "fingerprinting the data"):
            prov = provenance(settings, entries, comm)
        if net.training_fraction is not None:  # FitSNAP's global split overrides the groups' train/test sizes
            for c in data:
                c.test = False
        meta = [m for part in comm.allgather([(c.index, c.test) for c in data]) for m in part]
        held_out = net.validation_fraction if net.training_fraction is None else 1.0 - net.training_fraction
        validation = choose_validation(meta, held_out, net.seed)
        self.settings_, self.validation_ = settings, validation
        if net.training_fraction is not None:
            self.calibration_scaled_on = "the held-out configurations (with training_fraction also the test split)"
        k = net.ensemble_size
        sizes = sorted({len(range(g, comm.size, min(k, comm.size))) for g in range(min(k, comm.size))})
        layout = (f"; {k} members, {min(k, comm.size)} at a time, {'-'.join(map(str, sizes))} rank(s) each"
                  if k > 1 else "")
        progress(f"training {len(meta) - len(validation) - sum(t for _, t in meta)} configurations, "
                 f"validating (early stopping) on {len(validation)}, testing on {sum(t for _, t in meta)}; network "
                 f"{self.architecture()}, {net.num_epochs} epochs, batch {net.batch_size}, {comm.size} rank(s)"
                 f" × {threads_per_rank()} torch thread(s){layout}")
        t, cpu = time.perf_counter(), time.process_time()
        fit_kwargs = dict(validation=validation, use_energy=settings.calculator.energy,
                          use_force=settings.calculator.force, use_stress=settings.calculator.stress,
                          provenance=prov)
        with collective(comm, "training"):
            if k == 1:
                self.network_ = trainer_from_settings(settings).fit(data, comm, progress=progress, **fit_kwargs)
            else:
                trained = train_members(lambda m: trainer_from_settings(settings, m), k, data, comm, progress,
                                        fit_kwargs)
        if k > 1:
            self.network_ = NetworkEnsemble(share_members(trained, k, comm,
                                                          lambda m: trainer_from_settings(settings, m)))
        if net.training_fraction is not None:  # the held-out configurations are the metrics' test rows (FitSNAP)
            for c in data:
                c.test = c.index in validation
        self.history_ = self.network_.history_
        self.best_epoch_ = self.network_.best_epoch_
        seconds = time.perf_counter() - t
        cpu = comm.allreduce(time.process_time() - cpu, op=_mpi_max())
        epoch = float(np.mean([r["seconds"] for r in self.history_])) if self.history_ else 0.0
        rss = comm.allreduce(peak_rss_mib(), op=_mpi_max())
        if timings is not None:
            timings.update(epoch=epoch, peak_rss_mib=rss)
        progress(f"trained {len(self.history_)} epochs{' (all members)' if k > 1 else ''} in {seconds:.2f} s "
                 f"({epoch:.3f} s/epoch), best epoch {self.best_epoch_}; peak memory {rss:.0f} MiB per rank (max); "
                 f"training CPU {cpu:.2f} s per rank (max)")
        return self

    def error_sums(self, settings: Settings, entries, data) -> dict:
        """The metrics sums; with dump_dataframe the same predictions' parity rows are kept for `fit_files` (the
        rows only: no reference to the configurations and their descriptors outlives the fit)."""
        items = list(compared_values(settings, data, self.network_))
        if settings.output.dump_dataframe:
            self._parity_rows = parity_rows(items)
        return error_sums(items)

    def potential_files(self, stem: str) -> dict:
        """`stem.mliap.model/.mliap.descriptor/.mod`: the network, or an ensemble's mean as one network; an
        ensemble's members also one by one as `stem.member<k>.*`."""
        s = self.settings_
        comment = f"{self.architecture()}, deck {s.deck.name}"
        if s.network.ensemble_size == 1:
            return mliap_files(stem, self.layers_, self.scale_[0], self.scale_[1], s.network.activation,
                               s.bispectrum, s.reference, comment=comment)
        members = [Member(m.layers_, m.scale_[0], m.scale_[1]) for m in self.network_.members]
        files = ensemble_mliap_files(stem, members, s.network.activation, s.bispectrum, s.reference, comment)
        for k, m in enumerate(members):
            files.update(mliap_files(f"{stem}.member{k}", m.layers, m.scale0, m.scale1, s.network.activation,
                                     s.bispectrum, s.reference, comment=f"member {k} (seed {s.network.seed + k}) "
                                                                        f"of an ensemble; {comment}"))
        return files

    def fit_files(self, settings: Settings, entries, data, comm) -> dict:
        """The loss curve (.loss.csv, .loss.png), the torch state ([PYTORCH] save_state_output) and, with [EXTRAS]
        dump_dataframe, the parity dataframe (collective: rows gathered on rank 0)."""
        stem = settings.output.potential
        files = {f"{stem}.loss.csv": loss_csv(self.history_),
                 f"{stem}.loss.png": loss_png(self.history_, f"Fitting errors of {Path(stem).name} ({self.describe()}; deck "
                                                             f"{settings.deck.name})")}
        if settings.output.dump_dataframe:
            frame = parity_frame(self._parity_rows, comm)  # kept by error_sums, which the pipeline runs first
            if comm.rank == 0:
                files[settings.output.dataframe_file] = frame.to_pickle
        if settings.network.save_state_output:
            import torch

            state = self.network_.state(descriptor_fingerprint(settings))
            files[settings.network.save_state_output] = lambda p: torch.save(state, p)
        return files

    def predict_frames(self, settings: Settings, frames, return_std: bool = False):
        """Per frame (energy, forces, stress or None, energy σ, per-atom force σ): an ensemble's mean and its members'
        spread (sample std, ddof 1; per atom the square root of the summed variances of the three components)."""
        ensemble = isinstance(self.network_, NetworkEnsemble)
        if return_std and not ensemble:
            raise FitsnapError("σ needs ensemble_size ≥ 2: a single network has no predictive σ (train an ensemble, "
                               "[PYTORCH] ensemble_size = K, whose members' spread is σ)")
        settings = prediction_settings(settings, frames)
        calc = PerAtomCalculator(settings)
        try:
            for entry in unlabelled_entries(settings, frames):
                c = calc.compute(entry)
                e_std = f_std = None
                if ensemble:
                    e_k, f_k, s_k = self.network_.member_predictions([c])[0]
                    energy, forces, stress = float(e_k.mean()), f_k.mean(0), None if s_k is None else s_k.mean(0)
                    if return_std:
                        e_std, f_std = float(e_k.std(ddof=1)), np.sqrt(f_k.var(0, ddof=1).sum(1))
                else:
                    energy, forces, stress = self.network_.predict(c)
                yield (energy + c.ref_energy, (forces + c.ref_forces) @ c.rotation,
                       total_stress(stress, c.ref_stress, c.rotation), e_std, f_std)
        finally:
            calc.close()

    def calibration(self, settings: Settings, entries, data, comm) -> list[dict] | None:
        """An ensemble's σ against its mean's errors on the test split (energy per atom, force components), raw
        and scaled by the factor fitted on the validation split; None for one network. Collective."""
        if not isinstance(self.network_, NetworkEnsemble):
            return None
        from .calibration import calibration_row, fit_scale

        validation = self.validation_
        mine = (calibration_points(settings, self.network_, [c for c in data if c.test]),
                calibration_points(settings, self.network_, [c for c in data if c.index in validation]))
        parts = comm.allgather(mine)
        rows = []
        for q in ("Energy", "Force"):
            if q not in mine[0]:
                continue
            test, val = ([np.concatenate([p[i][q][j] for p in parts]) for j in (0, 1)] for i in (0, 1))
            if not len(test[0]):
                continue
            rows.append(calibration_row(q, *test))
            if len(val[0]):
                rows.append(calibration_row(q, *test, scale=fit_scale(*val)))
        return rows or None


def calibration_points(settings: Settings, ensemble: NetworkEnsemble, configs) -> dict:
    """{"Energy": (errors, σ) per atom, "Force": (errors, σ) per component} of the ensemble mean over `configs`
    (σ: the members' sample std; points whose σ is round-off left out: calibration.informative)."""
    from .calibration import informative

    points = {q: ([], []) for q, on in (("Energy", settings.calculator.energy), ("Force", settings.calculator.force))
              if on}
    for c, (e_k, f_k, _) in zip(configs, ensemble.member_predictions(configs)):
        if "Energy" in points:
            points["Energy"][0].append([(e_k.mean() - c.energy) / c.natoms])
            points["Energy"][1].append([e_k.std(ddof=1) / c.natoms])
        if "Force" in points:
            points["Force"][0].append((f_k.mean(0) - c.forces).ravel())
            points["Force"][1].append(f_k.std(0, ddof=1).ravel())
    out = {}
    for q, (err, sig) in points.items():
        err, sig = (np.concatenate(x) if x else np.zeros(0) for x in (err, sig))
        keep = informative(sig)
        out[q] = (err[keep], sig[keep])
    return out


def total_stress(stress, ref_stress, rotation):
    """The predicted pressure tensor plus the reference's, in the frame's own orientation (Voigt, bar); None
    without stress."""
    if stress is None:
        return None
    return to_frame(stress + ref_stress, rotation)


def trainer_from_settings(settings: Settings, member: int = 0):
    """The torch model and trainer (models.network.PerAtomNetwork) a deck's [PYTORCH] describes; in an ensemble,
    member k has seed + k and checkpoints to `<checkpoint>.member<k>`."""
    from .models.network import PerAtomNetwork

    net = settings.network
    checkpoint = f"{net.checkpoint}.member{member}" if net.checkpoint and net.ensemble_size > 1 else net.checkpoint
    return PerAtomNetwork(
        hidden=net.hidden, activation=net.activation, learning_rate=net.learning_rate, num_epochs=net.num_epochs,
        batch_size=net.batch_size, energy_weight=net.energy_weight, force_weight=net.force_weight,
        stress_weight=net.stress_weight, seed=net.seed + member, patience=net.patience,
        n_elements=settings.bispectrum.numtypes, checkpoint=checkpoint, save_freq=net.save_freq,
        init_state=net.save_state_input, stress_mask=settings.calculator.stress_mask, shuffle=net.shuffle_flag,
        multi_element_option=net.multi_element_option, deck_error=settings.error,
        bootstrap=net.ensemble_bootstrap, ema_decay=net.ema_decay, weight_decay=net.weight_decay,
        linear_baseline=net.linear_baseline)


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
    problem = unwritable_reason(path.parent)
    if problem:
        raise settings.error(f"cannot write {path}: {problem}", "PYTORCH", "checkpoint")
    if path.exists() and not os.access(path, os.R_OK):
        raise settings.error(f"{path} cannot be read", "PYTORCH", "checkpoint")


def loss_csv(history: list[dict]) -> str:
    keys = list(history[0]) if history else ["epoch"]
    lines = [",".join(keys)] + [",".join(str(row[k]) if k in ("member", "epoch") else repr(float(row[k])) for k in keys)
                                for row in history]
    return "\n".join(lines) + "\n"


def loss_png(history: list[dict], title: str):
    def write(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        members = sorted({r.get("member", 0) for r in history})
        for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "energy_mae", "energy MAE (eV/atom)"),
                               (axes[2], "force_mae", "force MAE (eV/Å)")):
            for m in members:  # an ensemble: one pair of curves per member
                rows = [r for r in history if r.get("member", 0) == m]
                ep, name = [r["epoch"] for r in rows], f" {m}" if len(members) > 1 else ""
                ax.semilogy(ep, [r[f"train_{key}"] for r in rows], label=f"train{name}")
                val = [r[f"val_{key}"] for r in rows]
                if not all(np.isnan(val)):
                    ax.semilogy(ep, val, "--", label=f"validation{name}")
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


def compared_values(settings: Settings, data, model):
    """Per configuration of this rank and fitted quantity: (config, kind, truth, prediction), in the linear fits' rows
    and units (energy per atom eV/atom, force components eV/Å, pressure tensor bar, LAMMPS frame) — what the metrics
    and the parity dataframe are made of."""
    for c, (energy, forces, stress) in zip(data, model.predict_many(data)):
        if settings.calculator.energy:
            yield c, ENERGY, np.array([c.energy / c.natoms]), np.array([energy / c.natoms])
        if settings.calculator.force:
            yield c, FORCE, np.ravel(c.forces), np.ravel(forces)
        if stress is not None:
            yield c, STRESS, np.asarray(c.stress), np.asarray(stress)


def parity_rows(items) -> list:
    """This rank's parity rows ((group, index, test), kind name, truth, prediction) of `compared_values` items."""
    return [((c.group, str(c.index), bool(c.test)), KIND_NAMES[kind], truth, pred) for c, kind, truth, pred in items]


def parity_frame(mine, comm):
    """Rank 0: the parity dataframe of every configuration (the linear fits' columns Groups, Configs, Testing,
    Row_Type, truths, preds) from every rank's `parity_rows`."""
    parts = comm.gather(mine, root=0)
    if comm.rank != 0:
        return None
    import pandas as pd

    items = sorted((x for part in parts for x in part), key=lambda x: int(x[0][1]))
    sizes = [len(truth) for _, _, truth, _ in items]
    return pd.DataFrame({"Groups": np.repeat([g for (g, _, _), *_ in items], sizes),
                         "Configs": np.repeat([c for (_, c, _), *_ in items], sizes),
                         "Testing": np.repeat([t for (_, _, t), *_ in items], sizes),
                         "Row_Type": np.repeat([kind for _, kind, _, _ in items], sizes),
                         "truths": np.concatenate([np.asarray(t, float) for _, _, t, _ in items]),
                         "preds": np.concatenate([np.asarray(p, float) for _, _, _, p in items])})


def error_sums(items):
    """This rank's metrics sums over its `compared_values` `items`."""
    sizes = [len(truth) for _, _, truth, _ in items]
    cat = (lambda xs, dt: np.concatenate([np.asarray(x, dt) for x in xs]) if xs else np.zeros(0, dt))
    return residual_sums(cat([pred - truth for _, _, truth, pred in items], float),
                         cat([np.full(n, kind) for (_, kind, _, _), n in zip(items, sizes)], np.int8),
                         [c.group for (c, _, _, _), n in zip(items, sizes) for _ in range(n)],
                         np.repeat(np.array([c.test for c, _, _, _ in items], bool), sizes))


def _mpi_max():
    from mpi4py import MPI

    return MPI.MAX
