"""A per-atom neural network on bispectrum descriptors: E = Σ_i NN_e(i)((B_i − μ_e) / σ_e).

Forces are −dE/dr through the sparse descriptor gradients of `peratom.ConfigData`:
F_j = Σ_(i,j) β_i · dgrad[i, j], with β_i = ∂E/∂B_i from autograd (double backprop for training); the pressure
tensor is P_v = −(1/V) Σ_i β_i · ∂B_i/∂h_v through the strain derivatives `ConfigData.dbde` (bar).
Everything is float64. The architecture is exactly what LAMMPS' `mliap model nn` evaluates: per element,
Linear → act → … → Linear(·, 1), act ∈ tanh | sigmoid | relu; the standardisation (μ, σ) becomes the
model file's scale0 / scale1.

Training is data-parallel over MPI ranks: each rank holds its own configurations; the batches are
drawn from the global list of training configurations by a seeded generator (the same on every rank);
each rank adds the loss gradient of its members of the batch (zeros if none), the flattened gradients
are summed with `Allreduce`, and every rank takes the same Adam step. The result is the same model for
any rank count, up to round-off in the sums.

Loss per configuration c, with FitSNAP's weights: w_E, w_F = the global [PYTORCH] energy_weight, force_weight
when both are given (they override the group weights), else the configuration's group eweight, fweight:
    w_E · ((E_c − E_c^DFT) / N_c)²  +  w_F · mean_a,j (F − F^DFT)²
    + w_P · mean_v (P_v − P_v^DFT in GPa)²     (configurations with stresses only; w_P = stress_weight, times the
      group vweight when the group weights are used; v over the fitted Voigt components: all six, or
      xx yy zz with stress_mask (1, 1, 1, 0, 0, 0))
and a batch's loss is the sum over its configurations divided by the batch size.

Checkpoints and saved states hold tensors and plain data only and are read with `torch.load(weights_only=True)`:
a file holding any other object is refused, never run. Each carries a fingerprint (architecture, descriptor
settings, hyper-parameters and, from the fit pipeline, ESHIFT, reference, data and split); a checkpoint resumes
only under an identical fingerprint, a saved state (save_state_input) needs the same architecture and descriptor.

torch is imported inside functions only (importing this module does not import torch).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from ..errors import FitsnapError, first_line
from ..parallel import torch_threads, world
from ..settings import ACTIVATIONS
from ..units import BAR_TO_GPA, EV_PER_A3_TO_BAR
from .head import fold_linear, linear_head, reference_energy_head, saved_head, standardisation
from .checkpoint import ARCHITECTURE_KEYS, fingerprint_differences, load_trusted, no_deck, plain


def _torch():
    import torch

    return torch


def build_module(nd: int, hidden, activation: str, n_elements: int):
    """torch ModuleList: one MLP per element (float64)."""
    torch = _torch()
    act = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[activation]
    nets = []
    for _ in range(n_elements):
        layers, nin = [], nd
        for h in hidden:
            layers += [torch.nn.Linear(nin, h, dtype=torch.float64), act()]
            nin = h
        layers.append(torch.nn.Linear(nin, 1, dtype=torch.float64))
        nets.append(torch.nn.Sequential(*layers))
    return torch.nn.ModuleList(nets)


class _Batch:
    """Configurations concatenated into flat tensors (pair indices offset to the batch's atoms)."""

    def __init__(self, configs, mu, sig, head, weights=None):
        """`head`: (per-element reference energies (eV/atom), output scale (eV), linear SNAP coefficients on raw B
        (n_elements, ndesc) or None) — E_i = E0_e + β_e·B_i + s · NN_e;
        `weights`: (energy_weight, force_weight) overriding every configuration's group weights, or None."""
        torch = _torch()
        counts = [c.natoms for c in configs]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.ncfg = len(configs)
        self.natoms = torch.tensor(counts, dtype=torch.float64)
        self.elements = torch.from_numpy(np.concatenate([c.elements for c in configs]))
        b = torch.from_numpy(np.concatenate([c.b for c in configs]))
        self.bn = (b - mu[self.elements]) / sig[self.elements]
        self.inv_sig = 1.0 / sig[self.elements]
        self.shift = head[0][self.elements]
        self.out_scale = head[1]
        self.lin_beta = None if head[2] is None else head[2][self.elements]   # dE/dB_i of the linear part
        self.lin_energy = None if head[2] is None else (b * self.lin_beta).sum(1)
        self.pi = torch.from_numpy(np.concatenate([c.pair_i.astype(np.int64) + o for c, o in zip(configs, offsets)]))
        self.pj = torch.from_numpy(np.concatenate([c.pair_j.astype(np.int64) + o for c, o in zip(configs, offsets)]))
        self.dgrad = [c.dgrad for c in configs]   # not concatenated: contracted config by config
        self.atom_cfg = torch.from_numpy(np.repeat(np.arange(len(configs)), counts))
        self.energy = torch.tensor([c.energy for c in configs], dtype=torch.float64)
        self.forces = torch.from_numpy(np.concatenate([c.forces for c in configs]))
        ew, fw = ([c.eweight for c in configs], [c.fweight for c in configs]) if weights is None else (
            [weights[0]] * len(configs), [weights[1]] * len(configs))
        self.ew = torch.tensor(ew, dtype=torch.float64)
        self.fw = torch.tensor(fw, dtype=torch.float64)
        self.n_elements_present = sorted(set(self.elements.tolist()))
        # stresses: the configurations that have them, their atoms' strain derivatives and P = scale · Σ β·dB/dh
        with_s = [k for k, c in enumerate(configs) if c.dbde is not None]
        self.stress_cfg = torch.tensor(with_s, dtype=torch.int64)
        self.stress_atoms = torch.from_numpy(np.concatenate(
            [np.arange(offsets[k], offsets[k] + counts[k]) for k in with_s] or [np.zeros(0, np.int64)]))
        self.stress_owner = torch.from_numpy(np.repeat(np.arange(len(with_s)), [counts[k] for k in with_s]))
        self.dbde = (torch.from_numpy(np.concatenate([configs[k].dbde for k in with_s])) if with_s else None)
        self.stress_scale = torch.tensor([-EV_PER_A3_TO_BAR / configs[k].volume for k in with_s],
                                         dtype=torch.float64)
        self.stress = torch.tensor(np.array([configs[k].stress for k in with_s]).reshape(-1, 6),
                                   dtype=torch.float64)
        self.vw = torch.tensor([configs[k].vweight if weights is None else 1.0 for k in with_s], dtype=torch.float64)


def _pair_contract(beta_p, blocks):
    """out[p, a] = Σ_d blocks[p, a, d] · beta_p[p, d] over the configurations' dgrad blocks (numpy matmul:
    about 3× faster than torch.bmm's backward on these many tiny products; the blocks are never copied)."""
    torch = _torch()

    class PairContract(torch.autograd.Function):
        @staticmethod
        def forward(ctx, bp):
            b = bp.detach().numpy()
            out = np.empty((len(b), 3))
            start = 0
            for d in blocks:
                end = start + len(d)
                np.matmul(d, b[start:end, :, None], out=out[start:end, :, None])
                start = end
            return torch.from_numpy(out)

        @staticmethod
        def backward(ctx, grad):
            g = grad.detach().contiguous().numpy()
            out = np.empty((len(g), blocks[0].shape[2] if blocks else 0))
            start = 0
            for d in blocks:
                end = start + len(d)
                np.matmul(g[start:end, None, :], d, out=out[start:end, None, :])
                start = end
            return torch.from_numpy(out)

    return PairContract.apply(beta_p)


def _evaluate(nets, batch: _Batch, create_graph: bool):
    """(per-configuration energies, forces (Natoms, 3), pressure tensors (configs with stress, 6) in bar)."""
    torch = _torch()
    with torch.enable_grad():
        bn = batch.bn.detach().requires_grad_(True)
        if len(nets) == 1:
            e_atom = nets[0](bn).squeeze(-1)
        else:
            e_atom = torch.zeros(len(bn), dtype=torch.float64)
            for e in batch.n_elements_present:
                m = batch.elements == e
                e_atom = e_atom.index_put((m.nonzero().squeeze(-1),), nets[e](bn[m]).squeeze(-1))
        e_atom = batch.shift + batch.out_scale * e_atom
        (beta_n,) = torch.autograd.grad(e_atom.sum(), bn, create_graph=create_graph)
    beta = beta_n * batch.inv_sig                                        # dE/dB_i
    if batch.lin_beta is not None:
        e_atom = e_atom + batch.lin_energy
        beta = beta + batch.lin_beta
    contrib = _pair_contract(beta[batch.pi], batch.dgrad)                # (P, 3)
    forces = torch.zeros((len(bn), 3), dtype=torch.float64).index_add(0, batch.pj, contrib)
    energy = torch.zeros(batch.ncfg, dtype=torch.float64).index_add(0, batch.atom_cfg, e_atom)
    stress = torch.zeros((len(batch.stress_cfg), 6), dtype=torch.float64)
    if batch.dbde is not None:
        per_atom = torch.einsum("avd,ad->av", batch.dbde, beta[batch.stress_atoms])
        stress = stress.index_add(0, batch.stress_owner, per_atom) * batch.stress_scale[:, None]
    return energy, forces, stress


def _loss_terms(batch: _Batch, energy, forces, stress, weights):
    """Per-configuration loss terms and error sums [Σ|ΔE/N|, Σ(ΔE/N)², Σ|ΔF|, Σ ΔF², n_F, Σ|ΔP|, Σ ΔP², n_P]
    (P in bar, all six components); `weights` = (energy on 0/1, force on 0/1, stress_weight, stress_mask)."""
    torch = _torch()
    energy_on, force_on, stress_weight, stress_mask = weights
    de = (energy - batch.energy) / batch.natoms
    df = forces - batch.forces
    ds = stress - batch.stress
    counts = (3 * batch.natoms)
    f_sq = torch.zeros(batch.ncfg, dtype=torch.float64).index_add(0, batch.atom_cfg, (df * df).sum(1))
    terms = batch.ew * energy_on * de * de + batch.fw * force_on * f_sq / counts
    if stress_weight:
        mask = torch.tensor(stress_mask, dtype=torch.float64)
        s_sq = ((ds * BAR_TO_GPA).pow(2) * mask).sum(1) / mask.sum()
        terms = terms.index_add(0, batch.stress_cfg, batch.vw * stress_weight * s_sq)
    with torch.no_grad():
        stats = torch.stack([de.abs().sum(), (de * de).sum(), df.abs().sum(), (df * df).sum(), counts.sum(),
                             ds.abs().sum(), (ds * ds).sum(), torch.tensor(float(ds.numel()))])
    return terms, stats


class PerAtomNetwork:
    """Estimator: `fit(data, comm)` then `predict(config)`; learned `layers_`, `scale_`, `coef_`.

    The defaults are [PYTORCH]'s (config.NetworkSettings). energy_weight / force_weight: both None (group
    weights) or both numbers (they override the group weights, as in FitSNAP). multi_element_option: 2 = one
    network per element, 1 = one network shared by all elements. `deck_error(message, section, key)` makes the
    errors about checkpoint / save_state_input files (a DeckError naming the deck when the fit pipeline passes
    Settings.error). bootstrap: train on a resample of the training configurations seeded by `seed` (ensembles).
    weight_decay: AdamW's decoupled decay of every parameter (Loshchilov & Hutter 2019), p ← p − lr·weight_decay·p
    per step; 0 trains with Adam as FitSNAP does. linear_baseline: the networks learn what linear SNAP on the same
    descriptors leaves (models.head: fitted to this loss first, held fixed, exported inside the network).
    """

    def __init__(self, hidden=(32, 32), activation="tanh", learning_rate=5e-3, num_epochs=300, batch_size=4,
                 energy_weight=None, force_weight=None, seed=0, patience=50, n_elements=1, checkpoint="",
                 save_freq=10, init_state="", lr_final_fraction=0.01, stress_weight=0.0,
                 stress_mask=(1.0,) * 6, shuffle=True, multi_element_option=2, deck_error=None, bootstrap=False,
                 ema_decay=0.0, weight_decay=0.0, linear_baseline=False):
        if activation not in ACTIVATIONS:
            raise FitsnapError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)} (the only ones "
                               "LAMMPS' mliap model nn implements; any other name would silently run as linear)")
        if (energy_weight is None) != (force_weight is None):
            raise FitsnapError("energy_weight and force_weight are given together (overriding the group weights) "
                               "or not at all (FitSNAP's rule)")
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.learning_rate = learning_rate
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.energy_weight = energy_weight
        self.force_weight = force_weight
        self.stress_weight = stress_weight
        self.stress_mask = tuple(float(m) for m in stress_mask)
        self.seed = seed
        self.patience = patience
        self.n_elements = n_elements
        self.checkpoint = checkpoint
        self.save_freq = save_freq
        self.init_state = init_state
        self.lr_final_fraction = lr_final_fraction
        self.shuffle = shuffle
        self.multi_element_option = multi_element_option
        self.deck_error = deck_error or no_deck
        self.bootstrap = bootstrap
        self.ema_decay = ema_decay
        self.weight_decay = weight_decay
        self.linear_baseline = linear_baseline

    # ------------------------------------------------------------------ helpers
    def _set_head(self, shift, out_scale, linear=None) -> None:
        """The energy head (E0, s, β or None) as a learned attribute (numpy, float) and as the batches' tensors."""
        torch = _torch()
        linear = None if linear is None else np.asarray(linear, dtype=float)
        self.energy_head_ = (np.asarray(shift, dtype=float), float(out_scale), linear)
        self._head = (torch.from_numpy(self.energy_head_[0]), self.energy_head_[1],
                      None if linear is None else torch.from_numpy(linear))

    def fingerprint(self, nd, fit_ids, val_ids, provenance=None) -> dict:
        """What a checkpoint must share with this fit, as {deck key: printable value}."""
        digest = hashlib.sha256(repr((list(map(int, fit_ids)), sorted(map(int, val_ids)))).encode()).hexdigest()
        out = {"layer_sizes": " ".join(map(str, (nd, *self.hidden, 1))), "activation": self.activation,
               "types": str(self.n_elements), "multi_element_option": str(self.multi_element_option),
               "learning_rate": repr(self.learning_rate), "num_epochs": str(self.num_epochs),
               "batch_size": str(self.batch_size), "energy_weight": repr(self.energy_weight),
               "force_weight": repr(self.force_weight), "stress_weight": repr(self.stress_weight),
               "stress_components": repr(self.stress_mask), "seed": str(self.seed), "patience": str(self.patience),
               "shuffle_flag": str(int(self.shuffle)), "energy head": "least-squares E0 + RMS-force output scale",
               "training configurations": f"{len(fit_ids)} ({digest[:12]})"}
        if self.linear_baseline:
            out["linear_baseline"] = "1"
            out["energy head"] = "linear SNAP fitted to the loss + RMS residual force output scale"
        if self.ema_decay:
            out["ema_decay"] = repr(self.ema_decay)
        if self.weight_decay:
            out["weight_decay"] = repr(self.weight_decay)
        out.update(provenance or {})
        return out

    def _save_checkpoint(self, state: dict, comm) -> None:
        if comm.rank == 0 and self.checkpoint:
            torch = _torch()
            path = Path(self.checkpoint)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            torch.save(plain(state), tmp)
            os.replace(tmp, path)  # atomic: a kill leaves the previous checkpoint or the new one
        comm.Barrier()

    def _load_init_state(self, fingerprint: dict):
        """(mu, sig, energy head) from save_state_input, whose architecture and descriptor must be this fit's (a
        state saved before the energy head existed has E0 = 0, s = 1: its networks' output is the energy)."""
        saved = load_trusted(self.init_state, "save_state_input", self.deck_error)
        keys = [k for k in sorted(set(fingerprint) | set(saved["fingerprint"]))
                if k in ARCHITECTURE_KEYS or k in saved.get("descriptor_keys", ())]
        diff = fingerprint_differences(saved["fingerprint"], fingerprint, keys)
        if diff:
            raise self.deck_error(f"{self.init_state} {'; '.join(diff)}", "PYTORCH", "save_state_input")
        try:
            self.nets_.load_state_dict(saved["nets"])
            return (np.asarray(saved["mu"], dtype=float), np.asarray(saved["sig"], dtype=float),
                    saved_head(saved.get("head", (np.zeros(self.n_elements), 1.0))))
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise self.deck_error(f"{self.init_state} does not hold this network's weights ({first_line(exc, 120)})",
                                  "PYTORCH", "save_state_input") from None

    def _resume(self, fingerprint: dict, opt, rng, state: dict, progress):
        """Load the checkpoint into the nets, optimiser, generator and `state` → (mu, sig); refuse another fit's."""
        ck = load_trusted(self.checkpoint, "checkpoint", self.deck_error)
        diff = fingerprint_differences(ck["fingerprint"], fingerprint)
        if diff:
            raise self.deck_error(f"{self.checkpoint} {'; '.join(diff)} (delete it or name another checkpoint file)",
                                  "PYTORCH", "checkpoint")
        try:
            self.nets_.load_state_dict(ck["nets"])
            opt.load_state_dict(ck["optimizer"])
            rng.bit_generator.state = ck["rng"]
            state.update({k: ck[k] for k in state if self.ema_decay or k not in ("steps", "ema")})
            mu, sig = np.asarray(ck["mu"], dtype=float), np.asarray(ck["sig"], dtype=float)
            head = saved_head(ck["head"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise self.deck_error(f"{self.checkpoint} is damaged ({type(exc).__name__}: {first_line(exc, 120)})",
                                  "PYTORCH", "checkpoint") from None
        progress(f"resumed from checkpoint {self.checkpoint} at epoch {state['epoch']}")
        return mu, sig, head

    def _evaluate_set(self, configs, comm, chunk=16):
        """Allreduced [loss Σ, the 8 error sums of `_loss_terms`, ncfg] over `configs` of all ranks."""
        from mpi4py import MPI

        out = np.zeros(10)
        for k in range(0, len(configs), chunk):
            batch = _Batch(configs[k:k + chunk], self._mu_t, self._sig_t, self._head, self._override)
            energy, forces, stress = _evaluate(self.nets_, batch, create_graph=False)
            terms, stats = _loss_terms(batch, energy.detach(), forces.detach(), stress.detach(), self._weights)
            out[0] += float(terms.sum())
            out[1:9] += stats.numpy()
            out[9] += batch.ncfg
        comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
        return out

    @staticmethod
    def _errors(prefix: str, sums: np.ndarray) -> dict:
        """History columns from [loss Σ, 8 error sums, ncfg] (energy eV/atom, force eV/Å, stress bar)."""
        n = sums[9]
        return {f"{prefix}_loss": sums[0] / n, f"{prefix}_energy_mae": sums[1] / n,
                f"{prefix}_energy_rmse": np.sqrt(sums[2] / n), f"{prefix}_force_mae": sums[3] / max(sums[5], 1),
                f"{prefix}_force_rmse": np.sqrt(sums[4] / max(sums[5], 1)),
                f"{prefix}_stress_mae": sums[6] / sums[8] if sums[8] else np.nan,
                f"{prefix}_stress_rmse": np.sqrt(sums[7] / sums[8]) if sums[8] else np.nan}

    # ------------------------------------------------------------------ fit
    def fit(self, data, comm=None, validation=(), progress=None, use_energy=True, use_force=True, use_stress=True,
            provenance=None):
        """Train on this rank's `data` (list of ConfigData, test ones ignored) and every other rank's.

        `validation`: indices (ConfigData.index) held out for early stopping, the same set on every rank.
        `provenance`: {deck key: value} of what else defines the fit (descriptor, data, split), checked on resume.
        """
        from mpi4py import MPI

        torch = _torch()
        comm = comm or world()
        progress = progress or (lambda msg: None)
        self._weights = (1.0 if use_energy else 0.0, 1.0 if use_force else 0.0,
                         self.stress_weight if use_stress else 0.0, self.stress_mask)
        self._override = None if self.energy_weight is None else (self.energy_weight, self.force_weight)
        validation = set(validation)
        fit = [c for c in data if not c.test and c.index not in validation]
        val = [c for c in data if not c.test and c.index in validation]
        nd = comm.allreduce(max((c.b.shape[1] for c in data), default=0), op=MPI.MAX)
        fit_ids = np.array(sorted(i for part in comm.allgather([c.index for c in fit]) for i in part), np.int64)
        n_val = comm.allreduce(len(val))
        if len(fit_ids) == 0:
            raise FitsnapError("no training configurations for the network (all are test or validation)")
        mine = {c.index: c for c in fit}
        train_ids = self._bootstrap(fit_ids) if self.bootstrap else fit_ids

        torch.manual_seed(self.seed)
        self.nets_ = build_module(nd, self.hidden, self.activation,
                                  self.n_elements if self.multi_element_option == 2 else 1)
        self.fingerprint_ = self.fingerprint(nd, train_ids, validation, provenance)
        if self.init_state:
            mu, sig, head = self._load_init_state(self.fingerprint_)
        else:
            shared = self.multi_element_option == 1
            mu, sig = standardisation(fit, nd, self.n_elements, shared, comm)
            head = (linear_head(fit, nd, self.n_elements, shared, mu, sig, self._override, self._weights, comm)
                    if self.linear_baseline else reference_energy_head(fit, self.n_elements, shared, comm))
            with torch.no_grad():
                for net in self.nets_:
                    net[-1].bias.zero_()
        params = list(self.nets_.parameters())
        opt = (torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay) if self.weight_decay
               else torch.optim.Adam(params, lr=self.learning_rate))
        rng = np.random.Generator(np.random.PCG64(self.seed))
        state = dict(epoch=0, best_loss=np.inf, best_epoch=-1, best_nets=None, bad_epochs=0, history=[],
                     stopped=False, steps=0, ema=[p.detach().clone() for p in params] if self.ema_decay else None)
        if self.checkpoint and Path(self.checkpoint).exists():
            mu, sig, head = self._resume(self.fingerprint_, opt, rng, state, progress)
        self.scale_ = (mu, sig)
        self._set_head(*head)
        self._mu_t, self._sig_t = torch.from_numpy(mu), torch.from_numpy(sig)

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        t_train = time.perf_counter()
        with torch_threads():
            while state["epoch"] < self.num_epochs and not state["stopped"]:
                self._epoch(state, train_ids, mine, val, n_val, opt, rng, comm, progress)
                if state["epoch"] % self.save_freq == 0 or state["stopped"] or state["epoch"] == self.num_epochs:
                    self._save_checkpoint(dict(state, fingerprint=self.fingerprint_, nets=self.nets_.state_dict(),
                                               optimizer=opt.state_dict(), rng=rng.bit_generator.state, mu=mu,
                                               sig=sig, head=self.energy_head_),
                                          comm)
        self.train_seconds_ = time.perf_counter() - t_train
        self.history_ = state["history"]
        self.best_epoch_ = state["best_epoch"]
        if state["best_nets"] is not None:
            self.nets_.load_state_dict(state["best_nets"])
        # identical on every rank already; broadcast rank 0's so round-off can never split the ranks
        sd = comm.bcast({k: v.clone() for k, v in self.nets_.state_dict().items()} if comm.rank == 0 else None)
        self.nets_.load_state_dict(sd)
        return self

    def _bootstrap(self, fit_ids: np.ndarray) -> np.ndarray:
        """A seeded resample (with replacement, same size) of the training configurations, sorted; the
        standardisation and energy offsets still come from every training configuration."""
        rng = np.random.Generator(np.random.PCG64(self.seed + 104729))
        return np.sort(fit_ids[rng.integers(0, len(fit_ids), len(fit_ids))])

    def _epoch(self, state, fit_ids, mine, val, n_val, opt, rng, comm, progress):
        """One pass over the training configurations (Adam step per batch, gradients summed over ranks)."""
        from mpi4py import MPI

        torch = _torch()
        params = list(self.nets_.parameters())
        nflat = sum(p.numel() for p in params)
        n_fit = len(fit_ids)
        epoch = state["epoch"]
        t0 = time.perf_counter()
        frac = epoch / max(1, self.num_epochs - 1)
        lr = self.learning_rate * (self.lr_final_fraction
                                   + (1 - self.lr_final_fraction) * 0.5 * (1 + np.cos(np.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        order = fit_ids[rng.permutation(n_fit)] if self.shuffle else fit_ids
        train = np.zeros(10)
        for start in range(0, n_fit, self.batch_size):
            members = order[start:start + self.batch_size]
            local = [mine[i] for i in members if i in mine]
            opt.zero_grad(set_to_none=False)
            buf = np.zeros(nflat + 10)
            if local:
                batch = _Batch(local, self._mu_t, self._sig_t, self._head, self._override)
                energy, forces, stress = _evaluate(self.nets_, batch, create_graph=True)
                terms, stats = _loss_terms(batch, energy, forces, stress, self._weights)
                loss = terms.sum() / len(members)
                loss.backward()
                buf[:nflat] = torch.cat([p.grad.reshape(-1) for p in params]).numpy()
                buf[nflat] = float(terms.sum().detach())
                buf[nflat + 1:nflat + 9] = stats.numpy()
                buf[nflat + 9] = len(local)
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            flat = torch.from_numpy(buf[:nflat])
            k = 0
            for p in params:
                p.grad.copy_(flat[k:k + p.numel()].view_as(p))
                k += p.numel()
            opt.step()
            self._update_average(state, params)
            train += buf[nflat:]
        row = dict(epoch=epoch + 1, lr=lr, **self._errors("train", train))
        with self._averaged(state, params):  # validated and kept: the averaged weights
            if n_val:
                row.update(self._errors("val", self._evaluate_set(val, comm)))
                score = row["val_loss"]
            else:
                row.update({k.replace("train_", "val_"): np.nan for k in list(row) if k.startswith("train_")})
                score = row["train_loss"]
            if score < state["best_loss"]:
                state.update(best_loss=float(score), best_epoch=epoch + 1,
                             best_nets=copy.deepcopy(self.nets_.state_dict()), bad_epochs=0)
            else:
                state["bad_epochs"] += 1
        row = {k: (float(v) if isinstance(v, np.generic) else v) for k, v in row.items()}
        row["seconds"] = time.perf_counter() - t0
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if n_val and self.patience and state["bad_epochs"] >= self.patience:
            state["stopped"] = True
        progress(f"epoch {epoch + 1}/{self.num_epochs} lr {lr:.2e} loss train {row['train_loss']:.4g} "
                 f"val {row['val_loss']:.4g} | E MAE train {row['train_energy_mae']:.4g} val "
                 f"{row['val_energy_mae']:.4g} eV/atom | F MAE train {row['train_force_mae']:.4g} val "
                 f"{row['val_force_mae']:.4g} eV/Å"
                 + ("" if np.isnan(row["train_stress_mae"]) else
                    f" | P MAE train {row['train_stress_mae']:.4g} val {row['val_stress_mae']:.4g} bar")
                 + f" | {row['seconds']:.2f} s"
                 + (f" | early stop (best epoch {state['best_epoch']})" if state["stopped"] else ""))

    def _update_average(self, state, params) -> None:
        """One step of the weights' exponential moving average (decay min(ema_decay, (1 + n)/(10 + n)) at step n,
        as MACE and TensorFlow warm it up), when ema_decay is set."""
        if not self.ema_decay:
            return
        torch = _torch()
        n = state["steps"]
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            for avg, p in zip(state["ema"], params):
                avg.mul_(decay).add_(p.detach(), alpha=1 - decay)
        state["steps"] = n + 1

    @contextlib.contextmanager
    def _averaged(self, state, params):
        """The averaged weights in the networks for the duration (validation, keeping the best epoch); the
        trained weights back afterwards. Nothing changes without ema_decay."""
        if not self.ema_decay:
            yield
            return
        torch = _torch()
        trained = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, avg in zip(params, state["ema"]):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, t in zip(params, trained):
                    p.copy_(t)

    # ------------------------------------------------------------------ use
    def predict(self, config):
        """(energy, forces, pressure) of one ConfigData: total energy (eV), forces (N, 3) and pressure tensor
        (6,: xx yy zz yz xz xy, bar; None without strain derivatives), LAMMPS frame; the reference excluded."""
        return self.predict_many([config])[0]

    def predict_many(self, configs, chunk=16):
        """`predict` of each configuration, on the training's thread count (the same round-off in any process)."""
        out = []
        with torch_threads():
            for k in range(0, len(configs), chunk):
                part = configs[k:k + chunk]
                batch = _Batch(part, self._mu_t, self._sig_t, self._head)  # weights do not enter predictions
                energy, forces, stress = _evaluate(self.nets_, batch, create_graph=False)
                energy, forces, stress = energy.detach().numpy(), forces.detach().numpy(), stress.detach().numpy()
                stress_of = dict(zip(batch.stress_cfg.tolist(), stress))
                start = 0
                for j, (c, e) in enumerate(zip(part, energy)):
                    out.append((float(e), forces[start:start + c.natoms].copy(), stress_of.get(j)))
                    start += c.natoms
        return out

    @property
    def layers_(self):
        """Per element: [(W (out, in), b (out,)), ...] as numpy arrays, the energy head folded into the last layer
        (W·s, b·s + E0_e) and a linear baseline carried by extra units (models.head.fold_linear): what LAMMPS
        evaluates."""
        torch = _torch()
        nets = list(self.nets_) * (self.n_elements if len(self.nets_) == 1 else 1)  # a shared network serves all
        shift, out_scale, linear = self.energy_head_
        mu, sig = self.scale_
        out = []
        for e, net in enumerate(nets):
            lin = [m for m in net if isinstance(m, torch.nn.Linear)]
            layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in lin]
            w, b = layers[-1]
            layers[-1] = (w * out_scale, b * out_scale + shift[e])
            if linear is not None:  # β·B = (β⊙σ)·B̂ + β·μ
                layers = fold_linear(layers, linear[e] * sig[e], float(linear[e] @ mu[e]), self.activation)
            out.append(layers)
        return out

    @property
    def coef_(self) -> np.ndarray:
        """All parameters, per element in LAMMPS' order (per output node: bias, weights)."""
        return np.concatenate([np.hstack([b[:, None], w]).ravel() for layers in self.layers_ for w, b in layers])

    def state(self, descriptor_keys=()) -> dict:
        """What `save_state_output` stores and `init_state` (save_state_input) reads: tensors and plain data;
        `descriptor_keys`: the fingerprint keys a later save_state_input must match besides the architecture."""
        return plain(dict(nets=self.nets_.state_dict(), mu=self.scale_[0], sig=self.scale_[1], head=self.energy_head_,
                          hidden=self.hidden, activation=self.activation, n_elements=self.n_elements,
                          history=self.history_, fingerprint=self.fingerprint_, descriptor_keys=list(descriptor_keys)))
