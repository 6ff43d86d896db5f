"""Committed files name no absolute path of the machine they were made on: not the folder above the checkout, not
the home folder, not /tmp/ (reports, decks and JSON name paths relative to the repository or to their own folder)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

# /tmp/ folders that documented commands pick on purpose (no record of a machine): where benchmarks/README.md
# has FitSNAP's source exported for the peer benchmarks, and the CP2K reference scripts' scratch folders
ALLOWED = ("/tmp/fitsnap_src", "/tmp/cp2k_")


def machine_prefixes() -> list[str]:
    """'/tmp/', the folder above the checkout and the home folder, each with a trailing slash ('/' itself left out)."""
    prefixes = {"/tmp/"}
    for folder in (REPO.parent, REPO.parent.resolve(), Path.home(), Path.home().resolve()):
        if str(folder) != "/":
            prefixes.add(str(folder).rstrip("/") + "/")
    return sorted(prefixes)


def absolute_paths(text: str, prefixes: list[str]) -> list[tuple[int, str]]:
    """(line number, path) of every occurrence of a prefix in `text`, bar the ALLOWED ones."""
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p in prefixes) + r")[^\s\"'`;,)]*")
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        hits += [(number, m.group(0)) for m in pattern.finditer(line) if not m.group(0).startswith(ALLOWED)]
    return hits


def tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    files = [REPO / n for n in names.decode().split("\0") if n]
    files = [f for f in files if f != Path(__file__).resolve()]  # this file names the prefixes it looks for
    return [f for f in files if f.is_file() and b"\0" not in f.read_bytes()[:8192]]


def test_scanner_finds_a_machine_path():
    prefixes = machine_prefixes()
    text = (f'{{"potential": "{REPO / "benchmarks" / "x" / "pot.mod"}"}}\n'
            f"volume.xyz ({Path.home() / 'data' / 'v.xyz'}; labels)\nrun in /tmp/abc/x, then /tmp/fitsnap_src\n"
            "dataPath = ../../../input_files/data/gan\n")
    assert absolute_paths(text, prefixes) == [(1, str(REPO / "benchmarks" / "x" / "pot.mod")),
                                              (2, str(Path.home() / "data" / "v.xyz")), (3, "/tmp/abc/x")]


def test_tracked_files_hold_no_machine_paths():
    prefixes = machine_prefixes()
    files = tracked_text_files()
    assert len(files) > 100  # the scan saw the repository (reports, decks, sources)
    bad = [f"{f.relative_to(REPO)}:{n}: {p}" for f in files
           for n, p in absolute_paths(f.read_text(encoding="utf-8", errors="replace"), prefixes)]
    assert not bad, f"{len(bad)} machine path(s) (name them relative to the repository):\n" + "\n".join(bad[:40])
