"""End to end: label configurations with the SNAPs that ship with LAMMPS (Si_Zuo_JPCA2020, linear and
quadratic), refit with their exact settings — the fit must recover the published coefficients (the model class contains the teacher)."""
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, ZUO_BISPECTRUM, read_snapcoeff, run_cli, xyz_refit_deck
from fitsnap_ext.data.extxyz import read_extxyz, write_extxyz
from fitsnap_ext.generate.deck import LabelerSettings
from fitsnap_ext.generate.labelers import LammpsLabeler
from fitsnap_ext.lammps_session import lammps_module


@pytest.mark.parametrize("stem,rcutfac,quadratic,ncoeff", [
    ("Si_Zuo_JPCA2020", 4.9, 0, 56),
    pytest.param("Si_Zuo_JPCA2020.quadratic", 4.8, 1, 1596, marks=pytest.mark.slow),
])
def test_refit_recovers_si_zuo_snap(tmp_path, stem, rcutfac, quadratic, ncoeff):
    potentials = Path(os.path.dirname(lammps_module().__file__)) / "share" / "lammps" / "potentials"
    teacher = LammpsLabeler(LabelerSettings(type="lammps", pair_style="snap", elements=["Si"], masses=[28.0855],
                                            pair_coeff=[f"* * {potentials}/{stem}.snapcoeff "
                                                        f"{potentials}/{stem}.snapparam Si"]))
    groups = []
    (tmp_path / "data").mkdir()
    for name in ("volume", "strain_rattle", "md_1200K", "md_2500K"):
        frames = [teacher.label(f) for f in read_extxyz(REPO / "input_files" / "demo" / f"{name}.xyz", "bar")]
        write_extxyz(tmp_path / "data" / f"{name}.xyz", frames, teacher.header())
        groups.append(f"{name} = 1.0 0.0 100 1 1e-4")
    teacher.close()
    deck = xyz_refit_deck(ZUO_BISPECTRUM.format(rcutfac=rcutfac), "zuo_refit", "\n".join(groups))
    (tmp_path / "in.zuo").write_text(deck.replace("quadraticflag = 0", f"quadraticflag = {quadratic}"))
    run_cli([tmp_path / "in.zuo"], tmp_path)

    published = read_snapcoeff(potentials / f"{stem}.snapcoeff")
    refit = read_snapcoeff(tmp_path / "zuo_refit.snapcoeff")
    assert refit.shape == published.shape == (ncoeff,)
    scale = np.max(np.abs(published[1:]))
    assert abs(refit[0] - published[0]) < 1e-7 * abs(published[0])
    assert np.max(np.abs(refit[1:] - published[1:])) < 1e-7 * scale
    # and the fitting errors are round-off
    errors = {tuple(r.split(",")[:3]): float(r.split(",")[6]) for r in
              (tmp_path / "zuo_refit_metrics.csv").read_text().splitlines()[1:]}
    assert errors[("*ALL", "Train", "Force")] < 1e-8
    assert errors[("*ALL", "Train", "Energy")] < 1e-9
