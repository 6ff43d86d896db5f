"""benchmarks/audit_stress.py finds shear stresses stored in the wrong components: on the demo set (Stillinger-Weber
labels) the stored stresses match SW's exactly, and after swapping xy and yz in the file the audit names that swap."""
import importlib.util
import itertools


from conftest import REPO


def _audit_module():
    spec = importlib.util.spec_from_file_location("audit_stress", REPO / "benchmarks" / "audit_stress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_audit_names_the_swapped_shear_components(sw_mod, tmp_path):
    from fitsnap_ext.data.extxyz import read_extxyz, write_extxyz
    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.labelers import LammpsLabeler

    audit = _audit_module()
    original = REPO / "input_files" / "demo" / "strain_rattle.xyz"
    frames = read_extxyz(original, "bar")
    for f in frames:
        s = f.stress.copy()
        f.stress[0, 1] = f.stress[1, 0] = s[1, 2]
        f.stress[1, 2] = f.stress[2, 1] = s[0, 1]
    swapped = tmp_path / "swapped.xyz"
    write_extxyz(swapped, frames)
    labeler = LammpsLabeler(LabelerSettings(type="lammps", mod=str(sw_mod), elements=["Si"], masses=[28.0855]))
    try:
        clean = audit.audit_file(original, labeler, "bar")
        bad = audit.audit_file(swapped, labeler, "bar")
    finally:
        labeler.close()
    assert clean["model_rms"] > 1e4                           # the rattled cells carry real shear stresses
    assert clean["rms"][(0, 1, 2)] < 1e-3                     # bar: the demo labels are SW's own
    assert bad["rms"][(2, 1, 0)] < 1e-3                       # stored yz, xz, xy are the true xy, xz, yz
    assert min(v for p, v in bad["rms"].items() if p != (2, 1, 0)) > 1e3
    assert set(bad["rms"]) == set(itertools.permutations(range(3)))
