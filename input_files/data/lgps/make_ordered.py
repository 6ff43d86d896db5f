"""Ordered 50-atom Li20Ge2P4S24 cells from the disordered LGPS CIF (../shared/data/lgps), ranked by energy.

    python input_files/data/lgps/make_ordered.py rank      # SevenNet-0: single points, then relax the lowest
    python input_files/data/lgps/make_ordered.py confirm   # CP2K PBE single points of the lowest relaxed ones

Sites (the CIF in P1, a = 8.69407 Å, c = 12.5994 Å): 4 Li at 1.0 occupancy (kept), 16 Li at 0.691 that form
8 pairs only 1.73 Å apart (one of each pair can be occupied), 8 Li at 0.643, the four 4d sites shared Ge/P,
2 P and 24 S. 20 Li = the 4 full sites + one site of each 1.73 Å pair (2^8 = 256 choices) + the 8 sites at
0.643 (the only way to put 16 Li on the 24 partial sites without a 1.73 Å Li-Li contact); 2 Ge + 2 P on the
4d sites: C(4,2) = 6 arrangements. Charge: 20(+1) + 2(+4) + 4(+5) = 48 = 24 x 2 (S2-).

rank: 32 random Li choices (seeded) x 6 Ge/P arrangements = 192 candidates, SevenNet-0 single points at the
experimental sites; the 6 lowest (one of each set of equal-energy, symmetry-equivalent orderings) are relaxed
(atoms only, experimental cell fixed; FIRE, fmax 0.05 eV/Å, at most 100 steps) and ranked again ->
candidates.json, candidates_relaxed.extxyz (lowest first).
confirm: CP2K (settings of input_files/gen_lgps.in) single points of the 3 lowest relaxed candidates ->
ordering.json (results of an earlier labeler setting are kept under "earlier"); the lowest CP2K energy is written
as ordered_Li20Ge2P4S24.extxyz, unless another candidate's data exist already (then only with --write).
"""
import itertools
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CIF = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "lgps", "Li10GeP2S12_disordered.cif"))
SEED = 11
N_LI = 32
N_RELAX = 6
N_CONFIRM = 3


def _sites():
    rows = []
    for ln in open(CIF):
        m = re.match(r"\s+(\w+)\s+(Li|Ge|P|S)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", ln)
        if m:
            rows.append((m.group(1), m.group(2), [float(m.group(k)) for k in (3, 4, 5)], float(m.group(6))))
    return rows


CELL = np.diag([8.69407, 8.69407, 12.5994])
ROWS = _sites()
LI = [r for r in ROWS if r[1] == "Li"]
LI_FULL = [r for r in LI if r[3] == 1.0]
LI_PART = [r for r in LI if r[3] < 1.0]
SHARED = [r for r in ROWS if r[0].startswith("Ge")]   # the four 4d sites (Ge29..Ge32 / P29..P32)
P_FULL = [r for r in ROWS if r[1] == "P" and r[3] == 1.0]
S = [r for r in ROWS if r[1] == "S"]
GE_ARR = list(itertools.combinations(range(4), 2))


def pairs():
    """The 8 pairs of 0.691-occupancy Li sites 1.73 Å apart."""
    frac = np.array([r[2] for r in LI_PART])
    d = frac[:, None] - frac[None]
    d -= np.round(d)
    r = np.linalg.norm(d @ CELL, axis=2)
    np.fill_diagonal(r, 99)
    return [(i, int(np.argmin(r[i]))) for i in range(len(LI_PART))
            if r[i].min() < 2.0 and i < int(np.argmin(r[i]))]


def li_choice(bits):
    pr = pairs()
    rest = [i for i in range(len(LI_PART)) if all(i not in p for p in pr)]
    return tuple(sorted([p[(bits >> k) & 1] for k, p in enumerate(pr)] + rest))


def build(bits, ge):
    from ase import Atoms
    sym, frac = [], []
    for r in LI_FULL + [LI_PART[i] for i in li_choice(bits)]:
        sym.append("Li")
        frac.append(r[2])
    for k, r in enumerate(SHARED):
        sym.append("Ge" if k in ge else "P")
        frac.append(r[2])
    for r in P_FULL + S:
        sym.append(r[1])
        frac.append(r[2])
    a = Atoms(sym, scaled_positions=frac, cell=CELL, pbc=True)
    a.info["li_bits"] = int(bits)
    a.info["ge_sites"] = " ".join(SHARED[k][0] for k in ge)
    a.info["li_sites"] = " ".join(r[0] for r in LI_FULL + [LI_PART[i] for i in li_choice(bits)])
    return a


def label(bits, ge):
    return f"li{bits:03d}_ge{ge[0]}{ge[1]}"


def rank():
    import ase.io
    import torch
    from ase.optimize import FIRE
    from sevenn.calculator import SevenNetCalculator
    torch.set_num_threads(1)
    calc = SevenNetCalculator(model="7net-0", device="cpu")
    rng = np.random.default_rng(SEED)
    bits_list = [int(b) for b in rng.choice(256, N_LI, replace=False)]
    cache = os.path.join(HERE, "candidates_single.jsonl")  # resumable: one line per single point
    done = {}
    if os.path.exists(cache):
        for ln in open(cache):
            r = json.loads(ln)
            done[r["id"]] = r
    single = []
    t0 = time.time()
    with open(cache, "a") as fh:
        for bits in bits_list:
            for ge in GE_ARR:
                if label(bits, ge) not in done:
                    a = build(bits, ge)
                    a.calc = calc
                    r = {"id": label(bits, ge), "bits": bits, "ge": list(ge),
                         "energy_sp": float(a.get_potential_energy())}
                    fh.write(json.dumps(r) + "\n")
                    fh.flush()
                    done[r["id"]] = r
                single.append(dict(done[label(bits, ge)]))
    print(f"{len(single)} single points in {time.time() - t0:.0f} s", flush=True)
    single.sort(key=lambda r: r["energy_sp"])
    relaxed = []
    picked = []  # the lowest N_RELAX, one of each set of symmetry-equivalent orderings (equal energies)
    for r in single:
        if len(picked) < N_RELAX and all(abs(r["energy_sp"] - q["energy_sp"]) > 1e-4 for q in picked):
            picked.append(r)
    for r in picked:
        a = build(r["bits"], tuple(r["ge"]))
        a.calc = calc
        opt = FIRE(a, logfile=None)
        opt.run(fmax=0.05, steps=100)
        r.update(energy_relaxed=float(a.get_potential_energy()), relax_steps=int(opt.nsteps),
                 fmax_relaxed=float(np.abs(a.get_forces()).max()))
        a.info.update(candidate=r["id"], sevenn_energy=r["energy_relaxed"])
        relaxed.append((r, a))
        print(r, flush=True)
    relaxed.sort(key=lambda t: t[0]["energy_relaxed"])
    with open(os.path.join(HERE, "candidates.json"), "w") as fh:
        json.dump({"sevenn_model": "7net-0", "seed": SEED, "n_single_points": len(single),
                   "single_points": single, "relaxed": [t[0] for t in relaxed]}, fh, indent=1)
    frames = []
    for _, a in relaxed:
        b = a.copy()
        b.calc = None
        frames.append(b)
    ase.io.write(os.path.join(HERE, "candidates_relaxed.extxyz"), frames, format="extxyz")


def confirm():
    import ase.io
    from fitsnap_ext.generate.cp2k import Cp2kLabeler
    from fitsnap_ext.generate.deck import load_labeler
    from fitsnap_ext.generate.structures import atoms_to_frame
    # the [LABELER] of gen_lgps.in (its groups need the ordered cell that this step writes)
    lab = Cp2kLabeler(load_labeler(os.path.join(ROOT, "input_files", "gen_lgps.in")),
                      workdir=os.path.join("/tmp", "lgps_confirm"))
    cands = ase.io.read(os.path.join(HERE, "candidates_relaxed.extxyz"), ":")[:N_CONFIRM]
    # one candidate of each Ge/P arrangement first: the arrangement is the question, the Li choices within one are
    # nearly degenerate (li016/li253: 1 meV per cell with SevenNet)
    seen = set()
    firsts = [c for c in cands if not (c.info["ge_sites"] in seen or seen.add(c.info["ge_sites"]))]
    cands = firsts + [c for c in cands if all(c is not f for f in firsts)]
    out_path = os.path.join(HERE, "ordering.json")
    res = json.load(open(out_path)) if os.path.exists(out_path) else {"cp2k": {}}
    if res.get("labeler_settings", lab.settings) != lab.settings:  # the deck's labeler changed: rank again
        earlier = {k: res.pop(k) for k in ("cp2k", "labeler_settings", "chosen") if k in res}
        res.setdefault("earlier", []).append(earlier)
        res["cp2k"] = {}
    for a in cands:
        cid = a.info["candidate"]
        if cid in res["cp2k"]:
            continue
        fr = atoms_to_frame(a)
        fr.info = {"config_id": cid}
        t0 = time.time()
        lab_fr = lab.label(fr)
        res["cp2k"][cid] = {"energy": lab_fr.energy, "sevenn_energy": a.info["sevenn_energy"],
                            "max_force": float(np.abs(lab_fr.forces).max()), "seconds": time.time() - t0,
                            "eps_scf": lab.s.eps_scf, "scf_steps": lab.last_scf_steps}
        res["labeler_settings"] = lab.settings
        json.dump(res, open(out_path, "w"), indent=1)
        print(cid, res["cp2k"][cid], flush=True)
    best = min(res["cp2k"], key=lambda k: res["cp2k"][k]["energy"])
    res["chosen"] = best
    json.dump(res, open(out_path, "w"), indent=1)
    ordered = os.path.join(HERE, "ordered_Li20Ge2P4S24.extxyz")
    current = ase.io.read(ordered).info.get("candidate") if os.path.exists(ordered) else None
    if current == best:
        print("chosen", best, "(the ordered cell already is this candidate: kept as it is)", flush=True)
        return
    if current is not None and "--write" not in sys.argv:
        print(f"the labeler ranks {best} lowest, but the data were built from {current}: the ordered cell is "
              f"kept (rerun with --write to replace it, then resample every group built on it)", flush=True)
        return
    a = [c for c in cands if c.info["candidate"] == best][0]
    a.info = {k: a.info[k] for k in ("candidate", "li_bits", "li_sites", "ge_sites")}
    ase.io.write(os.path.join(HERE, "ordered_Li20Ge2P4S24.extxyz"), a, format="extxyz")
    print("chosen", best, flush=True)


if __name__ == "__main__":
    {"rank": rank, "confirm": confirm}[sys.argv[1]]()
