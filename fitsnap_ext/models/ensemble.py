"""Deep ensembles of per-atom networks (models.network.PerAtomNetwork): K members that differ in their seed
(seed, seed + 1, ...) and, with bootstrap, in a seeded resample of the training configurations.

Members are independent, so R ranks train them side by side: G = min(K, R) groups of ranks (world rank r is in
group r mod G, `comm.Split`); member k is trained by group k mod G, a group's members one after another, each
data-parallel over the group's ranks. Every group needs every configuration: `regroup` sends each rank's
ConfigData to the ranks that need them (one alltoall), balanced by atoms inside each group, each rank's list
sorted by configuration index. Memory: a rank then holds 1/(R/G) of all descriptor data, G times its share in
plain data-parallel training (K× for K ≤ R; all of it on every rank for K ≥ R), plus the pickled copies during
the exchange. A member's training depends on its seed, the data and its group's rank count only, so one rank per
member gives the same weights, bit for bit, serially or with the members on separate ranks.

After training every rank holds every member (sent from each group's first rank); `NetworkEnsemble` predicts
their mean (what the exported ensemble network computes) and their spread.
"""
from __future__ import annotations

import numpy as np

from ..export.ensemble import Member, combine_members
from ..parallel import split_by_atoms


def regroup(data, comm, ngroups: int):
    """(this rank's group communicator, this rank's configurations for its group's training, by index)."""
    group = comm.Split(comm.rank % ngroups, comm.rank)
    owners = comm.allgather([(c.index, c.natoms) for c in data])
    table = sorted((i, n, r) for r, part in enumerate(owners) for i, n in part)
    mine = {c.index: c for c in data}
    send = [[] for _ in range(comm.size)]
    for g in range(ngroups):
        ranks = list(range(g, comm.size, ngroups))
        for rank, share in zip(ranks, split_by_atoms([n for _, n, _ in table], len(ranks))):
            send[rank] += [mine[table[k][0]] for k in share if table[k][2] == comm.rank]
    own, send[comm.rank] = send[comm.rank], []  # kept as they are, not pickled
    received = comm.alltoall(send) if comm.size > 1 else []
    return group, sorted(own + [c for part in received for c in part], key=lambda c: c.index)


def train_members(make_member, n_members: int, data, comm, progress, fit_kwargs: dict) -> dict:
    """{k: trained member} for the members this rank's group trains; `make_member(k)` gives member k unfitted,
    `fit_kwargs` go to its `fit` (validation, use_energy, ...). Collective over `comm`."""
    ngroups = min(n_members, comm.size)
    group, local = regroup(data, comm, ngroups)
    trained = {}
    try:
        for k in range(comm.rank % ngroups, n_members, ngroups):
            say = (lambda message, k=k: progress(f"member {k}: {message}"))
            trained[k] = make_member(k).fit(local, group, progress=say, **fit_kwargs)
    finally:
        group.Free()
    return trained


def share_members(trained: dict, n_members: int, comm, make_member) -> list:
    """Every member on every rank: member k is sent from its group's first rank (world rank k mod G)."""
    ngroups = min(n_members, comm.size)
    members = []
    for k in range(n_members):
        root = k % ngroups
        snap = comm.bcast(snapshot(trained[k]) if comm.rank == root else None, root=root)
        members.append(trained[k] if k in trained else restore(make_member(k), snap))
    return members


def snapshot(member) -> dict:
    """A trained PerAtomNetwork as plain data, for `restore` on another rank."""
    return dict(state=member.state(), best_epoch=member.best_epoch_, train_seconds=member.train_seconds_)


def restore(member, snap: dict):
    """`member` (unfitted, the same settings) set to a `snapshot` of the trained one."""
    import torch

    from .network import build_module

    state = snap["state"]
    mu, sig = np.asarray(state["mu"], dtype=float), np.asarray(state["sig"], dtype=float)
    n_nets = member.n_elements if member.multi_element_option == 2 else 1
    member.nets_ = build_module(mu.shape[1], member.hidden, member.activation, n_nets)
    member.nets_.load_state_dict(state["nets"])
    member.scale_ = (mu, sig)
    member._mu_t, member._sig_t = torch.from_numpy(mu), torch.from_numpy(sig)
    member._set_head(*state["head"])
    member.history_, member.fingerprint_ = state["history"], state["fingerprint"]
    member.best_epoch_, member.train_seconds_ = snap["best_epoch"], snap["train_seconds"]
    return member


class NetworkEnsemble:
    """K trained PerAtomNetworks: `predict_many` gives their mean, `member_predictions` each one's; `layers_`,
    `scale_` and `coef_` are those of the one network equal to the mean (export.ensemble.combine_members)."""

    def __init__(self, members: list):
        self.members = members

    def member_predictions(self, configs) -> list[tuple]:
        """Per configuration: (energies (K,), forces (K, N, 3), pressure tensors (K, 6) or None)."""
        per = [m.predict_many(configs) for m in self.members]
        out = []
        for rows in zip(*per):
            stress = None if rows[0][2] is None else np.array([r[2] for r in rows])
            out.append((np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), stress))
        return out

    def predict_many(self, configs) -> list[tuple]:
        """(energy, forces, pressure or None) of the members' mean, per configuration (as PerAtomNetwork's)."""
        return [(float(e.mean()), f.mean(0), None if s is None else s.mean(0))
                for e, f, s in self.member_predictions(configs)]

    def predict(self, config):
        return self.predict_many([config])[0]

    def combined(self) -> Member:
        return combine_members([Member(m.layers_, m.scale_[0], m.scale_[1]) for m in self.members])

    @property
    def layers_(self):
        return self.combined().layers

    @property
    def scale_(self):
        combined = self.combined()
        return combined.scale0, combined.scale1

    @property
    def coef_(self) -> np.ndarray:
        return np.concatenate([np.hstack([b[:, None], w]).ravel() for layers in self.layers_ for w, b in layers])

    @property
    def history_(self) -> list[dict]:
        """Every member's loss history, each row with its `member` number."""
        return [dict(member=k, **row) for k, m in enumerate(self.members) for row in m.history_]

    @property
    def best_epoch_(self) -> list[int]:
        return [m.best_epoch_ for m in self.members]

    def state(self, descriptor_keys=()) -> dict:
        """The members' states (PerAtomNetwork.state) under `members`, member 0's fingerprint."""
        states = [m.state(descriptor_keys) for m in self.members]
        return dict(members=states, fingerprint=states[0]["fingerprint"], n_members=len(states))
