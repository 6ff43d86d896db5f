"""Error bars of the study: bootstrap sds of fitting errors, property sds from members and the engine, z tests
between models, bootstrap intervals of correlations, the deck keys that make the members, and a real quick study
with a network ensemble and posterior samples."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from conftest import REPO, run_cli
from fitsnap_ext.errors import DeckError
from fitsnap_ext.study import ModelSpec, fit_key, model_settings, read_study, summary_row
from fitsnap_ext.study.deck import member_potentials
from fitsnap_ext.study.report import failure_lines, resolved_differences
from fitsnap_ext.study.statistics import (bootstrap_errors, correlation_ci, pair_tests, property_uncertainty,
                                          z_score)

DECK = REPO / "input_files" / "study_si.in"


# ---------------------------------------------------------------- statistics (fast)

def test_bootstrap_sd_of_mae_and_rmse_is_the_analytic_standard_error():
    """Normal errors (σ = 1): SE(MAE) = σ sqrt((1 − 2/π)/n), SE(RMSE) ≈ σ / sqrt(2n)."""
    rng = np.random.default_rng(1)
    n = 500
    r = rng.standard_normal(n)
    b = bootstrap_errors(r, np.arange(n), seed=3)
    assert b["mae"] == pytest.approx(np.abs(r).mean()) and b["rmse"] == pytest.approx(np.sqrt((r * r).mean()))
    assert b["mae_sd"] == pytest.approx(math.sqrt((1 - 2 / math.pi) / n), rel=0.1)
    assert b["rmse_sd"] == pytest.approx(1 / math.sqrt(2 * n), rel=0.1)
    assert bootstrap_errors(r, np.arange(n), seed=3) == b  # seeded


def test_bootstrap_resamples_configurations_not_rows():
    """Ten rows sharing one configuration's error carry one configuration's information: the sd is that of n
    configurations (≈ sqrt(10) times the sd of independent rows), and rows of one configuration stay together."""
    rng = np.random.default_rng(2)
    n = 400
    per_config = rng.standard_normal(n)
    r, configs = np.repeat(per_config, 10), np.repeat(np.arange(n), 10)
    b = bootstrap_errors(r, configs)
    assert b["n_configs"] == n
    assert b["mae_sd"] == pytest.approx(math.sqrt((1 - 2 / math.pi) / n), rel=0.1)
    independent = bootstrap_errors(r, np.arange(len(r)))
    assert b["mae_sd"] > 2.5 * independent["mae_sd"]
    assert math.isnan(bootstrap_errors([0.5, -0.2], ["a", "a"])["mae_sd"])  # one configuration: no sd


def test_property_uncertainty_combines_spread_and_statistical_error():
    assert property_uncertainty([1.0, 2.0, 3.0], 0.5) == {"spread": 1.0, "sd": pytest.approx(math.sqrt(1.25))}
    assert property_uncertainty([1.0, 2.0, 3.0]) == {"spread": 1.0, "sd": 1.0}
    assert property_uncertainty([4.0], 0.3) == {"sd": 0.3}          # one member: no spread
    assert property_uncertainty([4.0, None, float("nan")]) == {}   # neither: no sd (an empty cell, not 0)
    assert property_uncertainty([], None) == {}


def test_z_tests_classify_every_pair():
    rows = [{"model": "A", "x_err": 1.0, "x_sd": 0.1}, {"model": "B", "x_err": -2.0, "x_sd": 0.1},
            {"model": "C", "x_err": 1.1, "x_sd": 0.1}, {"model": "D", "x_err": 5.0},
            {"model": "E", "status": "no value"}]
    tests = {(t["a"], t["b"]): t for t in pair_tests(rows, "x")}
    assert set(tests) == {("A", "B"), ("A", "C"), ("C", "B"), ("A", "D"), ("B", "D"), ("C", "D")}
    assert tests[("A", "B")]["z"] == pytest.approx(-1 / math.sqrt(0.02))
    assert tests[("A", "B")]["verdict"] == "resolved" and tests[("C", "B")]["verdict"] == "resolved"
    assert tests[("A", "C")]["verdict"] == "unresolved" and tests[("A", "C")]["z"] == pytest.approx(-0.1 / 0.02 ** 0.5)
    assert [tests[p]["verdict"] for p in (("A", "D"), ("B", "D"), ("C", "D"))] == ["no uncertainty"] * 3
    assert z_score(1.0, 0.0, 2.0, 0.0) is None and z_score(1.0, None, 2.0, 0.1) is None
    md = "\n".join(resolved_differences([{**r, "status": "ok"} for r in rows], ["x"]))
    assert "| x | 2 | 1 | 3 | A closer to the reference than B, z = -7.1; C closer to the reference than B, " \
           "z = -6.4 |" in md


def test_correlation_interval_covers_the_true_correlation():
    """Bivariate normal, ρ = 0.6, 50 points: the 95 % intervals of Pearson r (and of Spearman ρ, whose true value
    is 6/π asin(ρ/2)) contain the true value in about 95 % of repeats."""
    rng = np.random.default_rng(5)
    rho, n, repeats = 0.6, 50, 120
    cov = [[1, rho], [rho, 1]]
    true_spearman = 6 / math.pi * math.asin(rho / 2)
    hits = np.zeros(2)
    for i in range(repeats):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        c = correlation_ci(x, y, n_boot=1000, seed=i)
        hits += [c["pearson_ci"][0] <= rho <= c["pearson_ci"][1],
                 c["spearman_ci"][0] <= true_spearman <= c["spearman_ci"][1]]
    assert (hits / repeats >= 0.88).all(), hits / repeats
    # known measurement errors widen the interval; |y| is what absolute_y correlates
    x, y = rng.multivariate_normal([0, 0], cov, size=n).T
    plain, noisy = correlation_ci(x, y), correlation_ci(x, y, np.full(n, 0.5), np.full(n, 0.5))
    assert np.diff(noisy["pearson_ci"])[0] > np.diff(plain["pearson_ci"])[0]
    assert correlation_ci(x, -np.abs(y) - 1, absolute_y=True)["pearson"] == pytest.approx(
        correlation_ci(x, np.abs(y) + 1)["pearson"])
    assert math.isnan(correlation_ci([1, 2], [3, 4])["pearson"])


# ---------------------------------------------------------------- summary rows (fast)

def test_summary_row_sd_and_spread_from_members_and_engine():
    model = ModelSpec("nn_8", "nn", ())
    fit = {"twojmax": 6, "n_params": 257, "fit_wall_s": 1.0,
           "errors": [{"group": "*ALL", "split": "Test", "quantity": "Energy", "mae": 0.004, "rmse": 0.005},
                      {"group": "*ALL", "split": "Test", "quantity": "Force", "mae": 0.1, "rmse": 0.2}],
           "uncertainty": [{"split": "Test", "quantity": "Energy", "mae_sd": 0.0005, "rmse_sd": 0.0007},
                           {"split": "Test", "quantity": "Force", "mae_sd": 0.01, "rmse_sd": float("nan")}]}
    props = {"props": {"C11_GPa": 150.0, "C11_GPa_sd": 2.0, "bulk_modulus_GPa": 100.0, "C44_GPa": 50.0,
                       "lattice_constant_A": 5.43, "lattice_constant_A_sd": 0.001}, "props_wall_s": 1.0}
    members = {"members": [{"name": "member0", "props": {"C11_GPa": 148.0, "bulk_modulus_GPa": 99.0, "C44_GPa": 50.0}},
                           {"name": "member1", "props": {"C11_GPa": 154.0, "bulk_modulus_GPa": 103.0}},
                           {"name": "member2", "props": None, "error": "LAMMPS blew up"}]}
    refs = {"C11_GPa": {"value": 151.4}, "bulk_modulus_GPa": {"value": 101.4}, "lattice_constant_A": {"value": 5.431}}
    row = summary_row(model, fit, props, None, refs, "ok", members)
    assert row["energy_test_mae_meV_atom_sd"] == pytest.approx(0.5) and row["energy_test_rmse_meV_atom_sd"] == pytest.approx(0.7)
    assert row["force_test_mae_eV_A_sd"] == 0.01 and "force_test_rmse_eV_A_sd" not in row
    spread = np.std([148.0, 154.0], ddof=1)
    assert row["C11_GPa_spread"] == pytest.approx(spread) and row["C11_GPa_sd"] == pytest.approx(math.hypot(spread, 2.0))
    assert row["bulk_modulus_GPa_sd"] == row["bulk_modulus_GPa_spread"] == pytest.approx(np.std([99, 103], ddof=1))
    assert "C44_GPa_sd" not in row and "C44_GPa_spread" not in row      # one member value, no engine error
    assert row["lattice_constant_A_sd"] == 0.001 and "lattice_constant_A_spread" not in row
    assert row["n_members"] == 2 and row["members_failed"] == "1 of 3: member2 (LAMMPS blew up)"
    assert failure_lines([row]) == ["- nn_8: members failed, 1 of 3: member2 (LAMMPS blew up) — its sds are over "
                                    "the other members only"]
    plain = summary_row(model, {k: v for k, v in fit.items() if k != "uncertainty"}, props, None, refs, "ok")
    assert not any(k.endswith("_spread") for k in plain) and "C11_GPa_sd" in plain and "C44_GPa_sd" not in plain


# ---------------------------------------------------------------- deck keys (fast)

def test_member_keys_change_the_rung_decks_and_default_keys_do_not(tmp_path):
    plain = tmp_path / "plain.in"  # no nn_ensemble / linear_samples (the Si, GaN and LGPS decks now set them)
    plain.write_text(f"[STUDY]\nsystem = si\nbase_deck = {REPO / 'input_files' / 'in.demo'}\n"
                     "ladder = linear:4 linear:6 quadratic:4 nn:8\n")
    spec = read_study(plain)
    same = read_study(plain, [("STUDY", "nn_ensemble", "1"), ("STUDY", "linear_samples", "0")])
    for a, b in zip(spec.models, same.models):
        assert fit_key(model_settings(spec, a)) == fit_key(model_settings(same, b)), a.name
    uq = read_study(plain, [("STUDY", "nn_ensemble", "3"), ("STUDY", "linear_samples", "4")])
    for m in uq.models:
        s = model_settings(uq, m)
        if m.kind == "nn":
            assert s.network.ensemble_size == 3
        elif m.kind == "linear":
            assert (s.solver.solver, s.solver.nsam) == ("ANL", 4)
        else:  # quadratic rungs keep their solver (ANL's pinv mean fails on ill-conditioned quadratic fits)
            assert (s.solver.solver, s.solver.nsam) == ("SVD", 0)
            assert fit_key(s) == fit_key(model_settings(spec, m))
            continue
        assert fit_key(s) != fit_key(model_settings(spec, m))
    boot = read_study(plain, [("STUDY", "linear_samples", "4"), ("STUDY", "linear_uq", "bootstrap")])
    for m in boot.models:  # the bootstrap's mean is the SVD fit: quadratic rungs get coefficient sets too
        s = model_settings(boot, m)
        want = ("PYTORCH", 0) if m.kind == "nn" else ("BOOTSTRAP", 4)
        assert (s.solver.solver, s.solver.nsam) == want, m.name
        assert member_potentials(boot, m) == ([] if m.kind == "nn" else [f"pot.sample{k}" for k in range(4)])
    deck = tmp_path / "study.in"
    for key, value, message in (("nn_ensemble", "0", "must be >= 1"), ("linear_samples", "-1", "must be >= 0"),
                                ("nn_ensemble", "two", ""), ("linear_uq", "mcmc", "one of anl, bootstrap")):
        deck.write_text(f"[STUDY]\nsystem = si\nbase_deck = {REPO / 'input_files' / 'in.demo'}\nladder = linear:4\n"
                        f"{key} = {value}\n")
        with pytest.raises(DeckError, match=rf"study.in:5: \[STUDY\] {key}: .*{message}") as err:
            read_study(deck)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------- a real quick study with members

def test_quick_study_with_members_has_error_bars(tmp_path):
    out = tmp_path / "study"
    args = ["study", DECK, "--quick", "--out", out, "-k", "STUDY", "quick_ladder", "linear:4 linear:6 nn:8",
            "-k", "STUDY", "quick_nn_epochs", "10", "-k", "STUDY", "nn_ensemble", "2",
            "-k", "STUDY", "linear_samples", "2"]
    first = run_cli(args, cwd=tmp_path, timeout=900)
    assert "linear_2J4: properties of sample1 (2 of 2)" in first.stdout
    with open(out / "study.csv") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["linear_2J4", "linear_2J6", "nn_8"]
    for name, r in rows.items():
        assert r["status"] == "ok" and r["n_members"] == "2", r
        for key in ("lattice_constant_A", "bulk_modulus_GPa", "C11_GPa", "C12_GPa", "C44_GPa"):
            assert 0 < float(r[key + "_sd"]) < math.inf and float(r[key + "_sd"]) >= float(r[key + "_spread"])
        member = json.loads((out / name / ("member1" if name.startswith("nn") else "sample1") / "props.json").read_text())
        assert member["potential"] == ("../pot.member1.mod" if name.startswith("nn") else "../pot.sample1.mod")
    for key in ("energy_test_mae_meV_atom", "energy_test_rmse_meV_atom", "force_test_mae_eV_A", "force_test_rmse_eV_A"):
        for name in rows:  # a network rung's parity.df is written by the study (the fit writes none)
            assert 0 < float(rows[name][key + "_sd"]) < 0.5 * float(rows[name][key]), (name, key)
    md = (out / "study.md").read_text()
    assert "## Which differences are resolved" in md and " ± " in md and str(REPO) not in md
    assert "bootstrap 95 % intervals" in md
    second = run_cli(args, cwd=tmp_path, timeout=900)
    assert "nn_8: member properties cached" in second.stdout and "properties of member" not in second.stdout
