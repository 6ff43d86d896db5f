"""The active sampler's criterion is the predicted force σ: `force_sigma` over a fit's deployable `.mod`s (an
ensemble's members, an ANL fit's sampled coefficient sets) equals `predict(..., return_std=True)`'s per-atom σ."""
import copy

import numpy as np
import pytest

import fitsnap_ext as fx
from conftest import REPO
from fitsnap_ext.generate.samplers import force_disagreement, force_sigma

DEMO = REPO / "input_files" / "in.demo"


def demo_frames(name):
    return fx.read_frames(REPO / "input_files" / "demo" / name, stress_unit="bar")


def test_member_spread_is_the_ensembles_sigma(tmp_path):
    """3 networks' `.member<k>.mod` in LAMMPS: per-atom σ = predict's σ to 1e-8 eV/Å on 64-atom hot frames;
    the criterion is its max over atoms."""
    train = demo_frames("strain_rattle.xyz")[:20]
    test = demo_frames("md_1200K.xyz")[:2] + demo_frames("md_2500K.xyz")[:1]
    model = fx.NetworkSNAP(fx.load_deck(DEMO), hidden=(8,), num_epochs=4, batch_size=8, ensemble_size=3,
                           seed=3, validation_fraction=0.0, patience=0).fit(train)
    model.export(tmp_path, "Si_nn")
    mods = [str(tmp_path / f"Si_nn.member{k}.mod") for k in range(3)]
    *_, f_std = model.predict(test, return_std=True)
    got = force_sigma(test, mods, ["Si"])
    for want, have in zip(f_std, got):
        assert have.shape == (64,)
        assert np.abs(have - want).max() < 1e-8
        assert want.min() > 1e-4  # a real spread, not zeros
    assert force_disagreement(test, mods, ["Si"]) == pytest.approx([w.max() for w in f_std], abs=1e-8)


def test_sample_spread_is_the_posterior_sigma(tmp_path):
    """ANL, 8 sampled coefficient sets: force_sigma over `.sample<k>.mod` equals predict's σ with the samples'
    own covariance (ddof 1) to 1e-8 eV/Å — the Monte Carlo estimate of the analytic σ sqrt(aᵀΣa); 48 sets
    come within 25 % of the analytic σ (median ratio over atoms)."""
    train = demo_frames("volume.xyz") + demo_frames("strain_rattle.xyz")[:20]
    test = demo_frames("md_2500K.xyz")[:2]
    for nsam, check in ((8, "exact"), (48, "analytic")):
        model = fx.LinearSNAP(fx.load_deck(DEMO), solver="ANL", nsam=nsam).fit(train)
        out = tmp_path / str(nsam)
        model.export(out, "Si_pot")
        got = force_sigma(test, [str(out / f"Si_pot.sample{k}.mod") for k in range(nsam)], ["Si"])
        if check == "exact":
            empirical = copy.deepcopy(model)
            deviations = model.samples_ - model.samples_.mean(axis=0)   # the samples' own covariance (ddof 1)
            empirical.covariance_factor_ = deviations.T / np.sqrt(nsam - 1)
            *_, want = empirical.predict(test, return_std=True)
            for w, h in zip(want, got):
                assert np.abs(h - w).max() < 1e-8
                assert w.min() > 1e-4
        else:
            *_, analytic = model.predict(test, return_std=True)
            ratio = np.median(np.concatenate(got) / np.concatenate(analytic))
            assert 0.75 < ratio < 1.25, ratio
