"""FitSNAP's Ta example: our coefficients and errors must equal FitSNAP's published reference."""
import numpy as np
import pytest

from conftest import REPO, need_shared, read_snapcoeff, run_cli

REFERENCE = ("ta_fitsnap", "reference")


def _reference_coefficients():
    return read_snapcoeff(need_shared(*REFERENCE, "Ta_pot.snapcoeff"))


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_ta_coefficients_match_fitsnap(tmp_path, nprocs):
    ref = _reference_coefficients()
    run_cli([REPO / "input_files" / "in.ta"], tmp_path, nprocs=nprocs)
    ours = read_snapcoeff(tmp_path / "Ta_pot.snapcoeff")
    assert ours.shape == (31,)
    assert np.max(np.abs(ours - ref) / np.abs(ref)) < 1e-8


def test_ta_metrics_match_fitsnap(tmp_path):
    """The *ALL energy/force rows of FitSNAP's Ta_metrics.md (unweighted MAE, RMSE)."""
    need_shared(*REFERENCE)
    run_cli([REPO / "input_files" / "in.ta"], tmp_path)
    rows = {tuple(r.split(",")[:3]): r.split(",") for r in (tmp_path / "Ta_metrics.csv").read_text().splitlines()}
    energy = rows[("*ALL", "Train", "Energy")]
    force = rows[("*ALL", "Train", "Force")]
    stress = rows[("*ALL", "Train", "Stress")]
    assert int(energy[4]) == 363 and int(force[4]) == 12672 and int(stress[4]) == 2178
    assert float(energy[5]) == pytest.approx(0.112787, rel=1e-5)
    assert float(energy[6]) == pytest.approx(0.379769, rel=1e-5)
    assert float(force[5]) == pytest.approx(0.0757576, rel=1e-5)
    assert float(force[6]) == pytest.approx(0.160973, rel=1e-5)
    assert float(stress[6]) == pytest.approx(381744, rel=1e-5)


def test_ta_dumps_match_fitsnap_arrays(tmp_path):
    """Descriptors/truth/weights dumps hold FitSNAP's rows (compared as sorted sets: row order differs)."""
    ref_dir = need_shared(*REFERENCE)
    run_cli([REPO / "input_files" / "in.ta", "-k", "EXTRAS", "dump_descriptors", "1",
             "-k", "EXTRAS", "dump_truth", "1", "-k", "EXTRAS", "dump_weights", "1"], tmp_path)
    for ours, theirs in (("Descriptors.npy", "Descriptors.npy"), ("Truth-Ref.npy", "Truth-Ref.npy"),
                         ("Weights.npy", "Weights.npy")):
        a, b = np.load(tmp_path / ours), np.load(ref_dir / theirs)
        assert a.shape == b.shape
        key = lambda x: np.sort(np.round(x.reshape(len(x), -1)[:, -1], 6))  # noqa: E731
        np.testing.assert_allclose(key(a), key(b), rtol=1e-6, atol=1e-9)
