"""The one progress printer: rank 0 only, `[prefix HH:MM:SS elapsed s] message`, quiet silences progress only."""
import io
import re

from fitsnap_ext.progress import Progress


class _Rank:
    def __init__(self, rank):
        self.rank = rank

    def Get_rank(self):
        return self.rank


def test_lines_are_prefixed_timestamped_and_printed_by_rank_0_only():
    out = io.StringIO()
    say = Progress(_Rank(0), "generate", out)
    say("labeler lammps; 3 configurations to label")
    say.warn("suspect")
    Progress(_Rank(1), "generate", out)("rank 1 says nothing")
    Progress(None, "", out)("no prefix")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\[generate \d\d:\d\d:\d\d +\d+\.\d s\] labeler lammps; 3 configurations to label", lines[0])
    assert re.fullmatch(r"\[generate \d\d:\d\d:\d\d +\d+\.\d s\] warning: suspect", lines[1])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d +\d+\.\d s\] no prefix", lines[2])


def test_quiet_keeps_notes_and_warnings():
    out = io.StringIO()
    say = Progress(prefix="generate", stream=out, quiet=True)
    say("a progress line")
    say.note("dropped a torn trailing frame")
    say.warn("w")
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == ["dropped a torn trailing frame",
                                                                              "warning: w"]


def test_stdout_is_looked_up_when_printing(capsys):
    say = Progress(prefix="properties")
    capsys.readouterr()
    say("eos: done")
    assert capsys.readouterr().out.startswith("[properties ")
