"""[CALCULATOR] stress_components = diagonal fits σ_xx, σ_yy, σ_zz only: a data set whose shear stresses are garbage
(here the demo set's, swapped and scaled) gives the same model as the clean set — linear and network — while
`all` is pulled by them. (Made for ../shared/data/si_zuo, whose shear stresses are in the wrong components.)"""
import numpy as np
import pytest

from conftest import REPO, fit_in_process

DEMO = REPO / "input_files" / "in.demo"
GROUPS = [("GROUPS", g, "0.5 0.2 100 1 1e-3") for g in
          ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")]


@pytest.fixture(scope="module")
def data_sets(tmp_path_factory):
    """The demo set as shipped, and a copy whose shear stresses are permuted and scaled by −3."""
    from fitsnap_ext.data.extxyz import read_extxyz, write_extxyz

    bad = tmp_path_factory.mktemp("garbage_shear")
    for path in sorted((REPO / "input_files" / "demo").glob("*.xyz")):
        frames = read_extxyz(path, "bar")
        for f in frames:
            s = f.stress.copy()
            f.stress[0, 1] = f.stress[1, 0] = -3 * s[1, 2]
            f.stress[1, 2] = f.stress[2, 1] = -3 * s[0, 2]
            f.stress[0, 2] = f.stress[2, 0] = -3 * s[0, 1]
        write_extxyz(bad / path.name, frames)
    return {"clean": REPO / "input_files" / "demo", "garbage": bad}


def _fit(keys, work):
    return fit_in_process(DEMO, keys, work)


def test_bad_value_is_refused_naming_the_key(tmp_path):
    from fitsnap_ext.config import load_settings
    from fitsnap_ext.errors import DeckError

    with pytest.raises(DeckError, match=r"\[CALCULATOR\] stress_components.*unknown value 'shear'"):
        load_settings(DEMO, [("CALCULATOR", "stress_components", "shear")])


def test_linear_fit_ignores_shear_stresses(data_sets, tmp_path):
    coef = {}
    for data, components in (("clean", "diagonal"), ("garbage", "diagonal"), ("garbage", "all")):
        keys = GROUPS + [("PATH", "dataPath", str(data_sets[data])),
                         ("CALCULATOR", "stress_components", components)]
        coef[data, components] = _fit(keys, tmp_path / f"{data}_{components}").coef
    np.testing.assert_allclose(coef["garbage", "diagonal"], coef["clean", "diagonal"], rtol=1e-9, atol=1e-12)
    assert np.abs(coef["garbage", "all"] - coef["clean", "diagonal"]).max() > 1e-3


@pytest.mark.slow
def test_network_fit_ignores_shear_stresses(data_sets, tmp_path):
    import torch

    torch.set_num_threads(1)
    nn = [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"),
          ("PYTORCH", "layer_sizes", "num_desc 8 1"), ("PYTORCH", "num_epochs", "4"),
          ("PYTORCH", "stress_weight", "0.01"), ("PYTORCH", "save_state_output", "")]
    small = [("GROUPS", g, "0.1 0.05 1 1 1") for g in
             ("volume", "strain_rattle", "strain_rattle_64", "md_300K", "md_1200K", "md_2500K")]
    coef = {}
    for data, components in (("clean", "diagonal"), ("garbage", "diagonal"), ("garbage", "all")):
        keys = nn + small + [("PATH", "dataPath", str(data_sets[data])),
                             ("CALCULATOR", "stress_components", components)]
        coef[data, components] = np.asarray(_fit(keys, tmp_path / f"{data}_{components}").coef)
    np.testing.assert_allclose(coef["garbage", "diagonal"], coef["clean", "diagonal"], rtol=1e-10, atol=1e-12)
    assert np.abs(coef["garbage", "all"] - coef["clean", "diagonal"]).max() > 1e-4
