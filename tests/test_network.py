"""Neural-network SNAP: per-atom descriptors, export to LAMMPS `mliap model nn`, MD sanity, MPI, restarts.

Fast tests use the generated demo set (input_files/demo); the Zuo comparison is `slow`.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, fit_in_process, lammps_energy_forces, need_shared, run_cli

DEMO = REPO / "input_files" / "in.demo"
NN_KEYS = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1")]
# group weights are the loss weights when [PYTORCH] energy_weight/force_weight are absent (FitSNAP's rule)
SMALL_GROUPS = [("GROUPS", g, "0.25 0.1 1000 1 1e-4") for g in
                ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")]


def _torch1():
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="module", params=["zero", "zbl"])
def trained(request, tmp_path_factory):
    """A small network fitted in-process on the demo set (reference: none, or ZBL overlaid)."""
    _torch1()
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.pipeline import Progress
    from fitsnap_ext.pipeline import run_fit as run_network_fit
    from fitsnap_ext.parallel import world

    keys = NN_KEYS + [("PYTORCH", "layer_sizes", "num_desc 16 16 1"), ("PYTORCH", "num_epochs", "12"),
                      ("OUTFILE", "potential", "nn"), ("OUTFILE", "metrics", "nn_metrics.md"),
                      ("EXTRAS", "dump_dataframe", "1"), ("OUTFILE", "dataframe", "nn.df")]
    if request.param == "zbl":
        keys += [("REFERENCE", "pair_style", "hybrid/overlay zero 10.0 zbl 2.0 3.0"),
                 ("REFERENCE", "pair_coeff", "* * zero"), ("REFERENCE", "pair_coeff1", "* * zbl 14 14")]
    settings = load_settings(DEMO, keys)
    work = tmp_path_factory.mktemp(f"nn_{request.param}")
    comm = world()
    result = run_network_fit(settings.in_folder(work), comm, overwrite=False,
                             progress=Progress(comm, stream=io.StringIO()))
    return dict(settings=settings, result=result, dir=work, reference=request.param)


def test_dgrad_blocks_match_compute_snap():
    """Σ_i B_i is the energy row and Σ over owners of the sparse dB blocks is the force rows of `compute snap`."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.descriptors import SnapCalculator
    from fitsnap_ext.peratom import PerAtomCalculator

    settings = load_settings(DEMO, NN_KEYS)
    entries = load_entries(settings)
    entry = next(e for e in entries if e.frame.natoms == 64)
    calc = PerAtomCalculator(settings)
    data = calc.compute(entry)
    calc.close()
    rows = SnapCalculator(settings)
    r = rows.rows(entry)
    rows.close()
    n = data.natoms
    assert data.b.shape == (n, settings.bispectrum.ncoeff)
    assert np.allclose(r.a[0, 1:] * n, data.b.sum(0), rtol=1e-12, atol=1e-10)
    summed = np.zeros((n, 3, data.b.shape[1]))
    np.add.at(summed, data.pair_j, data.dgrad)
    assert np.abs(summed.reshape(3 * n, -1) - r.a[1:1 + 3 * n, 1:]).max() < 1e-10
    # sparse: only neighbour pairs are stored (64 atoms, 2J=6, rcut 4.7: ~25 per atom, not 64)
    assert len(data.pair_i) < 0.5 * n * n
    # translation invariance: for each owner i, Σ_j dB_i/dr_j = 0
    owner = np.zeros((n, 3, data.b.shape[1]))
    np.add.at(owner, data.pair_i, data.dgrad)
    assert np.abs(owner).max() < 1e-9


def test_export_roundtrip_lammps(trained):
    """LAMMPS (pair_style mliap model nn, from the exported files) = the torch model on the test configs."""
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.lammps_session import LammpsSession
    from fitsnap_ext.peratom import PerAtomCalculator

    settings, model = trained["settings"], trained["result"].model
    entries = [e for e in load_entries(settings) if e.test]
    calc = PerAtomCalculator(settings)
    session = LammpsSession()
    e_err, f_err, p_err, p_scale = [], [], [], []
    try:
        for entry in entries:
            data = calc.compute(entry)
            energy, forces, pressure = model.network_.predict(data)
            e_lmp, f_lmp, p_lmp = lammps_energy_forces(session, entry.frame, ["Si"], trained["dir"] / "nn.mod",
                                                       pressure=True)
            e_err.append(abs(e_lmp - (energy + data.ref_energy)) / data.natoms)
            f_err.append(np.abs(f_lmp - (forces + data.ref_forces)).max())
            p_err.append(np.abs(p_lmp - (pressure + data.ref_stress)).max())
            p_scale.append(np.abs(p_lmp).max())
    finally:
        calc.close()
        session.close()
    print(f"\nround trip ({trained['reference']}) over {len(entries)} test configurations: "
          f"max |ΔE| = {max(e_err):.2e} eV/atom, max |ΔF| = {max(f_err):.2e} eV/Å, "
          f"max |ΔP| = {max(p_err):.2e} bar (|P| up to {max(p_scale):.0f} bar)")
    assert len(entries) >= 30
    assert max(e_err) <= 1e-8
    assert max(f_err) <= 1e-6
    # the pressure from strain derivatives of B (central differences, h = 1e-5) = LAMMPS' virial
    assert max(p_err) <= 1e-2 and max(p_scale) > 1e3
    if trained["reference"] == "zbl":
        mod = (trained["dir"] / "nn.mod").read_text()
        assert "pair_style hybrid/overlay zbl 2.0 3.0 mliap model nn nn.mliap.model descriptor sna" in mod
        assert "pair_coeff * * mliap Si" in mod


def test_files_and_metrics(trained):
    """The metrics table has the linear models' rows and units; loss curve CSV and PNG are written."""
    d, result = trained["dir"], trained["result"]
    table = (d / "nn_metrics.md").read_text()
    assert "| *ALL | Test | Force | eV/Å |" in table and "| *ALL | Train | Energy | eV/atom |" in table
    assert "| *ALL | Test | Stress | bar |" in table
    lines = (d / "nn.loss.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,lr,train_loss") and len(lines) == 13
    assert (d / "nn.loss.png").read_bytes()[:4] == b"\x89PNG"
    model_file = (d / "nn.mliap.model").read_text().splitlines()
    body = [l.split("#")[0].split() for l in model_file]
    body = [l for l in body if l]
    assert body[0] == ["1", str(31 * 16 + 17 * 16 + 17)]
    assert body[1] == ["NET", "30", "3", "tanh", "16", "tanh", "16", "linear", "1"]
    assert max(len(l) for l in body[2:]) <= 30
    assert len(result.coef) == 31 * 16 + 17 * 16 + 17
    assert any(r.quantity == "Force" and r.split == "Test" for r in result.error_rows)


def test_parity_dataframe_gives_the_metrics(trained):
    """[EXTRAS] dump_dataframe: the parity rows (the linear fits' columns) give the metrics' MAE and RMSE."""
    import pandas as pd

    frame = pd.read_pickle(trained["dir"] / "nn.df")
    assert list(frame.columns) == ["Groups", "Configs", "Testing", "Row_Type", "truths", "preds"]
    checked = 0
    for row in trained["result"].error_rows:
        if row.group != "*ALL":
            continue
        sel = frame[(frame.Row_Type == row.quantity) & (frame.Testing == (row.split == "Test"))]
        residual = (sel.preds - sel.truths).to_numpy()
        assert len(residual) == row.count
        assert np.abs(residual).mean() == pytest.approx(row.mae, rel=1e-10)
        assert np.sqrt((residual ** 2).mean()) == pytest.approx(row.rmse, rel=1e-10)
        checked += 1
    assert checked == 6


def _fit_in_process(keys, work):
    _torch1()
    return fit_in_process(DEMO, keys, work)


def test_stress_weight_fits_stresses(tmp_path):
    """stress_weight > 0 trains on the pressure tensor: the test stress error falls well below that of the
    same network fitted to energies and forces only (whose stresses are predicted, not fitted)."""
    groups = [("GROUPS", g, "0.5 0.2 10 1 1") for g in
              ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")]
    base = NN_KEYS + groups + [("PYTORCH", "layer_sizes", "num_desc 16 16 1"), ("PYTORCH", "num_epochs", "40"),
                               ("PYTORCH", "patience", "0"), ("PYTORCH", "save_state_output", "")]
    errors = {}
    for weight in ("0", "0.003"):
        result = _fit_in_process(base + [("PYTORCH", "stress_weight", weight)], tmp_path / weight)
        errors[weight] = {(r.quantity, r.split): r.mae for r in result.error_rows if r.group == "*ALL"}
    print(f"\ntest stress MAE (bar): fitted {errors['0.003'][('Stress', 'Test')]:.0f}, "
          f"not fitted {errors['0'][('Stress', 'Test')]:.0f}; test force MAE (eV/Å) "
          f"{errors['0.003'][('Force', 'Test')]:.3f} vs {errors['0'][('Force', 'Test')]:.3f}")
    # measured: 2712 vs 7405 bar, forces 0.125 vs 0.127 eV/Å (stress_weight 0.01: 3101 bar, 0.136 eV/Å)
    assert errors["0.003"][("Stress", "Test")] < 0.5 * errors["0"][("Stress", "Test")]
    assert errors["0.003"][("Force", "Test")] < 1.1 * errors["0"][("Force", "Test")]


def test_fd_forces_and_nve_energy_conservation(trained):
    """In LAMMPS: forces = −dE/dr by central differences; 1000 NVE steps conserve the total energy
    (with and without the ZBL reference overlaid in the .mod)."""
    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.lammps_session import LammpsSession

    entry = next(e for e in load_entries(trained["settings"]) if e.test and e.frame.natoms == 64)
    session = LammpsSession()
    try:
        _, f0 = lammps_energy_forces(session, entry.frame, ["Si"], trained["dir"] / "nn.mod")
        x = session.lmp.numpy.extract_atom("x")
        h, worst = 1e-4, 0.0
        for atom in (0, 13, 42):
            for a in range(3):
                e = []
                for sign in (1, -1):
                    x[atom, a] += sign * h
                    session.command("run 0")
                    e.append(float(session.lmp.get_thermo("pe")))
                    x[atom, a] -= sign * h
                worst = max(worst, abs(-(e[0] - e[1]) / (2 * h) - f0[atom, a]))
        print(f"\nfinite-difference force error: {worst:.2e} eV/Å (h = {h} Å)")
        assert worst < 1e-6

        session.commands(["run 0", "mass * 28.0855", "velocity all create 600.0 4928459 mom yes rot yes dist gaussian",
                          "timestep 0.0005", "fix nve all nve", "thermo 10", "run 0"])
        n = entry.frame.natoms
        etot = [float(session.lmp.get_thermo("etotal"))]
        for _ in range(100):
            session.command("run 10")
            etot.append(float(session.lmp.get_thermo("etotal")))
        drift = np.max(np.abs(np.array(etot) - etot[0])) / n
        temp = float(session.lmp.get_thermo("temp"))
        print(f"NVE 1000 steps × 0.5 fs, 64 atoms: max |E_tot − E_tot(0)| = {drift:.2e} eV/atom (T end {temp:.0f} K)")
        assert drift < 1e-4
        assert 100 < temp < 2000
    finally:
        session.close()


def test_activation_and_quadratic_refused():
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.errors import DeckError, FitsnapError
    from fitsnap_ext.export.mliap import model_text
    from fitsnap_ext.models.network import PerAtomNetwork
    from fitsnap_ext.peratom import check_network_settings

    with pytest.raises(FitsnapError):
        PerAtomNetwork(activation="softplus")
    layers = [[(np.ones((2, 3)), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))]]
    with pytest.raises(ValueError, match="linear"):
        model_text(layers, np.zeros((1, 3)), np.ones((1, 3)), "elu", ["Si"])
    with pytest.raises(DeckError):
        load_settings(DEMO, NN_KEYS + [("PYTORCH", "activation", "elu")])
    settings = load_settings(DEMO, NN_KEYS + [("BISPECTRUM", "quadraticflag", "1")])
    with pytest.raises(FitsnapError, match="quadratic"):
        check_network_settings(settings)


def _state(path):
    torch = _torch1()
    return torch.load(path, weights_only=False)


def _max_param_diff(a, b):
    return max(float((a["nets"][k] - b["nets"][k]).abs().max()) for k in a["nets"])


def test_two_ranks_same_model(tmp_path):
    """mpirun -np 2 trains the same network as one rank (same seed) within round-off."""
    keys = NN_KEYS + SMALL_GROUPS + [("PYTORCH", "layer_sizes", "num_desc 8 8 1"), ("PYTORCH", "num_epochs", "8"),
                                     ("PYTORCH", "batch_size", "3"), ("PYTORCH", "save_state_output", "state.pt"),
                                     ("PYTORCH", "stress_weight", "100")]
    args = [DEMO] + [x for k in keys for x in ("-k", *k)]
    for n in (1, 2):
        (tmp_path / str(n)).mkdir()
        run_cli(args, tmp_path / str(n), nprocs=n)
    a, b = _state(tmp_path / "1" / "state.pt"), _state(tmp_path / "2" / "state.pt")
    diff = _max_param_diff(a, b)
    print(f"\n1 vs 2 ranks: max |Δparameter| = {diff:.2e}")
    assert diff < 1e-9
    assert abs(a["history"][-1]["train_loss"] - b["history"][-1]["train_loss"]) < 1e-9 * a["history"][-1]["train_loss"]


@pytest.mark.slow
def test_kill_and_restart_from_checkpoint(tmp_path):
    """SIGKILL mid-training, rerun: resumes from the checkpoint and ends with the same weights bit for bit."""
    keys = NN_KEYS + SMALL_GROUPS + [("PYTORCH", "layer_sizes", "num_desc 8 8 1"), ("PYTORCH", "num_epochs", "150"),
                                     ("PYTORCH", "patience", "0"), ("PYTORCH", "save_freq", "5"),
                                     ("PYTORCH", "checkpoint", "ck.pt"), ("PYTORCH", "save_state_output", "state.pt")]
    args = [DEMO] + [x for k in keys for x in ("-k", *k)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    full.mkdir()
    cut.mkdir()
    run_cli(args, full)
    cmd = [sys.executable, "-m", "fitsnap_ext", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=cut, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    t0 = time.time()
    killed_at = None
    for line in proc.stdout:
        m = re.search(r"epoch (\d+)/150", line)
        if m and int(m.group(1)) >= 23 and (cut / "ck.pt").exists():
            proc.send_signal(signal.SIGKILL)
            killed_at = int(m.group(1))
            break
        assert time.time() - t0 < 300
    proc.wait()
    assert killed_at is not None and not (cut / "state.pt").exists()
    resumed = run_cli(args + ["--overwrite"], cut)
    m = re.search(r"resumed from checkpoint ck.pt at epoch (\d+)", resumed.stdout)
    assert m and 20 <= int(m.group(1)) <= killed_at
    a, b = _state(full / "state.pt"), _state(cut / "state.pt")
    assert _max_param_diff(a, b) == 0.0
    assert len(b["history"]) == 150


@pytest.mark.slow
def test_zuo_network_beats_linear_on_validation_forces(tmp_path):
    """On Zuo's Si training data (seeded 90/10 split), the NN's validation force MAE is below linear SNAP's."""
    need_shared("si_zuo")
    run_cli([REPO / "input_files" / "in.si_zuo"], tmp_path)
    t0 = time.time()
    run_cli([REPO / "input_files" / "in.si_nn"], tmp_path, nprocs=2, timeout=900)
    minutes = (time.time() - t0) / 60

    def test_force_mae(name):
        for line in (tmp_path / name).read_text().splitlines():
            if line.startswith("| *ALL | Test | Force |"):
                return float(line.split("|")[6])
        raise AssertionError(f"no test force row in {name}")

    linear, nn = test_force_mae("Si_zuo_metrics.md"), test_force_mae("Si_nn_metrics.md")
    print(f"\nvalidation force MAE (eV/Å): NN {nn:.4f} vs linear SNAP {linear:.4f}; NN fit {minutes:.1f} min")
    assert nn < 0.9 * linear
