"""Ensemble export: K networks → one `mliap model nn` network equal to their mean (numpy, then LAMMPS)."""
import numpy as np
import pytest

from conftest import REPO, lammps_energy_forces
from fitsnap_ext.export.ensemble import Member, combine_members, ensemble_mliap_files

ACT = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0)}


def nn_energy(layers, scale0, scale1, activation, x):
    """Per-atom energy of one element's network as LAMMPS' mliap model nn evaluates it."""
    h = (x - scale0) / scale1
    for w, b in layers[:-1]:
        h = ACT[activation](h @ w.T + b)
    w, b = layers[-1]
    return h @ w.T[:, 0] + b[0]


def random_members(rng, k, sizes, n_elements, mean, sd):
    """k members with layer sizes `sizes` (ndesc first) and their own standardisation around (mean, sd)."""
    members = []
    for _ in range(k):
        layers = [[(rng.normal(size=(o, i)) / np.sqrt(i), 0.3 * rng.normal(size=o)) for i, o in zip(sizes, sizes[1:])]
                  for _ in range(n_elements)]
        scale0 = mean + 0.5 * sd * rng.normal(size=(n_elements, sizes[0]))
        scale1 = sd * rng.uniform(0.5, 2.0, size=(n_elements, sizes[0]))
        members.append(Member(layers, scale0, scale1))
    return members


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_combined_network_is_the_mean(activation):
    rng = np.random.default_rng(1)
    mean, sd = rng.uniform(-50, 50, size=7), rng.uniform(0.1, 5, size=7)
    members = random_members(rng, 3, [7, 6, 5, 1], 2, mean, sd)
    combined = combine_members(members)
    assert [w.shape for w, _ in combined.layers[0]] == [(18, 7), (15, 18), (1, 15)]
    x = mean + sd * rng.normal(size=(500, 7))
    for e in range(2):
        want = np.mean([nn_energy(m.layers[e], m.scale0[e], m.scale1[e], activation, x) for m in members], axis=0)
        got = nn_energy(combined.layers[e], combined.scale0[e], combined.scale1[e], activation, x)
        assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
        assert np.abs(want).max() > 0.1


def test_equal_scales_and_one_member_are_exact():
    """Members with member 0's scales keep their first layer bit for bit; K = 1 gives the member itself."""
    rng = np.random.default_rng(2)
    members = random_members(rng, 2, [4, 3, 1], 1, np.zeros(4), np.ones(4))
    same = [members[0], Member(members[1].layers, members[0].scale0, members[0].scale1)]
    combined = combine_members(same)
    np.testing.assert_array_equal(combined.layers[0][0][0][3:], members[1].layers[0][0][0])
    single = combine_members(members[:1])
    for (w, b), (w1, b1) in zip(single.layers[0], members[0].layers[0]):
        np.testing.assert_array_equal(w, w1)
        np.testing.assert_array_equal(b, b1)


def test_different_architectures_are_refused():
    rng = np.random.default_rng(3)
    a = random_members(rng, 1, [4, 3, 1], 1, np.zeros(4), np.ones(4))
    b = random_members(rng, 1, [4, 5, 1], 1, np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="same architecture"):
        combine_members(a + b)


def rattled_si(seed=0):
    """64-atom diamond Si (a = 5.431 Å), every atom displaced by N(0, 0.1 Å)."""
    from fitsnap_ext.data.frame import Frame

    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                     [.25, .25, .25], [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])
    cells = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    pos = (base[None] + cells[:, None]).reshape(-1, 3) * 5.431
    pos += np.random.default_rng(seed).normal(scale=0.1, size=pos.shape)
    return Frame(["Si"] * len(pos), pos, np.eye(3) * 2 * 5.431)


def test_lammps_round_trip(tmp_path):
    """pair_style mliap with the combined files = mean of the members run one by one in LAMMPS (2J = 2, K = 3,
    members 2×8 tanh with different standardisations) on a rattled 64-atom Si cell."""
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.export.files import write_all
    from fitsnap_ext.export.mliap import mliap_files
    from fitsnap_ext.lammps_session import LammpsSession

    settings = load_settings(REPO / "input_files" / "in.demo", [("BISPECTRUM", "twojmax", "2")])
    bs, ref = settings.bispectrum, settings.reference
    frame = rattled_si()
    with LammpsSession() as session:
        session.place(frame, ["Si"])
        session.commands(["pair_style zero 10.0", "pair_coeff * *",
                          f"compute b all sna/atom {bs.compute_snap_args()}", "run 0"])
        desc = session.compute_peratom_array("b")
    assert desc.shape == (64, bs.ncoeff)
    members = random_members(np.random.default_rng(4), 3, [bs.ncoeff, 8, 8, 1], 1, desc.mean(0), desc.std(0))
    files = {}
    for k, m in enumerate(members):
        files.update(mliap_files(str(tmp_path / f"m{k}"), m.layers, m.scale0, m.scale1, "tanh", bs, ref))
    files.update(ensemble_mliap_files(str(tmp_path / "ens"), members, "tanh", bs, ref))
    write_all(files)
    assert "NET 5 3 tanh 24 tanh 24 linear 1" in (tmp_path / "ens.mliap.model").read_text()
    results = []
    for name in ("m0", "m1", "m2", "ens"):
        with LammpsSession() as session:
            results.append(lammps_energy_forces(session, frame, ["Si"], tmp_path / f"{name}.mod"))
    e_mean = np.mean([e for e, _ in results[:3]])
    f_mean = np.mean([f for _, f in results[:3]], axis=0)
    e_ens, f_ens = results[3]
    spread = np.std([e for e, _ in results[:3]]) / 64
    print(f"\nensemble round trip: |ΔE| = {abs(e_ens - e_mean) / 64:.1e} eV/atom, max |ΔF| = "
          f"{np.abs(f_ens - f_mean).max():.1e} eV/Å (member spread {spread:.2f} eV/atom, "
          f"|F| up to {np.abs(f_mean).max():.2f} eV/Å)")
    assert abs(e_ens - e_mean) / 64 <= 1e-10
    assert np.abs(f_ens - f_mean).max() <= 1e-9
    # the check has teeth: members differ and forces are not zero
    assert spread > 1e-2 and np.abs(f_mean).max() > 1e-2
    np.testing.assert_allclose(e_mean / 64, np.mean([nn_energy(m.layers[0], m.scale0[0], m.scale1[0], "tanh", desc)
                                                     for m in members]), rtol=1e-12)
