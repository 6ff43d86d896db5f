"""The generation loop: sample -> label -> append, resumable, optionally over MPI ranks.

* One extended XYZ file per group, ``<output>/<group>.xyz``; each frame's comment line carries its id
  (``config_id=<group>:<index>``), the labeler and its settings, and the sampler settings.
* Resume: a torn trailing frame is dropped, the ids already in the file are skipped; frames are appended in
  index order, so a resumed run gives the same file as an uninterrupted one.
* A file written with another labeler/settings (or other sampler settings) is refused, never mixed.
* Under mpirun with an in-process labeler (LAMMPS, ASE calculators) each batch of `size` configurations is
  labelled one per rank; rank 0 alone samples and appends. CP2K runs serially on rank 0 (it is its own MPI job).
"""
from __future__ import annotations

import os
import time

from fitsnap_ext.data.extxyz import append_extxyz, read_extxyz, repair_extxyz
from fitsnap_ext.errors import DataError, DeckError, FitsnapError
from fitsnap_ext.generate.base import header_matches
from fitsnap_ext.generate.deck import GeneratorDeck
from fitsnap_ext.generate.registry import make_labeler
from fitsnap_ext.generate.samplers import config_id, n_configs, sample
from fitsnap_ext.progress import Progress

GENERATOR = "fitsnap_ext.generate/1"
EXIT_INCOMPLETE = 75  # stopped by time_limit: rerun to continue


def _fmt_time(sec: float) -> str:
    sec = int(round(max(sec, 0)))
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}"


def group_path(deck: GeneratorDeck, name: str) -> str:
    return os.path.join(deck.generate.output, name + deck.generate.file_suffix)


def existing_ids(path: str, header: dict, progress: Progress) -> set[str]:
    """Ids already in `path` (after dropping a torn tail). Refuses a file made with another labeler/settings."""
    if not os.path.exists(path):
        return set()
    dropped = repair_extxyz(path)
    if dropped:
        progress.note(f"{path}: dropped a torn trailing frame ({dropped} bytes)")
    if os.path.getsize(path) == 0:
        return set()
    frames = read_extxyz(path, "bar")
    ids = set()
    for i, fr in enumerate(frames):
        if not header_matches(fr.info, header):
            diff = [k for k in header if k != "labeler_note" and str(fr.info.get(k)) != str(header[k])]
            k = diff[0]
            raise DataError(
                f"refusing to append: this file was made with {k}={fr.info.get(k)!r}, the deck gives "
                f"{header[k]!r} (energies from different labelers/settings must not be mixed; use another output "
                f"folder or restore the deck)", path, i)
        cid = fr.info.get("config_id")
        if cid in ids:
            raise DataError(f"duplicate configuration id {cid}", path, i)
        ids.add(str(cid))
    return ids


class _Rate:
    """One progress line per appended frame: its labelling time, the mean so far and the time left."""

    def __init__(self, total: int, progress: Progress):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.progress = progress

    def tick(self, group, k, n, cid, dt):
        self.done += 1
        per = (time.monotonic() - self.t0) / self.done
        eta = per * (self.total - self.done)
        self.progress(f"{group} {k}/{n} {cid}  label {dt:.3g} s, {per:.3g} s/config overall  "
                      f"done {self.done}/{self.total}  ETA {_fmt_time(eta)}")


def _prepare(deck: GeneratorDeck, labeler, plans, progress: Progress) -> int:
    """--prepare: write the labeler's input for every configuration still missing; list the run folders."""
    folders = []
    for g, _path, _header, _have, _n, missing in plans:
        need = set(missing)
        for _idx, fr in sample(deck, g, lambda i, need=need: i in need, labeler, progress):
            folders.append(os.path.relpath(labeler.prepare(fr), labeler.workdir))
    listing = os.path.join(labeler.workdir, "prepared.txt")
    os.makedirs(labeler.workdir, exist_ok=True)
    with open(listing + ".part", "w") as fh:
        fh.write("".join(f + "\n" for f in folders))
    os.replace(listing + ".part", listing)
    progress(f"prepared {len(folders)} inputs, listed in {listing}; run each as "
             f"`cd <folder> && cp2k.psmp -i cp2k.inp -o cp2k.out`, then rerun this command without --prepare: "
             f"finished runs are parsed, not rerun")
    return 0


def run(deck: GeneratorDeck, comm=None) -> int:
    """Generate everything the deck asks for on `comm` (None or a one-rank world: serially). Returns 0 when
    complete, EXIT_INCOMPLETE on time_limit."""
    size = comm.Get_size() if comm is not None else 1
    rank = comm.Get_rank() if comm is not None else 0
    lab_settings = deck.labeler
    workdir = lab_settings.workdir or os.path.join(deck.generate.output, ".cp2k")
    progress = Progress(comm, "generate", quiet=not deck.generate.progress)

    # labelers: in-process ones on every rank; others (CP2K) on rank 0 only
    labeler = None
    err = None
    try:
        if rank == 0:
            labeler = make_labeler(lab_settings, workdir=workdir, progress=progress)
            parallel = labeler.in_process and size > 1
        else:
            parallel = None
    except FitsnapError as exc:
        err, parallel = exc, False
    if comm is not None and size > 1:
        parallel = comm.bcast(parallel if err is None else "error", root=0)
        if parallel == "error":
            if rank == 0:
                raise err
            return 1
        if parallel and rank != 0:
            labeler = make_labeler(lab_settings, workdir=workdir, progress=progress)
        if not parallel and rank != 0:
            return 0  # idle: CP2K runs as its own MPI job from rank 0
    elif err is not None:
        raise err

    try:
        if rank == 0:
            return _run_root(deck, labeler, comm if parallel else None, progress)
        return _worker(labeler, comm)
    finally:
        if labeler is not None:
            labeler.close()


def _worker(labeler, comm) -> int:
    while True:
        batch = comm.scatter(None, root=0)
        if batch is None:
            return 0
        if batch == "skip":
            comm.gather(None, root=0)
            continue
        try:
            res = ("ok", labeler.label(batch))
        except Exception as exc:  # reported by rank 0
            res = ("error", f"{type(exc).__name__}: {exc}")
        comm.gather(res, root=0)


def _plans(deck: GeneratorDeck, labeler, progress: Progress) -> list[tuple]:
    """Per group: (group, file, header, ids already there, configurations, indices still missing)."""
    gen = deck.generate
    base_header = labeler.header()
    base_header["generator"] = GENERATOR
    plans = []
    for g in deck.groups:
        header = dict(base_header)
        header["sampler"] = g.sampler
        header["sampler_settings"] = g.fingerprint(deck.folder)
        path = group_path(deck, g.name)
        have = existing_ids(path, header, progress)
        n = n_configs(g)
        upto = min(n, gen.upto) if gen.upto > 0 else n  # --upto K: this pass stops at index K
        missing = [i for i in range(upto) if config_id(g.name, i) not in have]
        plans.append((g, path, header, have, n, missing))
    return plans


def _run_root(deck: GeneratorDeck, labeler, comm, progress: Progress) -> int:
    size = comm.Get_size() if comm is not None else 1
    gen = deck.generate
    if gen.prepare and not hasattr(labeler, "prepare"):
        raise DeckError(f"--prepare writes inputs for a labeler that runs as its own job (cp2k); this deck's "
                        f"labeler is {labeler.name}", deck.path, section="LABELER", key="type")
    os.makedirs(gen.output, exist_ok=True)
    appended = 0
    t_start = time.monotonic()
    plans = _plans(deck, labeler, progress)
    total = sum(len(p[5]) for p in plans)
    if gen.prepare:
        return _prepare(deck, labeler, plans, progress)
    progress(f"labeler {labeler.name}; {total} configurations to label "
             f"({sum(len(p[3]) for p in plans)} already done) on {size} rank(s)")
    prog = _Rate(total, progress)
    status = 0

    def stop_workers():
        if comm is not None:
            comm.scatter([None] * size, root=0)

    try:
        for g, path, header, have, n, missing in plans:
            if not missing:
                continue
            need = set(missing)
            done_in_group = len(have)
            stream = sample(deck, g, lambda i, need=need: i in need, labeler, progress)
            batch = []
            exhausted = False
            while not exhausted:
                # collect up to `size` configurations
                while len(batch) < size:
                    try:
                        idx, fr = next(stream)
                    except StopIteration:
                        exhausted = True
                        break
                    batch.append((idx, fr))
                if not batch:
                    break
                t0 = time.monotonic()
                if comm is None:
                    results = []
                    for idx, fr in batch:
                        results.append(("ok", labeler.label(fr)))
                else:
                    send = [fr for _, fr in batch] + ["skip"] * (size - len(batch))
                    mine = comm.scatter(send, root=0)
                    try:
                        res0 = ("ok", labeler.label(mine))
                    except Exception as exc:
                        res0 = ("error", f"{type(exc).__name__}: {exc}")
                    results = comm.gather(res0, root=0)[: len(batch)]
                dt = (time.monotonic() - t0) / len(batch)
                for (idx, fr), (ok, out) in zip(batch, results):
                    cid = config_id(g.name, idx)
                    if ok != "ok":
                        raise DataError(f"labeling {cid} failed: {out}", path)
                    append_extxyz(path, out, header)
                    appended += 1
                    done_in_group += 1
                    prog.tick(g.name, done_in_group, n, cid, dt)
                batch = []
                if gen.time_limit and time.monotonic() - t_start > gen.time_limit:
                    progress.note(f"time_limit {gen.time_limit:g} s reached after {appended} frames; rerun the "
                                  f"same command to continue")
                    status = EXIT_INCOMPLETE
                    return status
        progress(f"done: {appended} frames appended in {_fmt_time(time.monotonic() - t_start)} -> {gen.output}")
        return status
    finally:
        stop_workers()
