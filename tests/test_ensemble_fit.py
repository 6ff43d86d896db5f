"""Deep ensembles of networks ([PYTORCH] ensemble_size): the exported mean in LAMMPS, σ, calibration, MPI layout.

A K = 3 ensemble of small networks is fitted in-process on a quarter of the demo set; the members' and the mean's
`.mod` files are run in LAMMPS through the ASE calculator (an independent evaluation of the exported files).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, fit_in_process, run_cli

DEMO = REPO / "input_files" / "in.demo"
K = 3
SMALL_GROUPS = [("GROUPS", g, "0.25 0.1 1000 1 1e-4") for g in
                ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")]
KEYS = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"),
        ("PYTORCH", "layer_sizes", "num_desc 8 8 1"), ("PYTORCH", "num_epochs", "5"),
        ("PYTORCH", "energy_weight", "10"), ("PYTORCH", "force_weight", "1"), ("PYTORCH", "validation_fraction", "0.2"),
        ("OUTFILE", "potential", "ens"), ("OUTFILE", "metrics", "ens_metrics.md")] + SMALL_GROUPS


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("ensemble") / "fit"
    result = fit_in_process(DEMO, KEYS + [("PYTORCH", "ensemble_size", str(K))], work)
    return dict(result=result, dir=work)


def lammps_predictions(mod, frames):
    """(energies (n,), forces [(N_i, 3)]) of the include file `mod` through fitsnap_ext.calculator."""
    from fitsnap_ext.calculator import calculator

    calc = calculator(mod, ["Si"])
    energies, forces = [], []
    for f in frames:
        atoms = f.to_atoms()
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces().copy())
    return np.array(energies), forces


def demo_entries():
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.dataset import load_entries

    return load_entries(load_settings(DEMO, KEYS))


def test_exported_mean_equals_members_in_lammps(ensemble):
    """<pot>.mod (one mliap nn network) = the mean of <pot>.member<k>.mod, run in LAMMPS, to 1e-10 eV/atom."""
    folder = ensemble["dir"]
    frames = [e.frame for e in demo_entries() if e.frame.group in ("md_1200K", "strain_rattle")][:4]
    members = [lammps_predictions(folder / f"ens.member{k}.mod", frames) for k in range(K)]
    e_ens, f_ens = lammps_predictions(folder / "ens.mod", frames)
    natoms = np.array([f.natoms for f in frames])
    e_mean = np.mean([e for e, _ in members], axis=0)
    spread = np.std([e for e, _ in members], axis=0) / natoms
    print(f"\nensemble .mod vs mean of members: max |ΔE| {np.max(np.abs(e_ens - e_mean) / natoms):.1e} eV/atom "
          f"(member spread {spread.min():.1e}..{spread.max():.1e} eV/atom)")
    assert np.all(np.abs(e_ens - e_mean) / natoms <= 1e-10)
    for j in range(len(frames)):
        f_mean = np.mean([f[j] for _, f in members], axis=0)
        assert np.abs(f_ens[j] - f_mean).max() <= 1e-9
    assert spread.min() > 1e-5  # the members differ: the check has teeth
    assert "NET 30 3 tanh 24 tanh 24 linear 1" in (folder / "ens.mliap.model").read_text()


def test_predict_sigma_is_the_members_spread(ensemble):
    """predict(return_std=True): mean and σ (sample std, ddof 1) of the members' predictions (here: their .mod
    files in LAMMPS); per atom, σ_F = sqrt(Σ_components var)."""
    model, folder = ensemble["result"].model, ensemble["dir"]
    frames = [e.frame for e in demo_entries() if e.frame.group in ("md_2500K", "strain_rattle_64")][:3]
    energies, forces, _, e_std, f_std = model.predict(frames, return_std=True)
    members = [lammps_predictions(folder / f"ens.member{k}.mod", frames) for k in range(K)]
    e_k = np.array([e for e, _ in members])
    np.testing.assert_allclose(energies, e_k.mean(0), rtol=1e-10)
    np.testing.assert_allclose(e_std, e_k.std(0, ddof=1), rtol=1e-6)
    for j in range(len(frames)):
        f_k = np.array([f[j] for _, f in members])
        np.testing.assert_allclose(forces[j], f_k.mean(0), atol=1e-9)
        np.testing.assert_allclose(f_std[j], np.sqrt(f_k.var(0, ddof=1).sum(1)), rtol=1e-6, atol=1e-12)
    assert e_std.min() > 1e-4 and min(s.min() for s in f_std) > 1e-6
    no_std = model.predict(frames[:1])
    assert len(no_std) == 3 and no_std[0][0] == energies[0]


def calibration_points(folder, entries):
    """{quantity: (errors, σ)} of the mean of the members' .mod files over `entries` (forces per component in
    LAMMPS' frame, as the fit sees them; σ ≤ 1e-10 left out)."""
    from fitsnap_ext.lammps_session import lammps_frame

    frames = [e.frame for e in entries]
    members = [lammps_predictions(folder / f"ens.member{k}.mod", frames) for k in range(K)]
    e_k = np.array([e for e, _ in members])
    natoms = np.array([f.natoms for f in frames])
    out = {"Energy": ((e_k.mean(0) - [f.energy for f in frames]) / natoms, e_k.std(0, ddof=1) / natoms)}
    err, sig = [], []
    for j, f in enumerate(frames):
        rot = lammps_frame(f.cell, f.positions, f.pbc).rotation
        f_k = np.array([m[1][j] @ rot.T for m in members])
        err.append((f_k.mean(0) - f.forces @ rot.T).ravel())
        sig.append(f_k.std(0, ddof=1).ravel())
    err, sig = np.concatenate(err), np.concatenate(sig)
    out["Force"] = (err[sig > 1e-10], sig[sig > 1e-10])
    return out


def test_calibration_table_numbers(ensemble):
    """<metrics>_calibration.csv and the metrics .md section = calibration.py on the test split's errors of the
    members' mean, raw and with σ scaled by fit_scale on the validation split."""
    import pandas as pd

    from fitsnap_ext import calibration as cal
    from fitsnap_ext.network_snap import choose_validation

    folder = ensemble["dir"]
    entries = demo_entries()
    validation = choose_validation([(e.index, e.test) for e in entries], 0.2, 0)
    test = calibration_points(folder, [e for e in entries if e.test])
    val = calibration_points(folder, [e for e in entries if e.index in validation])
    table = pd.read_csv(folder / "ens_metrics_calibration.csv")
    assert list(table["quantity"]) == ["Energy", "Energy", "Force", "Force"]
    for i, q in enumerate(("Energy", "Energy", "Force", "Force")):
        e, s = test[q]
        scale = 1.0 if i % 2 == 0 else cal.fit_scale(*val[q])
        row = table.iloc[i]
        assert row["count"] == len(e)
        np.testing.assert_allclose(row["scale"], scale, rtol=1e-6)
        for column, value in (("rmse", np.sqrt(np.mean(e * e))), ("rms_sigma", scale * np.sqrt(np.mean(s * s))),
                              ("within_1sigma", cal.coverage(e, scale * s, 1)),
                              ("within_2sigma", cal.coverage(e, scale * s, 2)),
                              ("miscalibration_area", cal.miscalibration_area(e, scale * s)),
                              ("nll", cal.gaussian_nll(e, scale * s))):
            np.testing.assert_allclose(row[column], value, rtol=1e-6, atol=1e-9, err_msg=f"{q} {column}")
    md = (folder / "ens_metrics.md").read_text()
    assert "## Calibration of the predictive σ (test split)" in md
    assert "fitted on the validation split (the configurations held out for early stopping)" in md
    assert f"| Force | eV/Å | {len(test['Force'][0])} |" in md


def test_single_network_has_no_sigma(tmp_path):
    from fitsnap_ext.errors import FitsnapError

    result = fit_in_process(DEMO, KEYS + [("PYTORCH", "num_epochs", "1")], tmp_path / "one")
    frame = demo_entries()[0].frame
    with pytest.raises(FitsnapError, match="σ needs ensemble_size ≥ 2"):
        result.model.predict([frame], return_std=True)
    assert not (tmp_path / "one" / "ens_metrics_calibration.csv").exists()
    assert "Calibration" not in (tmp_path / "one" / "ens_metrics.md").read_text()


def test_members_side_by_side_equal_serial(tmp_path):
    """ensemble_size 3 with bootstrap: mpirun -np 2 (members 0 and 2 on rank 0, member 1 on rank 1) trains the same
    weights as one rank training the three one after another."""
    import torch

    deck = tmp_path / "demo.in"
    text = DEMO.read_text().split("[PROPERTIES]")[0]
    deck.write_text(text.replace("dataPath = demo", f"dataPath = {REPO / 'input_files' / 'demo'}"))
    keys = KEYS + [("PYTORCH", "ensemble_size", "3"), ("PYTORCH", "ensemble_bootstrap", "1"),
                   ("PYTORCH", "num_epochs", "3"), ("PYTORCH", "save_state_output", "state.pt")]
    args = [deck] + [x for k in keys for x in ("-k", *k)]
    states = []
    for n in (1, 2):
        (tmp_path / str(n)).mkdir()
        run_cli(args, tmp_path / str(n), nprocs=n)
        states.append(torch.load(tmp_path / str(n) / "state.pt", weights_only=True))
    worst = 0.0
    assert len(states[0]["members"]) == len(states[1]["members"]) == 3
    for a, b in zip(states[0]["members"], states[1]["members"]):
        for name, w in a["nets"].items():
            worst = max(worst, float((w - b["nets"][name]).abs().max() / w.abs().max()))
    print(f"\nserial vs 2 ranks: max relative |Δw| = {worst:.1e}")
    assert worst <= 1e-10
    m0, m1 = (s["nets"] for s in states[0]["members"][:2])
    assert max(float((m0[n] - m1[n]).abs().max()) for n in m0) > 1e-3  # the two members differ


def test_ensemble_keys():
    from fitsnap_ext import NetworkSNAP
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.errors import DeckError

    with pytest.raises(DeckError, match=r"\[PYTORCH\] ensemble_size: 0: must be >= 1"):
        load_settings(DEMO, KEYS + [("PYTORCH", "ensemble_size", "0")])
    settings = load_settings(DEMO, KEYS + [("PYTORCH", "ensemble_size", "4"), ("PYTORCH", "ensemble_bootstrap", "1")])
    model = NetworkSNAP.from_settings(settings)
    assert model.get_params()["ensemble_size"] == 4 and model.get_params()["ensemble_bootstrap"] is True
    assert NetworkSNAP().get_params()["ensemble_size"] == 1
    resolved = NetworkSNAP(settings, ensemble_size=2).resolved_settings()
    assert resolved.network.ensemble_size == 2 and not resolved.network.ensemble_bootstrap
