"""Cells of any orientation give the same fit; the written .mod runs stable NVE MD in LAMMPS."""
from pathlib import Path

import numpy as np

from conftest import REPO, need_shared, run_cli
from fitsnap_ext.config import load_settings
from fitsnap_ext.data.dataset import load_entries
from fitsnap_ext.descriptors import SnapCalculator
from fitsnap_ext.lammps_session import LammpsSession, include_commands, lammps_frame


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def test_lammps_frame_is_upper_triangular_and_keeps_geometry():
    rng = np.random.default_rng(0)
    cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * 8
    cell *= np.sign(np.linalg.det(cell))
    pos = rng.uniform(-5, 15, size=(7, 3))
    placed = lammps_frame(cell, pos)
    assert np.allclose(np.tril(placed.cell, -1), 0) and np.all(np.diag(placed.cell) > 0)
    np.testing.assert_allclose(placed.rotation @ cell.T, placed.cell, atol=1e-12)
    frac = np.linalg.solve(placed.cell, placed.positions.T).T
    assert np.all(frac >= 0) and np.all(frac < 1)
    d_in = (pos[1] - pos[0]) @ np.linalg.inv(cell)
    d_out = np.linalg.solve(placed.cell, placed.positions[1] - placed.positions[0])
    np.testing.assert_allclose((d_in - d_out) - np.round(d_in - d_out), 0, atol=1e-10)


def test_rotated_configurations_give_identical_rows():
    """Rotating positions, forces, stress and cell together leaves every row unchanged."""
    need_shared("ta_fitsnap", "JSON")
    settings = load_settings(REPO / "input_files" / "in.ta")
    entries = [e for e in load_entries(settings) if e.frame.group in ("Elastic_BCC", "Liquid")][:4]
    calc = SnapCalculator(settings)
    try:
        for k, entry in enumerate(entries):
            before = calc.rows(entry)
            rot = _rotation(k)
            f = entry.frame
            f.cell, f.positions = f.cell @ rot.T, f.positions @ rot.T
            f.forces, f.stress = f.forces @ rot.T, rot @ f.stress @ rot.T
            after = calc.rows(entry)
            np.testing.assert_allclose(after.a, before.a, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(after.b, before.b, rtol=1e-9, atol=1e-7)
    finally:
        calc.close()


def nve_drift(mod: Path, lattice: str, a: float, reps: int, mass: float, temperature: float,
              steps: int = 1000, dt: float = 0.001) -> float:
    """Max |E_total(t) − E_total(0)| per atom (eV/atom) over `steps` NVE steps with the .mod potential."""
    with LammpsSession(log="none") as lmp:
        lmp.commands([
            "units metal", "atom_style atomic", f"lattice {lattice} {a}",
            f"region box block 0 {reps} 0 {reps} 0 {reps}", "create_box 1 box", "create_atoms 1 box",
            f"mass 1 {mass}", *include_commands(mod),
            f"velocity all create {temperature} 4928459 mom yes rot yes dist gaussian",
            "fix nve all nve", f"timestep {dt}", "variable e equal etotal/atoms", "run 0"])
        e = [lmp.lmp.extract_variable("e")]
        for _ in range(steps // 10):
            lmp.command("run 10 pre no post no")
            e.append(lmp.lmp.extract_variable("e"))
        e = np.array(e)
    return float(np.max(np.abs(e - e[0])))


def test_fitted_ta_mod_conserves_energy(tmp_path):
    need_shared("ta_fitsnap", "JSON")
    run_cli([REPO / "input_files" / "in.ta"], tmp_path)
    drift = nve_drift(tmp_path / "Ta_pot.mod", "bcc", 3.316, 4, 180.94788, 600.0, steps=1000, dt=0.0005)
    assert drift < 1e-4
