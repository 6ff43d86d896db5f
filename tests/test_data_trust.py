"""Bad training data gets a DataError naming the file, the line (text formats) and the configuration; valid but
unusual data (left-handed cells, non-periodic clusters) is fitted as what it is."""
import json

import numpy as np
import pytest

from conftest import run_cli
from fitsnap_ext.config import load_settings
from fitsnap_ext.data.dataset import load_entries
from fitsnap_ext.data.extxyz import frame_to_text, read_extxyz
from fitsnap_ext.data.fitsnap_json import read_fitsnap_json
from fitsnap_ext.data.frame import Frame
from fitsnap_ext.errors import DataError, DeckError

A = 5.431  # Å, diamond Si
FCC = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
DIAMOND = np.vstack([FCC, FCC + 0.25])  # fractional


def _si(seed=0, n=8, cell=None, pbc=(True, True, True), symbols=None) -> Frame:
    """A rattled diamond Si cell (or its first `n` atoms) with arbitrary labels."""
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * A if cell is None else np.asarray(cell, float)
    positions = (DIAMOND[:n] @ (np.eye(3) * A)) + rng.normal(0, 0.05, (n, 3))
    stress = rng.normal(0, 1e3, (3, 3))
    return Frame(symbols or ["Si"] * n, positions, cell, energy=-4.3 * n + rng.normal(), pbc=pbc,
                 forces=rng.normal(0, 0.5, (n, 3)), stress=stress + stress.T)


def _xyz(path, frames):
    path.write_text("".join(frame_to_text(f) for f in frames))
    return path


def _json_text(frame: Frame) -> str:
    data = {"Positions": frame.positions.tolist(), "Lattice": frame.cell.tolist(), "Energy": frame.energy,
            "AtomTypes": frame.symbols, "Forces": frame.forces.tolist(), "Stress": frame.stress.tolist(),
            "NumAtoms": frame.natoms}
    return "# a FitSNAP comment line\n" + json.dumps({"Dataset": {"Data": [data]}}, indent=1)


SW_REFERENCE = """
[REFERENCE]
pair_style = hybrid/overlay zero 6.0 sw
pair_coeff1 = * * zero
pair_coeff2 = * * sw Si.sw Si
"""


def _deck(tmp_path, groups, types="Si", stress=1, scraper="XYZ", reference="") -> object:
    """A linear deck over ./data: `groups` maps a group name to its frames (written as <name>.xyz, or as a
    folder of JSON files with scraper JSON); the loaded Settings."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for name, frames in groups.items():
        if scraper == "XYZ":
            _xyz(data / f"{name}.xyz", frames)
        else:
            (data / name).mkdir()
            for i, frame in enumerate(frames):
                (data / name / f"c{i}.json").write_text(_json_text(frame))
    ntypes = len(types.split())
    deck = tmp_path / "in.deck"
    deck.write_text(f"""[BISPECTRUM]
numTypes = {ntypes}
twojmax = 4
rcutfac = 4.0
rfac0 = 0.99363
rmin0 = 0
wj = {" ".join(["1.0"] * ntypes)}
radelem = {" ".join(["0.5"] * ntypes)}
type = {types}

[CALCULATOR]
energy = 1
force = 1
stress = {stress}

[SOLVER]
solver = SVD

[SCRAPER]
scraper = {scraper}
{"stress_unit = bar" if scraper == "XYZ" else ""}

[PATH]
dataPath = data

[OUTFILE]
metrics = pot_metrics.md
potential = pot
{reference}
[GROUPS]
group_sections = name training_size testing_size eweight fweight vweight
group_types = str float float float float float
""" + "".join(f"{name} = 1.0 0.0 1 1 1e-6\n" for name in groups))
    return deck


# ------------------------------------------------------------------------------------------- unreadable files

def test_binary_json_names_file_line_and_configuration(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"# comment\n{\"Dataset\": \xff\xfe\x00}")
    with pytest.raises(DataError) as err:
        read_fitsnap_json(path, "g", 3)
    assert str(err.value) == f"{path}:2 (configuration 3): not a text file (byte 0xff is not UTF-8)"


@pytest.mark.parametrize("text,words", [
    ("# c\n{\"Dataset\": {\"Data\": [\n{\"Energy\": 1,}]}}", ":3 (configuration 0): not valid JSON"),
    ("[1, 2]", ":1 (configuration 0): not a FitSNAP JSON configuration: no JSON object after the first line"),
    ('{"Dataset": [1, 2]}', " (configuration 0): not a FitSNAP JSON configuration"),
    ('{"Dataset": {"Data": []}}', " (configuration 0): not a FitSNAP JSON configuration"),
    ('{"Dataset": {"Data": [1]}}', " (configuration 0): not a FitSNAP JSON configuration"),
    ('{"Dataset": {"Data": [{"Energy": 1}]}}', " (configuration 0): missing key 'Positions'"),
    ('{"Dataset": {"Data": [{"Energy": 1, "Positions": [[0, 0, 0]], "Lattice": [[1, 0, 0]], '
     '"AtomTypes": "Si"}]}}', " (configuration 0): AtomTypes must be a list"),
    ('{"Dataset": {"Data": [{"Energy": 1, "Positions": [[0, 0, 0]], "Lattice": [[1, 0, 0]], '
     '"AtomTypes": ["Xx"]}]}}', " (configuration 0): unknown element 'Xx'"),
    ('{"Dataset": {"Data": [{"Energy": "x", "Positions": [[0, 0, 0]], "Lattice": [[1, 0, 0]], '
     '"AtomTypes": ["Si"]}]}}', " (configuration 0): malformed arrays"),
    ('{"Dataset": {"Data": [{"Energy": 1' + "0" * 400 + ', "Positions": [[0, 0, 0]], "Lattice": [[1, 0, 0]], '
     '"AtomTypes": ["Si"]}]}}', " (configuration 0): malformed arrays"),
])
def test_malformed_json_is_a_data_error(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_fitsnap_json(path, "g", 0)
    assert str(err.value).startswith(f"{path}{words}"), str(err.value)


def test_binary_extxyz_names_line_and_configuration(tmp_path):
    good = frame_to_text(_si(n=2))  # 4 lines a configuration
    path = tmp_path / "bin.xyz"
    path.write_bytes(good.encode() + good.encode().replace(b"Si ", b"S\xe9 ", 1))
    with pytest.raises(DataError) as err:
        read_extxyz(path, "bar")
    assert str(err.value) == f"{path}:7 (configuration 1): not a text file (byte 0xe9 is not UTF-8)"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"bin\.xyz:1 \(configuration 0\): not a text file"):
        read_extxyz(path, "bar")


@pytest.mark.parametrize("count,message", [
    (1, ":5 (configuration 1): the atom count 1 is too small: line 8 holds another atom"),
    (3, ":5 (configuration 1): the atom count 3 is too large: line 9 holds the next count after 2 atom lines"),
])
def test_atom_count_off_by_one_names_the_real_configuration(tmp_path, count, message):
    """Three 2-atom configurations (lines 1-4, 5-8, 9-12); the middle one's count is off by one."""
    texts = [frame_to_text(_si(seed=k, n=2)) for k in range(3)]
    texts[1] = f"{count}\n" + texts[1].split("\n", 1)[1]
    path = tmp_path / "count.xyz"
    path.write_text("".join(texts))
    with pytest.raises(DataError) as err:
        read_extxyz(path, "bar")
    text = str(err.value)
    assert text.startswith(f"{path}{message}"), text
    assert len(text) - len(str(path)) < 160, text  # a quoted line is cut, not 300 characters


def test_garbage_count_line_is_quoted_short(tmp_path):
    path = tmp_path / "long.xyz"
    path.write_text(frame_to_text(_si(n=2)) + "x" * 300 + "\n")
    with pytest.raises(DataError) as err:
        read_extxyz(path, "bar")
    assert str(err.value) == f"{path}:5 (configuration 1): expected the number of atoms, got '{'x' * 60}...'"


def test_unknown_element_in_extxyz(tmp_path):
    frames = [_si(seed=0, n=2), _si(seed=1, n=3)]
    text = "".join(frame_to_text(f) for f in frames).split("\n")
    text[8] = text[8].replace("Si", "Xx", 1)  # 3rd atom of the 2nd configuration (lines 5-9)
    path = tmp_path / "xx.xyz"
    path.write_text("\n".join(text))
    with pytest.raises(DataError) as err:
        read_extxyz(path, "bar")
    assert str(err.value) == f"{path}:9 (configuration 1): unknown element 'Xx'"


@pytest.mark.parametrize("kind", ["xyz", "json"])
def test_corrupted_files_give_only_data_errors(tmp_path, kind):
    """300 seeded random corruptions (bytes changed, cut, inserted, lines split) of a valid file: each is read
    or refused with a one-line DataError naming the file and the configuration, never another exception."""
    rng = np.random.default_rng(11)
    if kind == "xyz":
        good = "".join(frame_to_text(_si(k, n=3)) for k in range(3)).encode()
        read = lambda path: read_extxyz(path, "bar")  # noqa: E731
    else:
        good = _json_text(_si(0, n=3)).encode()
        read = lambda path: read_fitsnap_json(path, "g", 0)  # noqa: E731
    path = tmp_path / f"c.{kind}"
    refused = 0
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            at, op = int(rng.integers(len(data))), rng.integers(4)
            if op == 0:
                data[at] = int(rng.integers(256))
            elif op == 1:
                del data[at:at + int(rng.integers(1, 20))]
            else:
                data[at:at] = b"\n" if op == 2 else bytes(rng.integers(0, 256, 3).tolist())
        path.write_bytes(bytes(data))
        try:
            read(path)
        except DataError as exc:
            refused += 1
            assert str(exc).startswith(str(path)) and "(configuration " in str(exc), str(exc)
            assert len(str(exc).splitlines()) == 1 and len(str(exc)) < len(str(path)) + 200, str(exc)
    assert refused > 200


# ------------------------------------------------------------------------------------------- data in the fit

def test_element_in_type_but_not_in_data_is_a_deck_error(tmp_path):
    deck = _deck(tmp_path, {"bulk": [_si(0), _si(1)]}, types="Si Ge")
    with pytest.raises(DeckError) as err:
        load_entries(load_settings(deck))
    line = deck.read_text().splitlines().index("type = Si Ge") + 1
    assert str(err.value) == (f"{deck}:{line}: [BISPECTRUM] type: element 'Ge' is in type but in none of the 2 "
                              "configurations of the fit (data: Si)")


def test_element_in_data_but_not_in_type_is_a_data_error(tmp_path):
    frames = [_si(0), _si(1, symbols=["Si"] * 7 + ["Ge"])]
    deck = _deck(tmp_path, {"bulk": frames})
    with pytest.raises(DataError) as err:
        load_entries(load_settings(deck))
    assert str(err.value) == (f"{tmp_path / 'data' / 'bulk.xyz'}:11 (configuration 1): element(s) Ge not in "
                              "[BISPECTRUM] type (Si)")


@pytest.mark.parametrize("scraper", ["XYZ", "JSON"])
def test_coincident_atoms_across_the_boundary_are_refused(tmp_path, scraper):
    bad = _si(1)
    bad.positions[5] = bad.positions[2] + [A - 0.04, 0.0, 0.03]  # 0.05 Å from atom 2's periodic image
    deck = _deck(tmp_path, {"bulk": [_si(0), bad]}, scraper=scraper)
    with pytest.raises(DataError) as err:
        load_entries(load_settings(deck))
    where = "bulk.xyz:11" if scraper == "XYZ" else "bulk/c1.json"
    assert str(err.value) == (f"{tmp_path / 'data' / where} (configuration 1): atoms 2 and 5 are 0.05 Å apart "
                              "(closer than 0.1 Å: the same atom twice?)")


def test_non_periodic_frame_with_stress_rows_is_refused(tmp_path):
    deck = _deck(tmp_path, {"bulk": [_si(0), _si(1, pbc=(True, True, False))]})
    with pytest.raises(DataError) as err:
        load_entries(load_settings(deck))
    assert str(err.value).startswith(f"{tmp_path / 'data' / 'bulk.xyz'}:11 (configuration 1): a configuration "
                                     "that is not periodic in every direction (pbc = T T F) has no stress")


def _rows(deck):
    from fitsnap_ext.descriptors import SnapCalculator

    settings = load_settings(deck)
    entries = load_entries(settings)
    calc = SnapCalculator(settings)
    try:
        return entries, [calc.rows(e) for e in entries]
    finally:
        calc.close()


def _in_frame(rows, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """A force rows' block and target, rotated back from LAMMPS' frame to the frame's own coordinates."""
    from fitsnap_ext.lammps_session import lammps_frame

    rot = lammps_frame(frame.cell, frame.positions, frame.pbc).rotation
    n = frame.natoms
    a = rows.a[1:1 + 3 * n].reshape(n, 3, -1)
    b = rows.b[1:1 + 3 * n].reshape(n, 3)
    return np.einsum("ji,njc->nic", rot, a), b @ rot


def _stress_in_frame(rows, frame: Frame) -> np.ndarray:
    """The stress target (xx yy zz yz xz xy in LAMMPS' frame, all components fitted) as a 3×3 tensor in the
    frame's own coordinates."""
    from fitsnap_ext.lammps_session import lammps_frame

    rot = lammps_frame(frame.cell, frame.positions).rotation
    xx, yy, zz, yz, xz, xy = rows.b[-6:]
    return rot.T @ np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]) @ rot


def test_non_periodic_cluster_equals_the_cluster_in_a_vacuum_box(tmp_path):
    """pbc = F F F is honoured: the descriptors, energy and force rows of a cluster are those of the same
    cluster in a periodic box with 20 Å of vacuum (the cluster's own cell, 5.4 Å, would give other rows)."""
    cluster = _si(3, pbc=(False, False, False))
    no_cell = _si(3, cell=np.zeros((3, 3)), pbc=(False, False, False))
    boxed = _si(3, cell=np.eye(3) * 30.0)
    periodic = _si(3)
    deck = _deck(tmp_path, {"cluster": [cluster], "no_cell": [no_cell], "boxed": [boxed], "periodic": [periodic]},
                 stress=0, reference=SW_REFERENCE)
    _, (r_cluster, r_no_cell, r_boxed, r_periodic) = _rows(deck)
    assert r_cluster.a.shape == r_boxed.a.shape == (1 + 3 * 8, 1 + 14)
    scale = np.abs(r_boxed.a).max()
    for rows in (r_cluster, r_no_cell):
        assert np.abs(rows.a - r_boxed.a).max() < 1e-10 * scale
        assert np.abs(rows.b - r_boxed.b).max() < 1e-10
    assert np.abs(r_cluster.a - r_periodic.a).max() > 1e-3 * scale  # the periodic cell differs: a real test


def test_left_handed_cell_gives_the_right_handed_rows(tmp_path):
    """The same triclinic lattice written with a left-handed cell (rows a, c, b) gives the same energy row, and
    force and stress rows equal in the frame's own coordinates (Stillinger-Weber reference subtracted)."""
    cell = np.array([[A, 0.0, 0.0], [0.7, A, 0.0], [0.4, -0.3, A]])
    right = _si(2, cell=cell)
    left = _si(2, cell=cell[[0, 2, 1]])
    assert np.linalg.det(left.cell) < 0 < np.linalg.det(right.cell)
    deck = _deck(tmp_path, {"right": [right], "left": [left]},
                 reference=SW_REFERENCE)
    entries, (r_right, r_left) = _rows(deck)
    scale = np.abs(r_right.a).max()
    assert np.abs(r_left.a[0] - r_right.a[0]).max() < 1e-10 * scale
    assert r_left.b[0] == pytest.approx(r_right.b[0], abs=1e-10)
    a_left, b_left = _in_frame(r_left, entries[1].frame)
    a_right, b_right = _in_frame(r_right, entries[0].frame)
    assert np.abs(a_left - a_right).max() < 1e-10 * scale
    assert np.abs(b_left - b_right).max() < 1e-10
    assert np.abs(b_right - right.forces).max() > 0.01  # the SW reference forces were subtracted
    left_stress = _stress_in_frame(r_left, entries[1].frame)
    right_stress = _stress_in_frame(r_right, entries[0].frame)
    assert np.abs(left_stress - right_stress).max() < 1e-10 * np.abs(right_stress).max()
    assert np.abs(right_stress - right.stress).max() > 1.0  # the SW reference stress (bar) was subtracted


# --------------------------------------------------------------------------------------------------- the CLI

def _bad_json_deck(tmp_path):
    deck = _deck(tmp_path, {"bulk": [_si(0), _si(1)]}, scraper="JSON")
    (tmp_path / "data" / "bulk" / "c1.json").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return deck


def _assert_one_line(proc, tmp_path):
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fitsnap_ext: error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].endswith("c1.json:1 (configuration 1): not a text file (byte 0x89 is not UTF-8)"), errors
    assert "Traceback" not in proc.stderr and "TypeError" not in proc.stderr
    assert not list(tmp_path.glob("pot*"))


def test_cli_reports_binary_json(tmp_path):
    proc = run_cli([_bad_json_deck(tmp_path)], tmp_path, timeout=120, check=False)
    _assert_one_line(proc, tmp_path)


@pytest.mark.mpi
def test_cli_reports_binary_json_on_two_ranks(tmp_path):
    """Every rank leaves within 60 s (run_cli's timeout fails the test otherwise)."""
    proc = run_cli([_bad_json_deck(tmp_path)], tmp_path, nprocs=2, timeout=60, check=False)
    _assert_one_line(proc, tmp_path)
