"""CP2K preset: reproduces PBE silicon (lattice constant within 1 % of 5.47 Å) and the sign of its stress.

Slow (5 CP2K runs of an 8-atom cell with 4×4×4 k-points, ~20–80 s each on 2 cores); skipped where cp2k.psmp is
not on PATH. Run with ``pytest -m cp2k tests/test_generate_cp2k.py``.
"""
import shutil

import numpy as np
import pytest

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.generate.cp2k import HARTREE_EV, parse_cp2k_output

OUT_SNIPPET = """
 ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:              -31.491231150632547

 ATOMIC FORCES in [a.u.]

 # Atom   Kind   Element          X              Y              Z
      1      1      Si         -0.01258343    -0.00430273     0.00719378
      2      1      Si          0.01258343     0.00430273    -0.00719378
 SUM OF ATOMIC FORCES           0.00000000     0.00000000     0.00000000     0.00000000

 STRESS| Analytical stress tensor [GPa]
 STRESS|                        x                   y                   z
 STRESS|      x       -3.09483262491E-01  -2.47313736369E-01   1.47266080120E-01
 STRESS|      y       -2.47313736369E-01  -2.72262243188E-01   4.33992873705E-01
 STRESS|      z        1.47266080120E-01   4.33992873705E-01  -2.81168346676E-01
 STRESS| 1/3 Trace                                            -2.87637950785E-01
"""


def test_parse_cp2k_output_units():
    e, f, s = parse_cp2k_output(OUT_SNIPPET, 2)
    assert e == pytest.approx(-31.491231150632547 * HARTREE_EV, rel=1e-15)
    assert f[0, 0] == pytest.approx(-0.01258343 * 51.422067476, rel=1e-9)  # Ha/bohr -> eV/Å (CODATA 2018)
    assert np.allclose(f[0], -f[1])
    assert s[0, 0] == pytest.approx(-3094.83262491, rel=1e-12)  # GPa -> bar, sign kept (pressure-positive)
    assert s[1, 2] == pytest.approx(4339.92873705, rel=1e-12)
    with pytest.raises(Exception, match="force rows"):
        parse_cp2k_output(OUT_SNIPPET, 3)


@pytest.mark.slow
@pytest.mark.cp2k
@pytest.mark.skipif(shutil.which("cp2k.psmp") is None, reason="cp2k.psmp not on PATH")
def test_cp2k_si_lattice_constant_and_stress_sign(tmp_path):
    from ase.eos import EquationOfState

    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.cp2k import Cp2kLabeler
    from fitsnap_ext.generate.structures import load_structure

    lab = Cp2kLabeler(LabelerSettings(type="cp2k"), workdir=str(tmp_path / "runs"))  # the preset's defaults
    lattices = [5.37, 5.42, 5.47, 5.52, 5.57]
    vols, energies, pressures = [], [], []
    for a in lattices:
        fr: Frame = load_structure("si_diamond", lattice=a)
        fr.info["config_id"] = f"eos:{a}"
        out = lab.label(fr)
        vols.append(out.volume)
        energies.append(out.energy)
        pressures.append(np.trace(out.stress) / 3)  # bar, pressure-positive
        assert np.abs(out.forces).max() < 1e-3  # perfect diamond: no forces
    eos = EquationOfState(vols, energies, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    a0 = v0 ** (1 / 3)  # 8-atom cubic cell: V = a^3
    assert a0 == pytest.approx(5.47, rel=0.01)
    # the analytical stress is pressure-positive: compressed cells read positive, stretched negative,
    # and it follows P = -dE/dV of the fitted E(V)
    assert pressures[0] > 0 > pressures[-1]
    h = 1e-3
    for v, p in zip(vols, pressures):
        dedv = (eos.func(v + h, *eos.eos_parameters) - eos.func(v - h, *eos.eos_parameters)) / (2 * h)
        assert p == pytest.approx(-dedv * 1602176.634, abs=1000.0)  # measured: within 40 bar


@pytest.mark.slow
@pytest.mark.cp2k
@pytest.mark.skipif(shutil.which("cp2k.psmp") is None, reason="cp2k.psmp not on PATH")
def test_cp2k_generator_deck(tmp_path):
    """The generator with the CP2K labeler (cheap settings): one rattled frame, header records CP2K settings."""
    import json
    import os
    import subprocess
    import sys

    from fitsnap_ext.data.extxyz import read_extxyz
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    deck = tmp_path / "gen_cp2k.in"
    deck.write_text("""[GENERATE]
output = out
seed = 3

[LABELER]
type = cp2k
cutoff = 250
rel_cutoff = 40
kpoints = 2 2 2
mpi_ranks = 2

[GROUP r]
sampler = strain_rattle
structure = si_diamond_primitive
rattle = 0.05
n_frames = 1
""")
    env = dict(os.environ, PYTHONPATH=root)
    r = subprocess.run([sys.executable, "-m", "fitsnap_ext", "generate", str(deck)], env=env, cwd=root,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    fr = read_extxyz(tmp_path / "out" / "r.xyz", "bar")
    assert len(fr) == 1 and fr[0].info["labeler"] == "cp2k"
    settings = json.loads(fr[0].info["labeler_settings"])
    assert settings["xc"] == "PBE" and settings["cutoff_Ry"] == 250.0 and settings["kpoints"] == [2, 2, 2]
    assert -110 < fr[0].energy / 2 < -100  # CP2K GTH total energies: about -107 eV/atom for Si
    assert np.abs(fr[0].forces.sum(axis=0)).max() < 0.02
    assert not os.listdir(tmp_path / "out" / ".cp2k")  # scratch cleaned


FULL_INPUT = """&GLOBAL
  PROJECT fx
  RUN_TYPE ENERGY_FORCE
  PRINT_LEVEL LOW
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  STRESS_TENSOR ANALYTICAL
  &DFT
    WFN_RESTART_FILE_NAME /w/guess.kp
    BASIS_SET_FILE_NAME /data/BASIS_MOLOPT
    POTENTIAL_FILE_NAME /data/GTH_POTENTIALS
    &MGRID
      CUTOFF 400.0
      REL_CUTOFF 50.0
      NGRIDS 4
    &END MGRID
    &QS
      EPS_DEFAULT 1e-12
      EXTRAPOLATION USE_GUESS
    &END QS
    &SCF
      SCF_GUESS RESTART
      EPS_SCF 1e-07
      MAX_SCF 100
      ADDED_MOS 20
      &DIAGONALIZATION ON
        ALGORITHM STANDARD
      &END DIAGONALIZATION
      &MIXING
        METHOD BROYDEN_MIXING
        ALPHA 0.4
        NBROYDEN 8
      &END MIXING
      &SMEAR ON
        METHOD FERMI_DIRAC
        ELECTRONIC_TEMPERATURE [K] 300.0
      &END SMEAR
    &END SCF
    &KPOINTS
      SCHEME MONKHORST-PACK 2 2 1
      SYMMETRY OFF
      FULL_GRID OFF
    &END KPOINTS
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
  &END DFT
  &SUBSYS
    &CELL
      A 4.0 0.0 0.0
      B 0.5 4.0 0.0
      C 0.0 0.0 10.0
      PERIODIC XY
    &END CELL
    &COORD
      Si 0.0 0.0 0.0
      Si 1.25 1.5 1.75
    &END COORD
    &KIND Si
      BASIS_SET DZVP-MOLOPT-SR-GTH
      POTENTIAL GTH-PBE
    &END KIND
  &END SUBSYS
  &PRINT
    &FORCES ON
    &END FORCES
    &STRESS_TENSOR ON
    &END STRESS_TENSOR
  &END PRINT
&END FORCE_EVAL
"""


def test_full_input_text():
    """The whole input of a 2-atom cell periodic in x and y, a 2x2x1 mesh, Fermi-Dirac smearing and a restart
    guess: every section in CP2K's order, Å coordinates as given, 20 added MOs by default with smearing."""
    from fitsnap_ext.generate.cp2k import cp2k_input
    from fitsnap_ext.generate.deck import LabelerSettings

    frame = Frame(symbols=["Si", "Si"], positions=np.array([[0.0, 0.0, 0.0], [1.25, 1.5, 1.75]]),
                  cell=np.array([[4.0, 0.0, 0.0], [0.5, 4.0, 0.0], [0.0, 0.0, 10.0]]), energy=0.0,
                  forces=np.zeros((2, 3)), stress=None, pbc=(True, True, False))
    s = LabelerSettings(type="cp2k", kpoints=[2, 2, 1], smearing=300.0)
    assert cp2k_input(frame, s, "/data", guess_file="/w/guess.kp") == FULL_INPUT


def test_ot_solver_input_and_its_deck_checks(tmp_path):
    """scf = ot writes an orbital-transformation SCF (no diagonalisation, no mixing) and is refused with k-points
    or smearing, naming the deck key; the default input is unchanged (diagonalisation + Broyden mixing)."""
    from fitsnap_ext.errors import DeckError
    from fitsnap_ext.generate.cp2k import cp2k_input
    from fitsnap_ext.generate.deck import LabelerSettings, load_deck
    from fitsnap_ext.generate.structures import load_structure

    frame = load_structure("si_diamond", lattice=5.43)
    ot = cp2k_input(frame, LabelerSettings(type="cp2k", kpoints=[1, 1, 1], scf="ot"), "/data")
    assert "&OT ON" in ot and "&OUTER_SCF" in ot and "DIAGONALIZATION" not in ot and "MIXING" not in ot
    assert "&KPOINTS" not in ot
    diag = cp2k_input(frame, LabelerSettings(type="cp2k"), "/data")
    assert "&DIAGONALIZATION ON" in diag and "BROYDEN_MIXING" in diag and "&OT" not in diag
    deck = tmp_path / "gen.in"
    base = "[GENERATE]\noutput = out\n\n[LABELER]\ntype = cp2k\nscf = ot\n{extra}\n[GROUP a]\nsampler = strain_rattle\n" \
           "structure = si_diamond\nn_frames = 1\n"
    deck.write_text(base.format(extra="kpoints = 1 1 1\n"))
    assert load_deck(deck).labeler.scf == "ot"
    deck.write_text(base.format(extra="kpoints = 2 2 2\n"))
    with pytest.raises(DeckError, match=r"\[LABELER\] scf.*Gamma-only"):
        load_deck(deck)


def test_restart_guess_input_and_deck_check(tmp_path):
    """scf_guess = restart names the kept wavefunction (SCF_GUESS RESTART); without a file the guess is atomic;
    a misspelt value is refused naming the key."""
    from fitsnap_ext.errors import DeckError
    from fitsnap_ext.generate.cp2k import cp2k_input
    from fitsnap_ext.generate.deck import LabelerSettings, load_deck, load_labeler
    from fitsnap_ext.generate.structures import load_structure

    frame = load_structure("si_diamond", lattice=5.43)
    s = LabelerSettings(type="cp2k", kpoints=[1, 1, 1], scf="ot", scf_guess="restart")
    text = cp2k_input(frame, s, "/data", guess_file="/w/guess-x.wfn")
    assert "WFN_RESTART_FILE_NAME /w/guess-x.wfn" in text and "SCF_GUESS RESTART" in text
    assert "SCF_GUESS ATOMIC" in cp2k_input(frame, s, "/data") and "WFN_RESTART" not in cp2k_input(frame, s, "/data")
    deck = tmp_path / "gen.in"
    deck.write_text("[GENERATE]\noutput = out\n\n[LABELER]\ntype = cp2k\nscf_guess = previous\n\n[GROUP a]\n"
                    "sampler = strain_rattle\nstructure = si_diamond\nn_frames = 1\n")
    with pytest.raises(DeckError, match=r"\[LABELER\] scf_guess.*atomic, restart"):
        load_deck(deck)
    with pytest.raises(DeckError, match=r"\[LABELER\] scf_guess.*atomic, restart"):
        load_labeler(deck)  # the [LABELER] alone (make_ordered.py confirm) is validated the same way


@pytest.mark.slow
@pytest.mark.cp2k
@pytest.mark.skipif(shutil.which("cp2k.psmp") is None, reason="cp2k.psmp not on PATH")
def test_restart_guess_gives_the_atomic_guess_labels_in_fewer_steps(tmp_path):
    """Starting each SCF from the previous configuration's wavefunction changes nothing beyond the SCF tolerance
    and saves SCF steps (measured on 8-atom Si at Γ with OT: 125 → 41 steps, ΔF 8e-5 eV/Å, ΔE 1e-10 eV)."""
    from fitsnap_ext.generate.cp2k import Cp2kLabeler
    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.structures import load_structure

    labels, steps = {}, {}
    for guess in ("atomic", "restart"):
        lab = Cp2kLabeler(LabelerSettings(type="cp2k", cutoff=200, rel_cutoff=30, kpoints=[1, 1, 1], scf="ot",
                                          scf_guess=guess, mpi_ranks=1), workdir=str(tmp_path / guess))
        labels[guess], steps[guess] = [], []
        for i in range(2):
            fr = load_structure("si_diamond", lattice=5.43)
            fr.positions = fr.positions + np.random.default_rng(i).normal(0, 0.05, fr.positions.shape)
            fr.info["config_id"] = f"c{i}"
            labels[guess].append(lab.label(fr))
            steps[guess].append(lab.last_scf_steps)
        assert lab.settings.get("scf_guess") == (None if guess == "atomic" else "restart")
    assert steps["restart"][0] == steps["atomic"][0]  # nothing to restart from: the atomic guess
    assert steps["restart"][1] < 0.7 * steps["atomic"][1]
    a, r = labels["atomic"][1], labels["restart"][1]
    assert abs(a.energy - r.energy) < 1e-6
    assert np.abs(a.forces - r.forces).max() < 1e-3
    assert np.abs(a.stress - r.stress).max() < 20.0  # bar
