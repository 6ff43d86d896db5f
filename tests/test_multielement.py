"""Two-element SNAP (GaN) end to end: a teacher SNAP with known coefficients labels rattled wurtzite cells,
the refit with the same settings recovers them (per-element radelem/wj, vacancies so both constants are fixed)."""
import numpy as np
import pytest
from ase.build import bulk

from conftest import lammps_energy_forces, read_snapcoeff, run_cli, xyz_refit_deck
from fitsnap_ext.config import load_settings
from fitsnap_ext.data.extxyz import write_extxyz
from fitsnap_ext.data.frame import Frame
from fitsnap_ext.export.snap import snap_files
from fitsnap_ext.generate.deck import LabelerSettings
from fitsnap_ext.generate.labelers import LammpsLabeler

BISPECTRUM = """numTypes = 2
twojmax = 4
rcutfac = 4.0
rfac0 = 0.99363
rmin0 = 0
wj = 1.0 0.8
radelem = 0.55 0.45
type = Ga N
chemflag = {chemflag}
bnormflag = {chemflag}"""


def _deck(chemflag: int) -> str:
    return xyz_refit_deck(BISPECTRUM.format(chemflag=chemflag), "gan_refit", "rattled = 1.0 0.0 100 1 1e-4")


def _frames(n=12, seed=0):
    rng = np.random.default_rng(seed)
    base = bulk("GaN", "wurtzite", a=3.19, c=5.19) * (2, 2, 2)
    frames = []
    for _ in range(n):
        atoms = base.copy()
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (strain + strain.T) / 2, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        del atoms[int(rng.integers(len(atoms)))]  # a vacancy: compositions differ, so both constants are fixed
        frames.append(Frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array))
    return frames


def test_chemflag_is_accepted_for_snap_and_refused_for_a_network(tmp_path):
    """Linear/quadratic chemflag fits tie their duplicated columns and deploy (tests/test_chemflag.py); a network's
    dE/dB on those columns are not tied, so LAMMPS' mliap descriptor sna would give forces off its energy."""
    from fitsnap_ext.errors import DeckError

    deck = tmp_path / "in.gan"
    deck.write_text(_deck(1))
    assert load_settings(deck).bispectrum.chemflag
    with pytest.raises(DeckError, match="chemflag with a network"):
        load_settings(deck, [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1")])


def tie(coef: np.ndarray, bs) -> np.ndarray:
    """Per-element coefficients (constant first) with each group of identical columns given its first value."""
    per_element = np.array(coef, dtype=float).reshape(bs.numtypes, -1)
    _, first, inverse = np.unique(bs.duplicate_groups(), return_index=True, return_inverse=True)
    per_element[:, 1:] = per_element[:, 1:][:, first[inverse]]
    return per_element.ravel()


def _teacher_data(tmp_path, chemflag=0, n_frames=12, constant=-3.5):
    """Write ./in.gan and ./data/rattled.xyz labelled by a random two-element teacher SNAP (energy constants
    `constant` and `constant` − 1 eV per atom); its coefficients."""
    deck = tmp_path / "in.gan"
    deck.write_text(_deck(chemflag))
    settings = load_settings(deck)
    bs = settings.bispectrum
    rng = np.random.default_rng(1 + chemflag)
    ncol = bs.ncoeff + 1
    teacher_coef = tie(np.concatenate([[constant - e] + list(rng.normal(0, 0.02, ncol - 1)) for e in range(2)]), bs)
    (tmp_path / "teacher").mkdir()
    for path, text in snap_files(str(tmp_path / "teacher" / "gan"), teacher_coef, bs, settings.reference).items():
        open(path, "w").write(text)

    teacher = LammpsLabeler(LabelerSettings(type="lammps", pair_style="snap", elements=["Ga", "N"],
                                            masses=[69.723, 14.007],
                                            pair_coeff=[f"* * {tmp_path}/teacher/gan.snapcoeff "
                                                        f"{tmp_path}/teacher/gan.snapparam Ga N"]))
    labelled = [teacher.label(f) for f in _frames(n_frames)]
    teacher.close()
    (tmp_path / "data").mkdir()
    write_extxyz(tmp_path / "data" / "rattled.xyz", labelled, teacher.header())
    assert np.std([f.energy for f in labelled]) > 1e-3  # the teacher's energies vary: a real test
    return deck, teacher_coef


@pytest.mark.parametrize("chemflag", [0, 1])
def test_two_element_teacher_is_recovered(tmp_path, chemflag):
    deck, teacher_coef = _teacher_data(tmp_path, chemflag)
    ncol = load_settings(deck).bispectrum.ncoeff + 1
    run_cli([deck], tmp_path)
    refit = read_snapcoeff(tmp_path / "gan_refit.snapcoeff")
    assert refit.shape == teacher_coef.shape == (2 * ncol,)
    np.testing.assert_allclose(refit, teacher_coef, rtol=1e-6, atol=1e-8)


def _force_rmse(metrics_csv) -> float:
    import csv

    rows = list(csv.DictReader(open(metrics_csv)))
    return next(float(r["rmse"]) for r in rows if r["group"] == "*ALL" and r["quantity"] == "Force")


def test_total_energy_labels_need_a_constant_per_element(tmp_path):
    """Labels that are DFT total energies (here −200 eV/atom, CP2K's LGPS: −234) need the per-element constant
    that bzeroflag = 0 fits: the refit then recovers the teacher; with bzeroflag = 1 (no constant) the descriptors
    must carry the offset, the forces go wrong, and the fit says why, naming the key."""
    deck, teacher_coef = _teacher_data(tmp_path, constant=-200.0)
    proc = run_cli([deck], tmp_path)
    assert "bzeroflag" not in proc.stdout
    np.testing.assert_allclose(read_snapcoeff(tmp_path / "gan_refit.snapcoeff"), teacher_coef, rtol=1e-6, atol=1e-8)
    exact = _force_rmse(tmp_path / "gan_refit_metrics.csv")
    proc = run_cli([deck, "--overwrite", "-k", "BISPECTRUM", "bzeroflag", "1"], tmp_path)
    assert "the energies average -20" in proc.stdout and "bzeroflag = 0" in proc.stdout
    without_constant = _force_rmse(tmp_path / "gan_refit_metrics.csv")
    assert exact < 1e-6 and without_constant > 0.05, (exact, without_constant)


def _force_and_finite_difference(lmp, atom_id: int, h: float = 1e-5):
    """LAMMPS' force on one atom and −dE/dr of its own energy by central differences (eV/Å)."""
    ids = list(np.array(lmp.lmp.numpy.extract_atom("id")))
    force = np.array(lmp.lmp.numpy.extract_atom("f"))[ids.index(atom_id)].copy()
    lmp.command(f"group one id {atom_id}")
    fd = []
    for k in range(3):
        energies = []
        for sign in (1, -1):
            d = [0.0, 0.0, 0.0]
            d[k] = sign * h
            lmp.commands([f"displace_atoms one move {d[0]} {d[1]} {d[2]} units box", "run 0"])
            energies.append(lmp.lmp.get_thermo("pe"))
            lmp.command(f"displace_atoms one move {-d[0]} {-d[1]} {-d[2]} units box")
        fd.append(-(energies[0] - energies[1]) / (2 * h))
    return force, np.array(fd)


def _write_snapcoeff(path, coef, bs):
    """A .snapcoeff as written, without the writer's tie check (to show what untied coefficients do)."""
    lines = [f"{bs.numtypes} {bs.ncoeff + 1}"]
    for element, radius, weight, values in zip(bs.types, bs.radelem, bs.wj, coef.reshape(bs.numtypes, -1)):
        lines += [f"{element} {radius!r} {weight!r}"] + [repr(float(v)) for v in values]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("quadratic,bnorm", [(0, 1), (0, 0), (1, 1)])
def test_chemflag_pair_styles_are_consistent_exactly_for_tied_coefficients(tmp_path, quadratic, bnorm):
    """With chemflag, pair_style snap (linear and quadratic) and `pair_style mliap model linear descriptor sna`
    return forces equal to central differences of their energy (and to compute snap's rows · coefficients) when
    coefficients are equal within each group of identical columns — as every fit writes them — and forces off by
    0.01-1 eV/Å when they are not (the ties the pair styles assume: issue 19's diagnosis; random untied teacher
    coefficients, which no fit produces, were the old refusal's evidence)."""
    import dataclasses

    from fitsnap_ext.lammps_session import LammpsSession

    deck = tmp_path / "in.gan"
    deck.write_text(_deck(1))
    bs = dataclasses.replace(load_settings(deck).bispectrum, quadraticflag=bool(quadratic),
                             twojmax=2 if quadratic else 4, bnormflag=bool(bnorm))
    rng = np.random.default_rng(0)
    nlin = len(bs.blist) * 8
    untied = np.concatenate([[-3.5 - e] + list(rng.normal(0, 0.02, nlin)) + list(rng.normal(0, 0.002, bs.ncoeff - nlin))
                             for e in range(2)])
    frame = _frames(1)[0]
    n = frame.natoms
    for tied in (True, False):
        coef = tie(untied, bs) if tied else untied
        if tied:  # the writer's files (the .snapparam serves both runs)
            for path, text in snap_files(str(tmp_path / "t"), coef, bs, load_settings(deck).reference).items():
                open(path, "w").write(text)
        else:
            _write_snapcoeff(tmp_path / "t.snapcoeff", coef, bs)
        lmp = LammpsSession()
        lmp.place(frame, ["Ga", "N"])
        lmp.commands(["pair_style snap", f"pair_coeff * * {tmp_path}/t.snapcoeff {tmp_path}/t.snapparam Ga N",
                      f"compute snap all snap {bs.compute_snap_args()}", "run 0"])
        ids = list(np.array(lmp.lmp.numpy.extract_atom("id")))
        rows = lmp.compute_array("snap")[1:1 + 3 * n, :-1].reshape(3 * n, 2, -1)
        snap_force = (np.einsum("rtk,tk->r", rows, coef.reshape(2, -1)[:, 1:])).reshape(n, 3)[ids.index(5)]
        lmp.command("uncompute snap")
        pair_force, fd = _force_and_finite_difference(lmp, 5)
        lmp.close()
        np.testing.assert_allclose(snap_force, fd, atol=1e-6)          # compute snap's rows: the true gradient
        if tied:
            np.testing.assert_allclose(pair_force, fd, atol=1e-6)
        else:
            assert np.max(np.abs(pair_force - fd)) > 1e-2
    if quadratic:
        return
    # the ML-IAP route: the same descriptor in an `mliap ... descriptor sna` file, a linear model
    (tmp_path / "d.sna").write_text(
        f"rcutfac {bs.rcutfac}\ntwojmax {bs.twojmax}\nnelems 2\nelems Ga N\n"
        f"radelems {' '.join(map(str, bs.radelem))}\nwelems {' '.join(map(str, bs.wj))}\n"
        f"rfac0 {bs.rfac0}\nrmin0 {bs.rmin0}\nbzeroflag 0\nswitchflag 1\nchemflag 1\nbnormflag {bnorm}\n")
    for tied in (True, False):
        lin = tie(untied, bs) if tied else untied
        (tmp_path / "m.lin").write_text(f"2 {bs.ncoeff + 1}\n" + "\n".join(repr(float(c)) for c in lin) + "\n")
        lmp = LammpsSession()
        lmp.place(frame, ["Ga", "N"])
        lmp.commands([f"pair_style mliap model linear {tmp_path}/m.lin descriptor sna {tmp_path}/d.sna",
                      "pair_coeff * * Ga N", "run 0"])
        mliap_force, fd = _force_and_finite_difference(lmp, 5)
        lmp.close()
        if tied:
            np.testing.assert_allclose(mliap_force, fd, atol=1e-6)
        else:
            assert np.max(np.abs(mliap_force - fd)) > 1e-2


def test_two_element_network_round_trips_through_lammps(tmp_path):
    """A Ga/N network (one MLP per element; LAMMPS' dgradflag rows carry B_i without per-type column blocks):
    LAMMPS' `mliap model nn` from the exported files gives the torch model's energies, forces and pressures."""
    import io
    import os

    import torch

    from fitsnap_ext.data.dataset import load_entries
    from fitsnap_ext.pipeline import Progress
    from fitsnap_ext.pipeline import run_fit as run_network_fit
    from fitsnap_ext.lammps_session import LammpsSession
    from fitsnap_ext.parallel import world
    from fitsnap_ext.peratom import PerAtomCalculator

    torch.set_num_threads(1)
    deck, _ = _teacher_data(tmp_path, n_frames=8)
    keys = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"), ("PYTORCH", "num_epochs", "3"),
            ("PYTORCH", "layer_sizes", "num_desc 8 1"), ("PYTORCH", "stress_weight", "0.01"),
            ("OUTFILE", "potential", "gan_nn"), ("GROUPS", "rattled", "0.75 0.25 100 1 1e-4")]
    settings = load_settings(deck, keys)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        model = run_network_fit(settings, world(), overwrite=False, progress=Progress(world(), stream=io.StringIO())).model
        calc, session = PerAtomCalculator(settings), LammpsSession()
        errors = []
        for entry in load_entries(settings):
            data = calc.compute(entry)
            assert sorted(set(data.elements.tolist())) == [0, 1]
            energy, forces, pressure = model.network_.predict(data)
            e_lmp, f_lmp, p_lmp = lammps_energy_forces(session, entry.frame, ["Ga", "N"], "gan_nn.mod", pressure=True)
            errors.append((abs(e_lmp - energy - data.ref_energy) / data.natoms,
                           np.abs(f_lmp - forces - data.ref_forces).max(),
                           np.abs(p_lmp - pressure - data.ref_stress).max(), np.abs(f_lmp).max()))
        calc.close()
        session.close()
    finally:
        os.chdir(old)
    e_err, f_err, p_err, f_scale = np.max(errors, axis=0)
    assert e_err <= 1e-8 and f_err <= 1e-6 and p_err <= 1e-2
    assert f_scale > 0.1  # the network's forces are not trivially zero
