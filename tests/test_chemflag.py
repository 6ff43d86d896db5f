"""Explicit multi-element SNAP (chemflag): the identical `compute snap` columns, the tied fit, and deployment.

The column groups come from the descriptor's index definition (BispectrumSettings.duplicate_groups); here they are
checked against LAMMPS' own columns, the tied solve against the full least-squares problem, and written potentials
against central differences of their energy.
"""
import numpy as np
import pytest
from ase.build import bulk

from conftest import REPO, need_shared, read_snapcoeff, run_cli
from fitsnap_ext.config import BispectrumSettings
from fitsnap_ext.data.frame import Frame
from fitsnap_ext.descriptors import Rows
from fitsnap_ext.export.snap import snap_files
from fitsnap_ext.lammps_session import LammpsSession
from fitsnap_ext.models.linear import LinearSolver, column_groups


def _settings(types, twojmax, chemflag=True, quadraticflag=False, bnormflag=True, wselfallflag=True,
              bzeroflag=False) -> BispectrumSettings:
    n = len(types)
    return BispectrumSettings(types=tuple(types), twojmax=twojmax, rcutfac=4.0, rfac0=0.99363, rmin0=0.0,
                              wj=tuple(1.0 - 0.1 * i for i in range(n)), radelem=(0.5,) * n, bzeroflag=bzeroflag,
                              quadraticflag=quadraticflag, chemflag=chemflag, wselfallflag=wselfallflag,
                              bnormflag=bnormflag, switchflag=True, switchinnerflag=False, sinner=(), dinner=())


def _group_sizes(labels):
    return np.bincount(np.unique(labels, return_inverse=True)[1])


def test_inp_groups_from_the_index_definition():
    """InP at 2J=6 (the issue's count): 240 columns per element, 188 distinct, 44 groups of equal columns: 36
    pairs (j1 = j2 < j: 6 (j1, j2, j) × 2; j = j1 > j2: 12 × 2) and 8 triples (j1 = j2 = j: 4 × 2)."""
    bs = _settings(("In", "P"), 6)
    sizes = _group_sizes(bs.duplicate_groups())
    assert bs.ncoeff == len(bs.duplicate_groups()) == 240
    assert len(sizes) == 188 and np.sum(sizes > 1) == 44
    assert np.bincount(sizes)[2:].tolist() == [36, 8]
    plain = _settings(("In", "P"), 6, chemflag=False, quadraticflag=True)
    assert len(set(plain.duplicate_groups())) == plain.ncoeff  # no chemflag: nothing is duplicated


def _random_cell(elements, seed=0, rattle=0.2):
    rng = np.random.default_rng(seed)
    atoms = bulk("InP", "zincblende", a=5.87, cubic=True) * (2, 2, 2)
    atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
    symbols = [elements[i] for i in rng.integers(0, len(elements), len(atoms))]
    return Frame(symbols, atoms.positions, atoms.cell.array)


@pytest.mark.parametrize("elements,twojmax,quadratic,bnorm,wselfall", [
    (("A", "B", "C"), 4, False, True, True), (("A", "B", "C"), 4, False, False, False),
    (("A", "B"), 6, False, True, True), (("A", "B"), 2, True, True, False), (("A", "B"), 2, True, False, True)])
def test_groups_are_the_identical_columns_of_compute_snap(elements, twojmax, quadratic, bnorm, wselfall):
    """On a random multi-element cell (64 atoms, 1 + 192 + 6 rows): columns with one label agree to round-off,
    linear columns of different groups differ, for each element block, with and without bnormflag. (Some products
    of different groups coincide too: B(j,0,j; a,b,c) = s_b·P_j(a,c) with s_b the scalar U_0 of element b, so
    e.g. B(000; AAA)·B(101; ABA) = B(000; AAB)·B(101; AAA). Those are collinear columns, not ones that
    pair_style snap needs tied: its forces need equal dE/dB_k within a linear group, which the tied quadratic
    coefficients give.)"""
    bs = _settings(elements, twojmax, quadraticflag=quadratic, bnormflag=bnorm, wselfallflag=wselfall)
    session = LammpsSession()
    session.place(_random_cell(elements), list(elements))
    session.commands(["pair_style zero 10.0", "pair_coeff * *", f"compute snap all snap {bs.compute_snap_args()}",
                      "run 0"])
    snap = session.compute_array("snap")[:, :-1]
    session.close()
    labels = np.asarray(bs.duplicate_groups())
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    for t in range(len(elements)):
        block = snap[:, t * bs.ncoeff:(t + 1) * bs.ncoeff]
        scale = np.abs(block).max()
        assert np.abs(block - block[:, first[inverse]]).max() <= 1e-13 * scale
        distinct = block[:, first[first < len(bs.blist) * len(elements) ** 3]]
        gaps = [np.abs(distinct[:, i + 1:] - distinct[:, [i]]).max(axis=0).min() for i in range(distinct.shape[1] - 1)]
        assert min(gaps) > 1e-6 * scale, min(gaps)


def _duplicated_problem(seed=0):
    """Rows whose columns 1 = 2 and 3 = 4 = 5 (an exactly rank-deficient A) with their group labels."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(200, 4))
    a = base[:, [0, 1, 1, 2, 2, 2, 3]]
    b = base @ rng.normal(size=4) + 0.01 * rng.normal(size=200)
    rows = Rows(a, b, rng.uniform(0.5, 2.0, 200), np.zeros(200, np.int8), np.zeros(200, np.int64))
    return rows, np.array([0, 1, 1, 2, 2, 2, 3])


def test_tied_svd_is_the_full_minimum_norm_solution_with_exact_ties():
    rows, groups = _duplicated_problem()
    tied = LinearSolver("SVD", groups=groups).fit(rows)
    full = np.linalg.lstsq(rows.w[:, None] * rows.a, rows.w * rows.b, rcond=1e-13)[0]
    np.testing.assert_allclose(tied.coef_, full, rtol=1e-10, atol=1e-12)
    assert tied.coef_[1] == tied.coef_[2] and tied.coef_[3] == tied.coef_[4] == tied.coef_[5]
    assert tied.n_free_ == 4 and tied.rank_ == 4


def test_tied_ridge_is_the_full_ridge_solution_with_exact_ties():
    rows, groups = _duplicated_problem(1)
    alpha = 3.0
    tied = LinearSolver("RIDGE", alpha=alpha, groups=groups).fit(rows)
    aw, bw = rows.w[:, None] * rows.a, rows.w * rows.b
    full = np.linalg.solve(aw.T @ aw + alpha * np.eye(aw.shape[1]), aw.T @ bw)
    np.testing.assert_allclose(tied.coef_, full, rtol=1e-10, atol=1e-12)
    assert tied.coef_[3] == tied.coef_[4] == tied.coef_[5]


def test_column_groups_of_the_fit_matrix():
    """Per element: the constant (unless bzeroflag) then compute snap's columns; no label shared across elements."""
    bs = _settings(("In", "P"), 6)
    labels = column_groups(bs)
    assert len(labels) == 2 * 241 and len(np.unique(labels)) == 2 * 189
    assert len(np.unique(column_groups(_settings(("In", "P"), 6, bzeroflag=True)))) == 2 * 188


def test_untied_chemflag_coefficients_are_not_written():
    from fitsnap_ext.config import ReferenceSettings

    bs = _settings(("Ga", "N"), 2)
    coef = np.random.default_rng(0).normal(size=2 * (bs.ncoeff + 1))
    with pytest.raises(ValueError, match="differ within a group"):
        snap_files("x", coef, bs, ReferenceSettings())
    tied = coef.reshape(2, -1).copy()
    _, first, inverse = np.unique(bs.duplicate_groups(), return_index=True, return_inverse=True)
    tied[:, 1:] = tied[:, 1:][:, first[inverse]]
    assert "x.snapcoeff" in snap_files("x", tied.ravel(), bs, ReferenceSettings())


# ----------------------------------------------------------------------------------------------
# FitSNAP's InP example (shared data): the known answer


def _fd_force_error(session, atom_ids, h=1e-4) -> tuple[float, float]:
    """max |F + dE/dx| over the atoms' components, dE/dx by the five-point central difference (error O(h⁴);
    the round-off of a total energy of ~10⁴ eV stays ~1e-8 eV/Å at this h), and max |F| (eV/Å)."""
    lmp = session.lmp
    nlocal = lmp.extract_global("nlocal")
    ids = list(np.array(lmp.numpy.extract_atom("id"))[:nlocal])
    forces = np.array(lmp.numpy.extract_atom("f"))[:nlocal].copy()
    worst = 0.0
    for atom in atom_ids:
        session.command(f"group a{atom} id {atom}")
        for k in range(3):
            energies = []
            for step in (2, 1, -1, -2):
                d = [0.0, 0.0, 0.0]
                d[k] = step * h
                session.commands([f"displace_atoms a{atom} move {d[0]!r} {d[1]!r} {d[2]!r} units box", "run 0"])
                energies.append(lmp.get_thermo("pe"))
                session.command(f"displace_atoms a{atom} move {-d[0]!r} {-d[1]!r} {-d[2]!r} units box")
            gradient = (-energies[0] + 8 * energies[1] - 8 * energies[2] + energies[3]) / (12 * h)
            worst = max(worst, abs(forces[ids.index(atom), k] + gradient))
    return worst, float(np.abs(forces).max())


@pytest.mark.slow
def test_inp_fitsnap_example_coefficients_and_forces(tmp_path):
    """input_files/in.inp (FitSNAP's deck, data path changed): the coefficients FitSNAP wrote in 2021, and the
    written potential's forces (with its ZBL overlay) are the gradient of its energy on a training cell."""
    from fitsnap_ext.data.fitsnap_json import read_fitsnap_json
    from fitsnap_ext.lammps_session import include_commands

    reference = read_snapcoeff(need_shared("inp_fitsnap", "reference", "InP_pot.snapcoeff"))
    run_cli([REPO / "input_files" / "in.inp"], tmp_path)
    ours = read_snapcoeff(tmp_path / "InP_pot.snapcoeff")
    assert ours.shape == reference.shape == (482,)
    assert np.max(np.abs(ours - reference)) / np.max(np.abs(reference)) < 1e-8
    frame = read_fitsnap_json(sorted(need_shared("inp_fitsnap", "JSON", "iIn").glob("*.json"))[0])
    session = LammpsSession()
    session.place(frame, ["In", "P"])
    session.commands([*include_commands(tmp_path / "InP_pot.mod"), "run 0"])
    error, fmax = _fd_force_error(session, (1, 2, 3))
    session.close()
    assert error < 1e-6 and fmax > 0.1, (error, fmax)


# ----------------------------------------------------------------------------------------------
# Teacher recovery of the published InP_JCPA2020 potential

INP_BISPECTRUM = """numTypes = 2
twojmax = 6 6
rcutfac = 1.0
rfac0 = 0.99363
rmin0 = 0.0
wj = 1 0.929316
radelem = 3.81205 3.82945
type = In P
wselfallflag = 1
chemflag = 1
bnormflag = 1
bzeroflag = 1"""

ZBL = """
[REFERENCE]
units = metal
atom_style = atomic
pair_style = hybrid/overlay zero 10.0 zbl 4.0 4.2
pair_coeff1 = * * zero
pair_coeff2 = 1 1 zbl 49 49
pair_coeff3 = 1 2 zbl 49 15
pair_coeff4 = 2 2 zbl 15 15
"""


def _inp_cells(n, seed=0):
    """Strained (±2 %), rattled (0.05 Å) 64-site zinc-blende InP cells, each with one vacancy."""
    rng = np.random.default_rng(seed)
    base = bulk("InP", "zincblende", a=5.869, cubic=True) * (2, 2, 2)
    frames = []
    for _ in range(n):
        atoms = base.copy()
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ (strain + strain.T) / 2, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        del atoms[int(rng.integers(len(atoms)))]
        frames.append(Frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array))
    return frames


@pytest.mark.parametrize("as_shipped", [False, True])
def test_published_inp_potential_is_recovered_from_its_own_labels(tmp_path, as_shipped):
    """Label InP cells with LAMMPS' InP_JCPA2020 (SNAP + ZBL), refit with its settings and ZBL as the reference.

    The shipped file's coefficients are tied only to its 12 printed decimals (groups spread ≤ 5.4e-11), which
    makes its forces differ from its energy's gradient at that level; the refit (condition 5.5e6) moves by up to
    9e-9 from them (1.3e-8 of the largest, 1.8e-5 of the smallest coefficient, 2.4e-5). With each group set to
    its mean (a change ≤ 3.6e-11) the labels are consistent and every coefficient is recovered to 1e-6 relative
    (measured 8.6e-8)."""
    from conftest import xyz_refit_deck
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.extxyz import write_extxyz
    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.labelers import LammpsLabeler
    from fitsnap_ext.lammps_session import potentials_dir

    deck = tmp_path / "in.inp"
    deck.write_text(xyz_refit_deck(INP_BISPECTRUM, "inp_refit", "cells = 1.0 0.0 100 1 1e-4") + ZBL)
    settings = load_settings(deck)
    pot = str(potentials_dir() / "InP_JCPA2020")
    published = read_snapcoeff(f"{pot}.snapcoeff")
    teacher_coef = published
    if not as_shipped:
        per_element = published.reshape(2, -1).copy()
        labels = np.asarray(settings.bispectrum.duplicate_groups())
        for g in np.unique(labels):
            columns = 1 + np.flatnonzero(labels == g)
            per_element[:, columns] = per_element[:, columns].mean(axis=1, keepdims=True)
        assert np.abs(per_element.ravel() - published).max() < 4e-11
        teacher_coef = per_element.ravel()
        pot = str(tmp_path / "tied")
        for path, text in snap_files(pot, per_element[:, 1:].ravel(), settings.bispectrum,
                                     settings.reference).items():
            open(path, "w").write(text)
    teacher = LammpsLabeler(LabelerSettings(
        type="lammps", pair_style="hybrid/overlay zbl 4.0 4.2 snap", elements=["In", "P"], masses=[114.818, 30.974],
        pair_coeff=["1 1 zbl 49 49", "1 2 zbl 49 15", "2 2 zbl 15 15",
                    f"* * snap {pot}.snapcoeff {pot}.snapparam In P"]))
    labelled = [teacher.label(f) for f in _inp_cells(8)]
    teacher.close()
    (tmp_path / "data").mkdir()
    write_extxyz(tmp_path / "data" / "cells.xyz", labelled, teacher.header())
    run_cli([deck], tmp_path)
    refit = read_snapcoeff(tmp_path / "inp_refit.snapcoeff")
    nonzero = teacher_coef != 0
    assert refit.shape == teacher_coef.shape == (482,) and np.all(refit[~nonzero] == 0)
    if as_shipped:
        assert np.max(np.abs(refit - published)) < 1e-7 * np.max(np.abs(published))
    else:
        assert np.max(np.abs(refit - teacher_coef)[nonzero] / np.abs(teacher_coef[nonzero])) < 1e-6


# ----------------------------------------------------------------------------------------------
# A fitted GaN chemflag model on the project's CP2K data: deployment and MPI

GAN_DECK = """[BISPECTRUM]
numTypes = 2
twojmax = 4
rcutfac = 4.7
rfac0 = 0.99363
rmin0 = 0.0
wj = 1.0 0.9
radelem = 0.5 0.5
type = Ga N
chemflag = 1
bnormflag = 1
wselfallflag = 1

[CALCULATOR]
energy = 1
force = 1
stress = 1

[SOLVER]
solver = {solver}

[SCRAPER]
scraper = XYZ
stress_unit = bar

[PATH]
dataPath = {data}

[OUTFILE]
metrics = gan_chem_metrics.md
potential = gan_chem

[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
volume = 0.8 0.2 1000 1 1e-4
md_300K = 0.8 0.2 100 1 1e-4
md_2300K = 0.8 0.2 100 1 1e-4
"""


def _gan_deck(tmp_path, solver="SVD"):
    data = REPO / "input_files" / "data" / "gan"
    if not (data / "md_300K.xyz").exists():
        pytest.skip(f"GaN data not present: {data}")
    deck = tmp_path / "in.gan_chem"
    deck.write_text(GAN_DECK.format(solver=solver, data=data))
    return deck


def _nve_drift(work, frame, steps=1000, dt=0.0005, mod="gan_chem.mod", types=("Ga", "N"),
               masses=(69.723, 14.007)) -> float:
    """Max |E_total(t) − E_total(0)| per atom over `steps` NVE steps (300 K start) with work/`mod`."""
    from fitsnap_ext.lammps_session import include_commands

    session = LammpsSession()
    session.place(frame, list(types), masses=list(masses))
    session.commands([*include_commands(work / mod),
                      "velocity all create 300 4928459 mom yes rot yes dist gaussian", "fix nve all nve",
                      f"timestep {dt}", "variable e equal etotal/atoms", "run 0"])
    energies = [session.lmp.extract_variable("e")]
    for _ in range(steps // 20):
        session.command("run 20 pre no post no")
        energies.append(session.lmp.extract_variable("e"))
    session.close()
    return float(np.max(np.abs(np.array(energies) - energies[0])))


@pytest.mark.parametrize("solver,quadratic", [("SVD", False), ("RIDGE", False), ("RIDGE", True)])
def test_fitted_gan_chemflag_potential_is_tied_and_conserves_energy(tmp_path, solver, quadratic):
    """Written coefficients are equal within every group (whatever the solver; linear 2J=4, quadratic 2J=2);
    pair_style snap's forces equal central differences of its energy (≤ 1e-6 eV/Å; measured 7e-8) on a 2300 K
    frame, and 1000 NVE steps (0.5 fs) of a 128-atom cell with the linear SVD fit drift < 1e-4 eV/atom (9e-6).
    The quadratic model's energy sums large cancelling terms (round-off ~1e-9 eV), so its differences use
    h = 1e-3 Å (five-point: truncation O(h⁴); measured 3e-7 eV/Å, 8e-6 at h = 1e-4)."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.data.extxyz import read_extxyz
    from fitsnap_ext.lammps_session import include_commands

    deck = _gan_deck(tmp_path, solver)
    keys = ["-k", "BISPECTRUM", "twojmax", "2", "-k", "BISPECTRUM", "quadraticflag", "1"] if quadratic else []
    run_cli([deck, *keys], tmp_path)
    bs = load_settings(deck, [tuple(keys[i + 1:i + 4]) for i in range(0, len(keys), 4)]).bispectrum
    coef = read_snapcoeff(tmp_path / "gan_chem.snapcoeff").reshape(2, -1)[:, 1:]
    _, first, inverse = np.unique(bs.duplicate_groups(), return_index=True, return_inverse=True)
    assert np.array_equal(coef, coef[:, first[inverse]]) and np.ptp(coef) > 0
    frames = read_extxyz(REPO / "input_files" / "data" / "gan" / "md_2300K.xyz", "bar")
    session = LammpsSession()
    session.place(frames[-1], ["Ga", "N"])
    session.commands([*include_commands(tmp_path / "gan_chem.mod"), "run 0"])
    error, fmax = _fd_force_error(session, (1, 2, 9), h=1e-3 if quadratic else 1e-4)
    session.close()
    assert error <= 1e-6 and fmax > 0.5, (error, fmax)
    if solver == "SVD" and not quadratic:
        md = read_extxyz(REPO / "input_files" / "data" / "gan" / "md_300K.xyz", "bar")[0]
        big = Frame(list(md.symbols) * 8, np.concatenate([md.positions + np.array([i, j, k]) @ md.cell
                                                          for i in range(2) for j in range(2) for k in range(2)]),
                    2 * md.cell)
        assert _nve_drift(tmp_path, big) < 1e-4


@pytest.mark.mpi
def test_gan_chemflag_fit_under_mpi_equals_serial(tmp_path):
    deck = _gan_deck(tmp_path)
    (tmp_path / "serial").mkdir()
    (tmp_path / "mpi").mkdir()
    run_cli([deck], tmp_path / "serial")
    run_cli([deck], tmp_path / "mpi", nprocs=2)
    serial = read_snapcoeff(tmp_path / "serial" / "gan_chem.snapcoeff")
    parallel = read_snapcoeff(tmp_path / "mpi" / "gan_chem.snapcoeff")
    assert np.max(np.abs(parallel - serial)) <= 1e-10 * np.max(np.abs(serial))


def test_fitted_four_element_lgps_chemflag_potential(tmp_path):
    """A four-element (Li Ge P S) chemflag fit on 12 CP2K frames of LGPS (2J=2, ridge; 1284 columns, 4 × 321):
    written coefficients tied within every group; pair_style snap's forces equal central differences of its
    energy (≤ 1e-6 eV/Å; measured 2.9e-8) on a 900 K frame; 1000 NVE steps (0.5 fs, 300 K start) drift < 1e-4 eV/atom
    (1.5e-5)."""
    import fitsnap_ext as fx
    from fitsnap_ext.lammps_session import include_commands

    data = REPO / "input_files" / "data" / "lgps"
    if not (data / "md_900K.xyz").exists():
        pytest.skip(f"LGPS data not present: {data}")
    frames = fx.read_frames(data / "md_900K.xyz", stress_unit="bar")
    deck = {"BISPECTRUM": {"type": "Li Ge P S", "twojmax": 2, "rcutfac": 4.5, "wj": "0.05 0.7 0.5 0.6",
                           "radelem": 0.5, "chemflag": 1}, "CALCULATOR": {"energy": 1, "force": 1, "stress": 0},
            "GROUPS": {"frames": "1.0 0.0 100 1 1e-4"}}
    model = fx.LinearSNAP(fx.load_deck(deck), solver="RIDGE", alpha=1e-4).fit(frames[:12])
    model.export(tmp_path, "lgps_chem")
    bs = model.settings_.bispectrum
    coef = read_snapcoeff(tmp_path / "lgps_chem.snapcoeff").reshape(4, -1)[:, 1:]
    _, first, inverse = np.unique(bs.duplicate_groups(), return_index=True, return_inverse=True)
    assert coef.shape == (4, 320) and np.array_equal(coef, coef[:, first[inverse]]) and np.ptp(coef) > 0
    session = LammpsSession()
    session.place(frames[-1], ["Li", "Ge", "P", "S"])
    session.commands([*include_commands(tmp_path / "lgps_chem.mod"), "run 0"])
    error, fmax = _fd_force_error(session, (1, 21, 22, 31))  # Li, P, Ge, S
    print(f"\nLGPS chemflag: FD force error {error:.2e} eV/Å (max |F| {fmax:.2f})")
    session.close()
    assert error <= 1e-6 and fmax > 0.5, (error, fmax)
    drift = _nve_drift(tmp_path, frames[-1], mod="lgps_chem.mod", types=("Li", "Ge", "P", "S"),
                       masses=(6.94, 72.63, 30.974, 32.06))
    print(f"LGPS chemflag: NVE drift {drift:.2e} eV/atom over 1000 steps")
    assert drift < 1e-4, drift
