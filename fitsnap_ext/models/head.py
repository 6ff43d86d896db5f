"""What a network's training starts from and holds fixed: its input standardisation B̂ = (B − μ_e)/σ_e and its
energy head, E_i = E0_e + β_e·B_i + s·NN_e(B̂_i).

`reference_energy_head`: per-element reference energies E0_e only (β = 0; MACE's E0s, pacemaker's reference
energies). `linear_head` (Δ-learning: linear SNAP under the network) finds the linear part that minimises the
network's own loss over the training configurations (energies, forces and stresses with the same weights), so
that training starts from the best linear model of those descriptors and the network learns only what it leaves;
AdamW's weight decay then pulls the network towards linear SNAP instead of towards a constant.

`fold_linear` writes the linear part into the network's own layers, so that LAMMPS' stock `mliap model nn` (one
activation per layer, no skip connections) evaluates it: one extra unit per hidden layer carries z = w·B̂ to the
output — exactly through relu (as the pair relu(z), relu(−z)), and through tanh or sigmoid in their linear range
(inputs scaled to |x| ≲ 3e-5 / 1e-4: LAMMPS then equals torch to ~1e-11 eV/atom and eV/Å).
"""
from __future__ import annotations

import numpy as np

from ..parallel import tsqr_r
from ..units import BAR_TO_GPA, EV_PER_A3_TO_BAR

RCOND = 1e-12          # singular values below RCOND × the largest are cut (standardised columns)
# the carried unit's largest input |x|: its cubic term (x²/3 for tanh, x²/12 for sigmoid) against LAMMPS' round-off,
# ~1e-16/x relative for both (measured on the demo network, LAMMPS vs torch, max over 8 test cells: tanh at 1e-3 /
# 1e-4 / 3e-5 / 1e-5: |ΔE| 4e-11 / 3e-12 / 1e-11 / 6e-11 eV/atom, |ΔF| 9e-9 / 9e-11 / 8e-12 / 9e-13 eV/Å;
# sigmoid at 1e-3 / 1e-4 / 1e-5: 9e-12 / 2e-11 / 2e-10 eV/atom, 2e-9 / 2e-11 / 2e-13 eV/Å)
TANH_RANGE = 3e-5
SIGMOID_RANGE = 1e-4
BN_BOUND = 3.0         # |B̂| bound used to scale the carried unit (standardised descriptors)


def standardisation(fit, nd: int, n_elements: int, shared: bool, comm):
    """(μ, σ) per element: mean and standard deviation of B over the training atoms of all ranks (one shared row,
    repeated per element, with a shared network; a constant component gets σ = 1)."""
    from mpi4py import MPI

    sums = np.zeros((n_elements, 2 * nd + 1))
    for c in fit:
        for e in range(n_elements):
            b = c.b[c.elements == e]
            sums[e, :nd] += b.sum(0)
            sums[e, nd:2 * nd] += (b * b).sum(0)
            sums[e, -1] += len(b)
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    if shared:
        sums = np.repeat(sums.sum(0, keepdims=True), n_elements, axis=0)
    n = np.maximum(sums[:, -1:], 1.0)
    mu = sums[:, :nd] / n
    var = np.maximum(sums[:, nd:2 * nd] / n - mu * mu, 0.0)
    sig = np.sqrt(var)
    sig[sig <= 1e-10 * np.maximum(1.0, np.abs(mu))] = 1.0
    return mu, sig


def saved_head(head):
    """(E0, s, β or None) from a checkpoint or saved state; those saved before the linear baseline hold (E0, s)."""
    shift, out_scale, *rest = head
    linear = rest[0] if rest and rest[0] is not None else None
    return (np.asarray(shift, dtype=float), float(out_scale),
            None if linear is None else np.asarray(linear, dtype=float))


def _config_rows(c, mu, sig, groups: int, weights, loss) -> tuple[np.ndarray, np.ndarray]:
    """One configuration's weighted rows [A | y] in standardised columns (per group: 1, B̂), and its force rows'
    unweighted design (for the residual)."""
    energy_on, force_on, stress_weight, stress_mask = loss
    ew, fw, vw = (c.eweight, c.fweight, c.vweight) if weights is None else (weights[0], weights[1], 1.0)
    nd = c.b.shape[1]
    g = c.elements if groups > 1 else np.zeros(c.natoms, dtype=np.int64)
    inv_sig = 1.0 / sig[c.elements]
    bn = (c.b - mu[c.elements]) * inv_sig
    energy = np.zeros((groups, nd + 1))
    np.add.at(energy[:, 0], g, 1.0)
    np.add.at(energy[:, 1:], g, bn)
    force = np.zeros((c.natoms, 3, groups, nd + 1))
    owner = c.pair_i.astype(np.int64)
    np.add.at(force[:, :, :, 1:], (c.pair_j.astype(np.int64), slice(None), g[owner]),
              c.dgrad * inv_sig[owner][:, None, :])
    force = force.reshape(3 * c.natoms, -1)
    blocks = [np.sqrt(ew * energy_on) / c.natoms * np.append(energy.ravel(), c.energy)[None, :],
              np.sqrt(fw * force_on / (3 * c.natoms)) * np.hstack([force, c.forces.reshape(-1, 1)])]
    if stress_weight and c.dbde is not None:
        mask = np.asarray(stress_mask, dtype=float)
        stress = np.zeros((6, groups, nd + 1))
        for v in range(6):
            np.add.at(stress[v, :, 1:], g, c.dbde[:, v, :] * inv_sig)
        stress = stress.reshape(6, -1) * (-EV_PER_A3_TO_BAR / c.volume)
        w = np.sqrt(vw * stress_weight * mask / mask.sum()) * BAR_TO_GPA
        blocks.append(w[:, None] * np.hstack([stress, np.asarray(c.stress, dtype=float).reshape(6, 1)]))
    return np.vstack(blocks), force


def _output_scale(sum_sq: float, count: int) -> float:
    """The networks' output unit: the RMS force component (eV/Å) left to them (MACE's scaling), 1 if none is."""
    rms = float(np.sqrt(sum_sq / max(count, 1)))
    return rms if rms > 1e-8 else 1.0


def reference_energy_head(fit, n_elements: int, shared: bool, comm):
    """(E0, s, None): per-element reference energies (eV/atom; one value with a shared network) fitted to the
    training energies by least squares and held fixed, and the RMS training force component, the unit of the
    networks' output. The networks learn only what the reference energies leave, on a scale of order one."""
    rows = [(np.bincount(c.elements, minlength=n_elements).astype(float), c.energy,
             float((c.forces ** 2).sum()), 3 * c.natoms) for c in fit]
    rows = [r for part in comm.allgather(rows) for r in part]
    a = np.array([r[0] for r in rows])
    if shared:
        a = a.sum(1, keepdims=True)
    e0 = np.linalg.lstsq(a, np.array([r[1] for r in rows]), rcond=None)[0]
    shift = np.broadcast_to(e0, (n_elements,)).copy()
    return shift, _output_scale(sum(r[2] for r in rows), sum(r[3] for r in rows)), None


def linear_head(fit, nd: int, n_elements: int, shared: bool, mu, sig, weights, loss, comm):
    """(E0 (n_elements,), s, β (n_elements, nd) on raw B) of the linear model that minimises the network loss over
    `fit` (this rank's training ConfigData; every rank's rows enter through their R factors), and the RMS training
    force component it leaves, the networks' output unit. `weights`: (energy, force) overriding the group
    weights, or None; `loss`: the network's (energy on, force on, stress_weight, stress_mask)."""
    groups = 1 if shared else n_elements
    ncols = groups * (nd + 1)
    r = tsqr_r((_config_rows(c, mu, sig, groups, weights, loss)[0] for c in fit), ncols + 1, comm)
    coef = np.linalg.lstsq(r[:, :-1], r[:, -1], rcond=RCOND)[0].reshape(groups, nd + 1)
    sums = np.zeros(2)
    for c in fit:
        force = _config_rows(c, mu, sig, groups, None, (0.0, 0.0, 0.0, (1.0,) * 6))[1]
        residual = c.forces.ravel() - force @ coef.ravel()
        sums += (residual @ residual, residual.size)
    sums = comm.allreduce(sums)
    coef = np.repeat(coef, n_elements, axis=0) if shared else coef
    beta = coef[:, 1:] / sig
    return coef[:, 0] - (beta * mu).sum(1), _output_scale(sums[0], int(sums[1])), beta


def fold_linear(layers: list, w: np.ndarray, c: float, activation: str) -> list:
    """One element's layers [(W, b), ...] (last: one output) plus the linear term w·x + c of their input x, as
    layers LAMMPS evaluates: one carried unit per hidden layer (two for relu)."""
    w = np.asarray(w, dtype=float)
    if len(layers) == 1:  # no hidden layer: the network is linear already
        (wl, bl), = layers
        return [(wl + w[None, :], bl + c)]
    scale = BN_BOUND * max(np.abs(w).sum(), 1e-300)
    if activation == "relu":
        eps, carry_in, carry, carry_bias, carry_out, out_bias = 1.0, np.vstack([w, -w]), \
            np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2), np.array([1.0, -1.0]), 0.0
    elif activation == "tanh":
        eps = TANH_RANGE / scale
        carry_in, carry, carry_bias, carry_out, out_bias = eps * w[None, :], np.ones((1, 1)), np.zeros(1), \
            np.array([1.0 / eps]), 0.0
    elif activation == "sigmoid":  # σ(x) = 1/2 + x/4 − x³/48: 4σ − 2 carries x
        eps = SIGMOID_RANGE / scale
        carry_in, carry, carry_bias, carry_out, out_bias = eps * w[None, :], np.full((1, 1), 4.0), \
            np.array([-2.0]), np.array([4.0 / eps]), -2.0 / eps
    else:
        raise ValueError(f"activation {activation!r}: relu, tanh or sigmoid")
    k = len(carry_out)
    out = []
    for depth, (wl, bl) in enumerate(layers):
        if depth == 0:
            out.append((np.vstack([wl, carry_in]), np.concatenate([bl, np.zeros(k)])))
        elif depth < len(layers) - 1:
            block = np.zeros((wl.shape[0] + k, wl.shape[1] + k))
            block[:wl.shape[0], :wl.shape[1]] = wl
            block[wl.shape[0]:, wl.shape[1]:] = carry
            out.append((block, np.concatenate([bl, carry_bias])))
        else:
            out.append((np.hstack([wl, carry_out[None, :]]), bl + c + out_bias))
    return out
