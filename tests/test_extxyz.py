"""Extended XYZ reader/writer: exact round trip, units and signs against raw file text, errors, torn appends."""
import os
import re

import numpy as np
import pytest

from fitsnap_ext.data.extxyz import (append_extxyz, frame_to_text, read_extxyz, repair_extxyz, scan_extxyz,
                                     stress_to_bar, write_extxyz)
from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError

from conftest import need_shared

SI_PAPER_VOLUME = ("si_paper", "volume.xyz")
SI_PAPER_MD = ("si_paper", "md_1500K.xyz")
SI_ZUO_ELASTIC = ("si_zuo", "Elastic.extxyz")
GAN_VOLUME = ("gan_paper", "volume.xyz")


def _random_frames(rng, n=4):
    frames = []
    for k in range(n):
        nat = 3 + k
        cell = np.diag(rng.uniform(4, 6, 3)) + rng.normal(0, 0.3, (3, 3)) * np.tri(3, k=-1)
        stress = rng.normal(0, 1e4, (3, 3))
        if k % 2 == 0:
            stress = stress + stress.T  # symmetric; odd frames keep an asymmetric one (must still round-trip)
        frames.append(Frame(symbols=["Si", "Ga", "N", "Si", "Ga", "N", "Si"][:nat],
                            positions=rng.normal(0, 3, (nat, 3)) * np.pi,
                            cell=cell, energy=float(rng.normal(-100, 30)) / 3.0,
                            forces=rng.normal(0, 1, (nat, 3)) / 7.0, stress=stress,
                            pbc=(True, True, k != 3), info={"config_id": f"g:{k}"}))
    frames[0].positions[0, 0] = 1e-300   # extreme values
    frames[0].forces[0, 1] = -0.0
    frames[-1].energy = -1.2345678901234567e5
    return frames


def _assert_same(a: Frame, b: Frame):
    assert a.symbols == b.symbols
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.cell, b.cell)
    assert a.energy == b.energy
    assert np.array_equal(a.forces, b.forces)
    assert np.array_equal(a.stress, b.stress)
    assert tuple(a.pbc) == tuple(b.pbc)


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(7)
    frames = _random_frames(rng)
    header = {"labeler": "lammps", "labeler_settings": '{"pair_style": "sw", "pair_coeff": "* * \\"x y\\" Si"}'}
    path = tmp_path / "rt.xyz"
    write_extxyz(path, frames, header)
    back = read_extxyz(path, "bar", group="g")
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        _assert_same(a, b)
        assert b.group == "g"
        assert b.info["labeler"] == "lammps"
        assert b.info["labeler_settings"] == header["labeler_settings"]
        assert b.info["config_id"] == a.info["config_id"]
    # writing what was read gives the same bytes
    path2 = tmp_path / "rt2.xyz"
    write_extxyz(path2, back, header)
    assert path.read_bytes() == path2.read_bytes()
    # each comment line declares the unit and carries the header
    lines = path.read_text().splitlines()
    assert "stress_unit=bar" in lines[1] and "labeler=" in lines[1]
    # no temporary file left behind
    assert sorted(os.listdir(tmp_path)) == ["rt.xyz", "rt2.xyz"]


def test_append_round_trip_and_torn_tail(tmp_path):
    rng = np.random.default_rng(3)
    frames = _random_frames(rng)
    path = tmp_path / "app.xyz"
    for fr in frames[:3]:
        append_extxyz(path, fr, {"labeler": "x"})
    good = path.read_bytes()
    # simulate a writer killed in the middle of the 4th frame: half of its text
    text = frame_to_text(frames[3], {"labeler": "x"}).encode()
    for cut in (1, 5, len(text) // 2, len(text) - 1):
        with open(path, "ab") as fh:
            fh.write(text[:cut])
        spans, valid_end, size = scan_extxyz(path)
        assert len(spans) == 3 and valid_end == len(good) and size == len(good) + cut
        # a fresh process (no cached size) repairs on append
        from fitsnap_ext.data import extxyz as mod
        mod._VALID_SIZE.clear()
        assert repair_extxyz(path) == cut
        assert path.read_bytes() == good
    with open(path, "ab") as fh:
        fh.write(text[: len(text) // 3])
    from fitsnap_ext.data import extxyz as mod
    mod._VALID_SIZE.clear()
    append_extxyz(path, frames[3], {"labeler": "x"})
    back = read_extxyz(path, "bar")
    assert len(back) == 4
    for a, b in zip(frames, back):
        _assert_same(a, b)


def _raw_stresses(path):
    """Stress numbers as written in the file's comment lines (row-major 3×3), parsed without ASE."""
    out = []
    with open(path) as fh:
        for line in fh:
            if "stress" in line and "Lattice" in line:
                m = re.search(r'stress\s*=\s*"([^"]*)"', line)
                out.append(np.array([float(x) for x in m.group(1).split()]).reshape(3, 3))
    return out


def test_si_paper_stress_is_raw_kbar_times_1000():
    md, volume = need_shared(*SI_PAPER_MD), need_shared(*SI_PAPER_VOLUME)
    frames = read_extxyz(md, "kbar")
    raw = _raw_stresses(md)
    assert len(frames) == len(raw) == 600
    for fr, r in zip(frames, raw):
        assert np.array_equal(fr.stress, r * 1000.0)  # element by element, asymmetric off-diagonals included
    # the file's off-diagonals are not exactly symmetric: the reader must keep the row order of the file
    assert not np.array_equal(raw[0], raw[0].T)
    vol = read_extxyz(volume, "kbar")
    assert len(vol) == 50 and vol[0].natoms == 2
    assert vol[0].energy == -10.81470665
    assert np.array_equal(vol[0].stress, _raw_stresses(volume)[0] * 1000)
    # compressed cell (a = 5.38 Å < 5.47 Å) reads positive pressure
    assert np.trace(vol[0].stress) / 3 > 0 and vol[0].volume < 2 * 5.47 ** 3 / 8


def test_zuo_bar_and_gan_kbar():
    elastic, gan_volume = need_shared(*SI_ZUO_ELASTIC), need_shared(*GAN_VOLUME)
    el = read_extxyz(elastic, "bar", group="Elastic")
    raw = _raw_stresses(elastic)
    assert len(el) == 55 and el[0].natoms == 64 and el[0].group == "Elastic"
    assert np.array_equal(el[0].stress, raw[0])
    assert el[0].forces.shape == (64, 3)
    gan = read_extxyz(gan_volume, "kbar")
    assert len(gan) == 100 and gan[0].symbols[:4] == ["Ga"] * 4
    assert np.array_equal(gan[0].stress, _raw_stresses(gan_volume)[0] * 1000)


def test_units_and_ase_convention():
    s = np.array([[1.0, 0.1, 0.2], [0.1, 2.0, 0.3], [0.2, 0.3, 3.0]])
    assert np.allclose(stress_to_bar(s, "GPa"), s * 1e4)
    assert np.allclose(stress_to_bar(s, "kbar"), s * 1e3)
    # ASE: tension-positive eV/Å^3; 1 eV/Å^3 = 1602176.6 bar
    voigt = np.array([1.0, 2.0, 3.0, 0.3, 0.2, 0.1]) * 1e-3
    assert np.allclose(stress_to_bar(voigt, "eV/A3"), -s * 1e-3 * 1602176.634, rtol=1e-6)
    with pytest.raises(DataError):
        stress_to_bar(s, "atm")


def test_ase_calculator_stress_matches_file(tmp_path):
    """A frame written here, read back by plain ASE, gives ASE's (tension-positive eV/Å^3) stress consistently."""
    import ase.io
    from ase import units
    rng = np.random.default_rng(1)
    fr = _random_frames(rng, 1)[0]
    fr.stress = fr.stress + fr.stress.T
    path = tmp_path / "a.xyz"
    write_extxyz(path, [fr], {})
    atoms = ase.io.read(path, format="extxyz")
    ase_stress = atoms.get_stress(voigt=False)  # ASE took the numbers as they are (no unit/sign change)
    assert np.allclose(ase_stress, fr.stress)
    # the file declares bar: a caller claiming ASE units is refused
    with pytest.raises(DataError, match="stress_unit=bar"):
        read_extxyz(path, "eV/A3")
    # ASE convention: tension-positive eV/Å^3 -> bar pressure-positive
    assert np.allclose(stress_to_bar(-ase_stress * units.bar, "eV/A3"), fr.stress)


def _write(path, text):
    path.write_text(text)
    return path


def test_errors_name_file_and_index(tmp_path):
    good = frame_to_text(Frame(["Si", "Si"], np.zeros((2, 3)) + [[0, 0, 0], [1.3, 1.3, 1.3]], np.eye(3) * 5.4,
                               energy=-10.0, forces=np.zeros((2, 3)), stress=np.eye(3)), {})
    with pytest.raises(DataError, match=r"missing\.xyz.*not found"):
        read_extxyz(tmp_path / "missing.xyz", "bar")
    with pytest.raises(DataError, match="unit"):
        read_extxyz(tmp_path / "any.xyz", None)
    # non-finite energy in the 2nd configuration
    p = _write(tmp_path / "nan_e.xyz", good + good.replace("energy=-10.0", "energy=nan"))
    with pytest.raises(DataError, match=r"nan_e\.xyz:5 \(configuration 1\): non-finite energy"):
        read_extxyz(p, "bar")
    # non-finite force
    bad = good.splitlines()
    bad[3] = bad[3].rsplit(" ", 1)[0] + " inf"
    p = _write(tmp_path / "inf_f.xyz", good + good + "\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"inf_f\.xyz:9 \(configuration 2\): non-finite force on atom 1"):
        read_extxyz(p, "bar")
    # atom count line says 3 but only 2 atoms then another frame
    p = _write(tmp_path / "count.xyz", good + good.replace("2\n", "3\n", 1))
    with pytest.raises(DataError, match=r"count\.xyz:5 \(configuration 1\): the atom count 3 is too large"):
        read_extxyz(p, "bar")
    # unreadable line
    p = _write(tmp_path / "junk.xyz", good + good.replace("Si 1.3", "Si abc", 1))
    with pytest.raises(DataError, match=r"junk\.xyz:8 \(configuration 1\): cannot parse.*'abc'"):
        read_extxyz(p, "bar")
    # a file that declares a unit other than the caller's
    p = _write(tmp_path / "unit.xyz", good)
    with pytest.raises(DataError, match=r"unit\.xyz:1 \(configuration 0\).*stress_unit=bar.*kbar"):
        read_extxyz(p, "kbar")
    assert read_extxyz(p, "bar")[0].energy == -10.0
    # a stress with the wrong number of components
    p = _write(tmp_path / "s5.xyz", good.replace('stress="1.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 1.0"',
                                                 'stress="1 2 3 4 5"'))
    with pytest.raises(DataError, match=r"s5\.xyz:2 \(configuration 0\): cannot parse.*stress"):
        read_extxyz(p, "bar")
    # writing a non-finite value is refused (nothing written)
    fr = read_extxyz(tmp_path / "unit.xyz", "bar")[0]
    fr.energy = float("inf")
    with pytest.raises(DataError):
        write_extxyz(tmp_path / "w.xyz", [fr], {})
    assert not (tmp_path / "w.xyz").exists()
