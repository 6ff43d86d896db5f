"""Network fits a user can trust: no code runs from a torch file, checkpoint/state problems are one-line deck
errors, a checkpoint of another fit is refused by key, big frames in bounded memory, FitSNAP's [PYTORCH] weights."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from conftest import REPO

DEMO = REPO / "input_files" / "in.demo"
NN_KEYS = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1")]
TINY = NN_KEYS + [("GROUPS", g, "0.1 0.05 100 1 1e-4") for g in
                  ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")] + [
    ("PYTORCH", "layer_sizes", "num_desc 4 1"), ("PYTORCH", "num_epochs", "2"), ("PYTORCH", "batch_size", "4"),
    ("OUTFILE", "potential", "nn"), ("OUTFILE", "metrics", "nn_metrics.md")]


class _Marker:
    """Unpickling this would create the file `path` (what a hostile checkpoint could do with os.system)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _network_fit(keys, work, deck=DEMO):
    """run_network_fit of `deck` + `keys` in folder `work` (created); the FitResult."""
    import torch

    from fitsnap_ext.config import load_settings
    from fitsnap_ext.pipeline import Progress
    from fitsnap_ext.pipeline import run_fit as run_network_fit
    from fitsnap_ext.parallel import world

    torch.set_num_threads(1)
    settings = load_settings(deck, keys)
    work.mkdir(exist_ok=True)
    old = os.getcwd()
    os.chdir(work)
    try:
        comm = world()
        return run_network_fit(settings, comm, overwrite=True, progress=Progress(comm, stream=io.StringIO()))
    finally:
        os.chdir(old)


def _one_line_deck_error(excinfo, key):
    from fitsnap_ext.errors import DeckError

    msg = str(excinfo.value)
    assert isinstance(excinfo.value, DeckError)
    assert "\n" not in msg and f"[PYTORCH] {key}" in msg and str(DEMO) in msg
    return msg


@pytest.mark.parametrize("key", ["checkpoint", "save_state_input"])
def test_crafted_torch_file_is_refused_and_runs_nothing(tmp_path, key):
    """A .pt whose unpickling would create a file: refused with one line naming the key; the file never appears."""
    import torch

    from fitsnap_ext.errors import FitsnapError

    marker = tmp_path / "pwned"
    torch.save({"fingerprint": {}, "nets": _Marker(marker)}, tmp_path / "evil.pt")
    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(TINY + [("PYTORCH", key, str(tmp_path / "evil.pt"))], tmp_path / "work")
    msg = _one_line_deck_error(excinfo, key)
    assert "refused" in msg and "could run code" in msg
    assert not marker.exists()
    assert not (tmp_path / "work" / "nn.mod").exists()


def test_corrupt_checkpoint_and_missing_state(tmp_path):
    from fitsnap_ext.errors import FitsnapError
    from fitsnap_ext.models.checkpoint import load_trusted

    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(300))
    with pytest.raises(FitsnapError) as excinfo:
        load_trusted(bad, "checkpoint")
    assert "[PYTORCH] checkpoint" in str(excinfo.value) and "not a readable torch file" in str(excinfo.value)
    # missing save_state_input: refused before any descriptor is computed, no output written
    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(TINY + [("PYTORCH", "save_state_input", "nowhere.pt")], tmp_path / "w1")
    assert "nowhere.pt: file not found" in _one_line_deck_error(excinfo, "save_state_input")
    assert list((tmp_path / "w1").iterdir()) == []


def test_checkpoint_below_a_file_refused_before_training(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "afile").write_text("x")
    from fitsnap_ext.errors import FitsnapError

    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(TINY + [("PYTORCH", "checkpoint", "afile/ck.pt")], tmp_path / "w")
    assert "is not a folder" in _one_line_deck_error(excinfo, "checkpoint")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["afile"]


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A 2-epoch fit with a checkpoint and a saved state."""
    work = tmp_path_factory.mktemp("ck")
    keys = TINY + [("PYTORCH", "checkpoint", "ck.pt"), ("PYTORCH", "save_state_output", "state.pt")]
    result = _network_fit(keys, work)
    return dict(work=work, keys=keys, result=result)


def test_checkpoint_holds_plain_data_and_fingerprint(checkpointed):
    import torch

    ck = torch.load(checkpointed["work"] / "ck.pt", weights_only=True)
    fp = ck["fingerprint"]
    assert fp["rcutfac"] == "4.7" and fp["layer_sizes"] == "30 4 1" and len(fp["data"]) == 16
    assert ck["epoch"] == 2 and isinstance(ck["mu"], torch.Tensor)


@pytest.mark.parametrize("change, phrase", [
    (("BISPECTRUM", "rcutfac", "4.0"), "was made with rcutfac 4.7, this deck has 4.0"),
    (("ESHIFT", "Si", "-0.5"), "was made with ESHIFT [], this deck has [('Si', -0.5)]"),
    (("PYTORCH", "learning_rate", "0.001"), "was made with learning_rate 0.005, this deck has 0.001"),
    (("GROUPS", "volume", "0.1 0.05 50 1 1e-4"), "was made with data "),
])
def test_checkpoint_of_another_fit_refused_by_key(checkpointed, tmp_path, change, phrase):
    """Changing a descriptor setting, ESHIFT, a hyper-parameter or the data/weights: resuming is refused."""
    import shutil

    from fitsnap_ext.errors import FitsnapError

    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(checkpointed["work"] / "ck.pt", work / "ck.pt")
    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(checkpointed["keys"] + [change], work)
    assert phrase in _one_line_deck_error(excinfo, "checkpoint")
    assert not (work / "nn.mod").exists()


def test_same_deck_resumes_to_the_same_weights(checkpointed, tmp_path):
    """The finished checkpoint resumes (nothing left to train) and exports the same network."""
    import shutil

    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(checkpointed["work"] / "ck.pt", work / "ck.pt")
    again = _network_fit(checkpointed["keys"], work)
    assert np.array_equal(again.coef, checkpointed["result"].coef)


def test_state_of_another_architecture_refused(checkpointed, tmp_path):
    from fitsnap_ext.errors import FitsnapError

    state = str(checkpointed["work"] / "state.pt")
    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(TINY + [("PYTORCH", "layer_sizes", "num_desc 6 1"), ("PYTORCH", "save_state_input", state)],
                     tmp_path / "w")
    assert "was made with layer_sizes 30 4 1, this deck has 30 6 1" in _one_line_deck_error(excinfo,
                                                                                            "save_state_input")
    # weights trained without a linear baseline mean something else on top of one (and the other way round)
    with pytest.raises(FitsnapError) as excinfo:
        _network_fit(TINY + [("PYTORCH", "linear_baseline", "1"), ("PYTORCH", "save_state_input", state)],
                     tmp_path / "w1")
    assert "was made with linear_baseline (none), this deck has 1" in _one_line_deck_error(excinfo,
                                                                                          "save_state_input")
    # other hyper-parameters may differ for initial weights: more epochs start from the saved network
    result = _network_fit(TINY + [("PYTORCH", "num_epochs", "3"), ("PYTORCH", "save_state_input", state)],
                          tmp_path / "w2")
    assert len(result.model.history_) == 3


def test_fitsnap_weight_semantics():
    """Both global weights override the group weights; neither: the group weights as they are; one alone: error."""
    import torch

    from fitsnap_ext.config import load_settings
    from fitsnap_ext.errors import DeckError, FitsnapError
    from fitsnap_ext.models.network import PerAtomNetwork, _Batch, _loss_terms
    from fitsnap_ext.peratom import ConfigData

    rng = np.random.default_rng(1)
    configs = [ConfigData(k, "g", False, ew, fw, np.zeros(n, np.int64), rng.normal(size=(n, 3)),
                          np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3, 3)), -4.0 * n,
                          rng.normal(size=(n, 3))) for k, (n, ew, fw) in enumerate([(2, 100.0, 1.0), (3, 7.0, 2.0)])]
    mu, sig = torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    energy = torch.tensor([-7.0, -13.5], dtype=torch.float64)
    forces = torch.zeros(5, 3, dtype=torch.float64)
    de2 = np.array([(1.0 / 2) ** 2, (-1.5 / 3) ** 2])
    f2 = np.array([(configs[0].forces ** 2).mean(), (configs[1].forces ** 2).mean()])
    on = (1.0, 1.0, 0.0, (1.0,) * 6)
    for weights, (we, wf) in ((None, ([100.0, 7.0], [1.0, 2.0])), ((10.0, 0.5), ([10.0, 10.0], [0.5, 0.5]))):
        batch = _Batch(configs, mu, sig, (torch.zeros(1, dtype=torch.float64), 1.0, None), weights)
        terms, _ = _loss_terms(batch, energy, forces, torch.zeros((0, 6), dtype=torch.float64), on)
        assert np.allclose(terms.numpy(), np.array(we) * de2 + np.array(wf) * f2, rtol=1e-14)
    with pytest.raises(FitsnapError):
        PerAtomNetwork(energy_weight=10.0)
    with pytest.raises(DeckError) as excinfo:
        load_settings(DEMO, NN_KEYS + [("PYTORCH", "energy_weight", "10")])
    assert "[PYTORCH] force_weight" in str(excinfo.value) and "both" in str(excinfo.value)
    d = load_settings(DEMO, NN_KEYS).network
    m = PerAtomNetwork()
    assert (d.energy_weight, d.force_weight, d.batch_size, d.patience, d.learning_rate, d.num_epochs) == (
        m.energy_weight, m.force_weight, m.batch_size, m.patience, m.learning_rate, m.num_epochs)
    assert (d.hidden, d.activation, d.seed, d.stress_weight, d.save_freq, d.shuffle_flag,
            d.multi_element_option) == (m.hidden, m.activation, m.seed, m.stress_weight, m.save_freq, m.shuffle,
                                        m.multi_element_option)


def test_fitsnap_pytorch_keys(tmp_path):
    """training_fraction pools and splits every configuration (held-out ones are the metrics' test rows);
    shuffle_flag 0 and multi_element_option 1 are honoured; out-of-range values are deck errors."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.errors import DeckError

    for key, value in (("multi_element_option", "3"), ("training_fraction", "0"), ("shuffle_flag", "maybe"),
                       ("ema_decay", "1"), ("weight_decay", "-0.1")):
        with pytest.raises(DeckError) as excinfo:
            load_settings(DEMO, NN_KEYS + [("PYTORCH", key, value)])
        assert f"[PYTORCH] {key}" in str(excinfo.value)
    keys = TINY + [("PYTORCH", "training_fraction", "0.75"), ("PYTORCH", "shuffle_flag", "0"),
                   ("PYTORCH", "multi_element_option", "1"), ("PYTORCH", "save_state_output", "")]
    result = _network_fit(keys, tmp_path / "w")
    counts = {r.split: r.count for r in result.error_rows if r.group == "*ALL" and r.quantity == "Energy"}
    n = counts["Train"] + counts["Test"]
    assert counts["Test"] == round(0.25 * n)
    assert result.model.network_.shuffle is False and len(result.model.network_.nets_) == 1


def _rattled_two_element_frame():
    """A triclinic 64-atom Si/Ge cell, rattled (an entry for the per-atom calculator)."""
    from fitsnap_ext.data.dataset import Entry
    from fitsnap_ext.data.frame import Frame

    rng = np.random.default_rng(3)
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.25, .25, .25], [.25, .75, .75],
                     [.75, .25, .75], [.75, .75, .25]])
    grid = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = ((grid[:, None] + base[None]).reshape(-1, 3) / 2 + rng.normal(0, 0.01, (64, 3)))
    cell = np.array([[10.9, 0, 0], [0.8, 10.7, 0], [0.5, -0.6, 11.1]])
    symbols = ["Si" if k % 3 else "Ge" for k in range(64)]
    frame = Frame(symbols, frac @ cell, cell, energy=-250.0, forces=rng.normal(size=(64, 3)))
    return Entry(frame, False, 1.0, 1.0, 0.0, 0)


@pytest.mark.parametrize("elements", [1, 2])
def test_coloured_gradients_equal_the_dense_array(elements):
    """Big-frame path (compute snad/atom by colours) forced on a small frame: the same pairs in the same order,
    descriptors, gradients, reference energy/forces/pressure (ZBL reference) as the dense dgradflag array."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.peratom import PerAtomCalculator

    keys = NN_KEYS + [("REFERENCE", "pair_style", "hybrid/overlay zero 10.0 zbl 2.0 3.0"),
                      ("REFERENCE", "pair_coeff", "* * zero")]
    if elements == 1:
        keys += [("REFERENCE", "pair_coeff1", "* * zbl 14 14")]
        settings = load_settings(DEMO, keys)
        entry = next(e for e in load_entries(settings) if e.frame.natoms == 64)
    else:
        keys += [("BISPECTRUM", "type", "Si Ge"), ("BISPECTRUM", "numTypes", "2"),
                 ("BISPECTRUM", "radelem", "0.5 0.45"), ("BISPECTRUM", "wj", "1.0 0.8"),
                 ("REFERENCE", "pair_coeff1", "1 1 zbl 14 14"), ("REFERENCE", "pair_coeff2", "1 2 zbl 14 32"),
                 ("REFERENCE", "pair_coeff3", "2 2 zbl 32 32")]
        settings = load_settings(DEMO, keys)
        entry = _rattled_two_element_frame()
    out = []
    for limit in (2 ** 40, 0):
        calc = PerAtomCalculator(settings, dense_limit_bytes=limit)
        try:
            out.append(calc.compute(entry))
        finally:
            calc.close()
    dense, coloured = out
    assert np.array_equal(dense.pair_i, coloured.pair_i) and np.array_equal(dense.pair_j, coloured.pair_j)
    scale = np.abs(dense.dgrad).max()
    assert np.abs(dense.dgrad - coloured.dgrad).max() <= 1e-12 * scale
    assert np.abs(dense.b - coloured.b).max() <= 1e-12 * np.abs(dense.b).max()
    assert np.abs(dense.ref_forces - coloured.ref_forces).max() <= 1e-12 * np.abs(dense.ref_forces).max()
    assert abs(dense.ref_energy - coloured.ref_energy) <= 1e-12 * abs(dense.ref_energy)
    assert np.allclose(dense.ref_stress, coloured.ref_stress, rtol=1e-12, atol=1e-9)
    assert np.array_equal(dense.elements, coloured.elements) and np.abs(dense.ref_forces).max() > 0.1


def test_energy_head_reference_energies_and_folded_export(tmp_path):
    """The networks learn what per-element reference energies (least squares over the training energies) leave,
    in units of the RMS force: E0 recovered exactly from energies that are pure composition, and the exported
    layers (E0 and the scale folded into the last layer, what LAMMPS evaluates) give predict's energies."""
    from fitsnap_ext.models.network import PerAtomNetwork
    from fitsnap_ext.peratom import ConfigData

    rng = np.random.default_rng(3)
    e0 = np.array([-1.7, -5.3])
    configs = []
    for k in range(12):
        elements = rng.integers(0, 2, size=rng.integers(2, 7))
        n = len(elements)
        configs.append(ConfigData(k, "g", k >= 10, 1.0, 1.0, elements, rng.normal(size=(n, 4)),
                                  np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3, 4)),
                                  float(np.bincount(elements, minlength=2) @ e0), rng.normal(scale=0.4, size=(n, 3))))
    net = PerAtomNetwork(hidden=(5,), num_epochs=2, n_elements=2, patience=0).fit(configs, validation=())
    shift, scale, linear = net.energy_head_
    assert linear is None
    assert np.allclose(shift, e0, atol=1e-12)
    train_forces = np.concatenate([c.forces for c in configs if not c.test])
    assert scale == pytest.approx(np.sqrt((train_forces ** 2).mean()), rel=1e-12)
    mu, sig = net.scale_
    for c, (energy, _, _) in zip(configs, net.predict_many(configs)):
        by_layers = 0.0
        for e, b in zip(c.elements, c.b):
            (w1, b1), (w2, b2) = net.layers_[e]
            by_layers += (w2 @ np.tanh(w1 @ ((b - mu[e]) / sig[e]) + b1) + b2).item()
        assert by_layers == pytest.approx(energy, abs=1e-12)


def _random_configs(n_configs=14, n_test=2):
    """Small two-element ConfigData with random descriptors and labels (no gradients needed for these tests)."""
    from fitsnap_ext.peratom import ConfigData

    rng = np.random.default_rng(5)
    configs = []
    for k in range(n_configs):
        elements = rng.integers(0, 2, size=rng.integers(2, 6))
        n = len(elements)
        configs.append(ConfigData(k, "g", k >= n_configs - n_test, 1.0, 1.0, elements, rng.normal(size=(n, 4)),
                                  np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3, 4)),
                                  float(rng.normal() * n), rng.normal(scale=0.4, size=(n, 3))))
    return configs


def _recording_network(**params):
    """A PerAtomNetwork that records the weights after every optimiser step (and the average's start)."""
    from fitsnap_ext.models.network import PerAtomNetwork

    class Recording(PerAtomNetwork):
        def _update_average(self, state, params):
            if state["steps"] == 0 and state["ema"] is not None:
                self.recorded.append([a.clone() for a in state["ema"]])
            self.recorded.append([p.detach().clone() for p in params])
            super()._update_average(state, params)

    net = Recording(**params)
    net.recorded = []
    return net


def test_without_validation_the_lowest_training_loss_epoch_is_kept():
    """validation = (): every training configuration is fitted (no early stopping) and the weights kept are
    those at the end of the epoch with the lowest training loss (the studies' `nn_validation_fraction = 0`)."""
    configs = _random_configs()
    net = _recording_network(hidden=(5,), num_epochs=8, n_elements=2, patience=3, batch_size=4, learning_rate=0.05)
    net.fit(configs, validation=())
    steps_per_epoch = 3  # 12 training configurations, batches of 4
    assert len(net.recorded) == 8 * steps_per_epoch and len(net.history_) == 8
    losses = [row["train_loss"] for row in net.history_]
    assert net.best_epoch_ == 1 + int(np.argmin(losses))
    kept = [p.detach() for p in net.nets_.parameters()]
    trained = net.recorded[net.best_epoch_ * steps_per_epoch - 1]
    assert max(float((t - k).abs().max()) for t, k in zip(trained, kept)) == 0.0


def test_weight_average_is_the_warmed_up_moving_average():
    """ema_decay d: the networks kept are the moving average of the trained weights, updated after every step with
    decay min(d, (1 + n)/(10 + n)) (MACE's warm-up) from the initial weights, as it stood at the end of the best
    validation epoch; the validation errors logged are the averaged networks'."""
    import torch

    from fitsnap_ext.parallel import world

    configs = _random_configs()
    net = _recording_network(hidden=(5,), num_epochs=8, n_elements=2, patience=0, batch_size=4, ema_decay=0.9,
                             learning_rate=0.05)
    net.fit(configs, validation={0, 1})
    steps_per_epoch = 3  # 10 training configurations, batches of 4
    assert len(net.recorded) == 1 + 8 * steps_per_epoch
    average = net.recorded[0]
    for n, weights in enumerate(net.recorded[1:1 + net.best_epoch_ * steps_per_epoch]):
        decay = min(0.9, (1 + n) / (10 + n))
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    kept = [p.detach() for p in net.nets_.parameters()]
    assert max(float((a - k).abs().max()) for a, k in zip(average, kept)) < 1e-14
    trained = net.recorded[net.best_epoch_ * steps_per_epoch]
    assert max(float((t - k).abs().max()) for t, k in zip(trained, kept)) > 1e-3  # not the trained weights
    val = [c for c in configs if c.index in (0, 1)]
    with torch.no_grad():
        logged = net._errors("val", net._evaluate_set(val, world()))["val_loss"]
    assert logged == pytest.approx(net.history_[net.best_epoch_ - 1]["val_loss"], rel=1e-12)


def test_weight_decay_is_decoupled_and_follows_the_schedule():
    """weight_decay λ (AdamW): every step multiplies each parameter by (1 − lr_t·λ) besides Adam's step, lr_t the
    cosine schedule's rate of the epoch. With every loss weight off Adam's step is zero, so after epoch e the weights
    are the initial ones times Π (1 − lr_t·λ)^steps — to round-off."""
    configs = _random_configs()
    params = dict(hidden=(5,), num_epochs=4, n_elements=2, patience=0, batch_size=4, learning_rate=0.05,
                  weight_decay=2.0)
    off = dict(validation=(), use_energy=False, use_force=False, use_stress=False)
    net = _recording_network(**params)
    net.fit(configs, **off)
    steps_per_epoch = 3  # 12 training configurations, batches of 4
    # the same seed with a vanishing rate keeps the initial weights
    still = _recording_network(**dict(params, num_epochs=1, learning_rate=1e-300)).fit(configs, **off)
    initial = [p.detach() for p in still.nets_.parameters()]
    factor = 1.0
    for epoch in range(4):
        lr = 0.05 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * epoch / 3)))
        factor *= (1 - lr * 2.0) ** steps_per_epoch
        got = net.recorded[(epoch + 1) * steps_per_epoch - 1]
        assert max(float((g - factor * w).abs().max()) for g, w in zip(got, initial)) < 1e-14
    assert factor < 0.6  # the decay did shrink them


def test_weight_average_survives_a_restart(tmp_path):
    """With ema_decay the checkpoint holds the average and its step count: a fit stopped after its epoch-2
    checkpoint and rerun ends with the uninterrupted fit's weights, bit for bit."""
    from fitsnap_ext.models.network import PerAtomNetwork

    class Stopped(PerAtomNetwork):
        def _epoch(self, state, *args):
            if state["epoch"] == 2:
                raise KeyboardInterrupt  # as a kill right after the epoch-2 checkpoint
            super()._epoch(state, *args)

    configs = _random_configs()
    params = dict(hidden=(5,), num_epochs=5, n_elements=2, patience=0, batch_size=4, ema_decay=0.8,
                  learning_rate=0.05, save_freq=2)
    whole = PerAtomNetwork(**params, checkpoint=str(tmp_path / "a.pt")).fit(configs, validation={0, 1})
    with pytest.raises(KeyboardInterrupt):
        Stopped(**params, checkpoint=str(tmp_path / "b.pt")).fit(configs, validation={0, 1})
    said = []
    resumed = PerAtomNetwork(**params, checkpoint=str(tmp_path / "b.pt")).fit(configs, validation={0, 1},
                                                                              progress=said.append)
    assert any("resumed from checkpoint" in m and "at epoch 2" in m for m in said)
    for a, b in zip(whole.nets_.parameters(), resumed.nets_.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    assert resumed.best_epoch_ == whole.best_epoch_ and len(resumed.history_) == 5
