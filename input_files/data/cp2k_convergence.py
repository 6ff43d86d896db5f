"""CP2K convergence check for a labeler: one (rattled) frame, several cutoff / k-point settings.

    python input_files/data/cp2k_convergence.py [--ranks N] OUT.json STRUCTURE INDEX RATTLE SEED name:cutoff:rel_cutoff:K[:ot] ...

K is a kspacing (1/Å, e.g. 0.4) or a mesh "2x2x1"; a trailing ":ot" uses orbital transformation (Γ-only
insulators) instead of diagonalisation. The first run is the reference; for each run the JSON
records the k-mesh, wall seconds, energy (eV), forces (eV/Å) and stress (bar), and the differences to the
reference: dE (meV/atom), max |dF| (eV/Å), max |dsigma| (bar). Resumable: runs already in OUT.json are skipped.
--ranks: CP2K's MPI ranks (default 2; 1 lets a second labelling job use the other core).
Used for input_files/data/gan and input_files/data/lgps (see their README.md).
"""
import json
import os
import sys
import time

import numpy as np


def main(argv):
    import ase.io
    from fitsnap_ext.generate.cp2k import Cp2kLabeler, kpoint_mesh
    from fitsnap_ext.generate.deck import LabelerSettings
    from fitsnap_ext.generate.structures import atoms_to_frame
    ranks = 2
    if argv and argv[0].startswith("--ranks"):
        ranks, argv = (int(argv[0].split("=")[1]), argv[1:]) if "=" in argv[0] else (int(argv[1]), argv[2:])
    out, structure, index, rattle, seed = argv[:5]
    specs = argv[5:]
    a = ase.io.read(structure, int(index))
    fr = atoms_to_frame(a)
    if float(rattle) > 0:
        fr.positions = fr.positions + np.random.default_rng(int(seed)).normal(0, float(rattle), fr.positions.shape)
    res = json.load(open(out)) if os.path.exists(out) else {
        "structure": os.path.basename(structure), "index": int(index), "rattle": float(rattle), "seed": int(seed),
        "natoms": len(fr.symbols), "runs": []}
    done = {r["name"] for r in res["runs"]}
    for spec in specs:
        name, cut, rel, k, *scf = spec.split(":")
        if name in done:
            continue
        s = LabelerSettings(type="cp2k", cutoff=float(cut), rel_cutoff=float(rel), scf=scf[0] if scf else "diagonalization",
                             mpi_ranks=ranks)
        if "x" in k:
            s.kpoints = [int(x) for x in k.split("x")]
        else:
            s.kspacing = float(k)
        lab = Cp2kLabeler(s, workdir="/tmp/cp2k_convergence")
        fr.info = {"config_id": name}
        t0 = time.time()
        r = lab.label(fr)
        res["runs"].append({"name": name, "cutoff": float(cut), "rel_cutoff": float(rel), "scf": s.scf,
                            "kspacing": s.kspacing or None, "kmesh": kpoint_mesh(fr.cell, s),
                            "seconds": time.time() - t0, "energy": r.energy, "forces": r.forces.tolist(),
                            "stress": r.stress.tolist()})
        ref = res["runs"][0]
        for run in res["runs"]:
            run["dE_meV_per_atom"] = 1000 * (run["energy"] - ref["energy"]) / res["natoms"]
            run["max_dF"] = float(np.abs(np.array(run["forces"]) - np.array(ref["forces"])).max())
            run["max_dstress_bar"] = float(np.abs(np.array(run["stress"]) - np.array(ref["stress"])).max())
        json.dump(res, open(out, "w"), indent=1)
        print(name, {k: run[k] for k in ("kmesh", "seconds", "dE_meV_per_atom", "max_dF", "max_dstress_bar")},
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
