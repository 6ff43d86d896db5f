"""Neural-network SNAP training beside FitSNAP's PYTORCH solver, on the same data, in the same run.

    python benchmarks/bench_network_peer.py --fitsnap-src DIR [--set demo|zuo] [--epochs 100] [--batch-size 4]
        [--learning-rate 5e-3] [--energy-weight 10] [--force-weight 1] [--hidden 32 32] [--activation tanh]
        [--fitsnap-activation same|softplus] [--fitsnap-eshift lsq|none] [--seed 0] [--repeats 1]
        [--out results.md]

DIR holds FitSNAP's packages (fitsnap3/, fitsnap3lib/), e.g. exported from its git repository:
    git -C FitSNAP archive HEAD fitsnap3 fitsnap3lib | tar -x -C /tmp/fitsnap_src

Each tool runs in its own fresh process (OMP_NUM_THREADS=1, torch on 1 thread), one after the other:
  * both read the configurations with fitsnap_ext's reader from the deck (input_files/in.demo or in.si_nn),
    so the frames, the reference energies/forces and the deck's train/test split are identical; FitSNAP gets
    them as its library-mode data dictionaries (its own ASE-style layout: LAMMPS-frame cell and positions),
    by default with its energies shifted by [ESHIFT] = minus the training split's least-squares per-atom
    energy (the offset fitsnap_ext starts its output bias at; the errors do not depend on it);
  * descriptors: fitsnap_ext's per-atom B_i and sparse dB_i/dr_j (`compute snap ... bikflag 1 dgradflag 1`),
    FitSNAP's `process_configs` (its nonlinear path: the same compute, run twice per configuration — a
    pre-pass that counts derivative rows, then the pass that stores them);
  * training: the deck's training split; every epoch both evaluate the deck's test split (FitSNAP calls it
    its validation set and keeps the best epoch on it; fitsnap_ext is given the same set as its early-stopping
    set, patience off, so both do the same work per epoch and keep the same kind of "best" model);
  * errors on the test split (energy MAE in meV/atom, force-component MAE in eV/Å) of the final-epoch and
    of the best-epoch model of each tool.
Prints a markdown table with ratios fitsnap_ext / FitSNAP. Wall-clock numbers on a shared machine: ±10 %.

FitSNAP is not modified; what it needs at run time is applied here (see `fitsnap_shims`).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # fitsnap_ext from this checkout, installed or not
DECKS = {"demo": REPO / "input_files" / "in.demo", "zuo": REPO / "input_files" / "in.si_nn"}
SETS = {"demo": "the generated demo set (input_files/in.demo, Si, Stillinger–Weber labels)",
        "zuo": "the Zuo et al. Si set (input_files/in.si_nn, ../shared/data/si_zuo, DFT labels)"}


TIME_KEYS = ("descriptors_s", "epoch_s", "epoch_s_median", "fit_s", "wall_s", "read_s")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS:")) / 1024.0


def warm_up_torch() -> None:
    """One thread; and build an Adam once, so torch's lazy import of torch._dynamo (seconds) is paid before any
    timer starts in either tool."""
    import torch

    torch.set_num_threads(1)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


def deck_overrides(p: dict) -> list[tuple[str, str, str]]:
    """fitsnap_ext `-k` overrides turning the deck into the benchmark's network fit."""
    return [("SOLVER", "solver", "PYTORCH"), ("CALCULATOR", "nonlinear", "1"), ("CALCULATOR", "stress", "0"),
            ("CALCULATOR", "energy", "1"), ("CALCULATOR", "force", "1"),
            ("PYTORCH", "layer_sizes", "num_desc " + " ".join(map(str, p["hidden"])) + " 1"),
            ("PYTORCH", "activation", p["activation"]), ("PYTORCH", "learning_rate", repr(p["learning_rate"])),
            ("PYTORCH", "num_epochs", str(p["epochs"])), ("PYTORCH", "batch_size", str(p["batch_size"])),
            ("PYTORCH", "energy_weight", repr(p["energy_weight"])),
            ("PYTORCH", "force_weight", repr(p["force_weight"])), ("PYTORCH", "seed", str(p["seed"])),
            ("PYTORCH", "validation_fraction", "0"), ("PYTORCH", "patience", "0"),
            ("PYTORCH", "save_state_output", "")]


def load(p: dict):
    """fitsnap_ext's settings for the benchmark (the deck with `deck_overrides`)."""
    from fitsnap_ext.config import load_settings

    return load_settings(p["deck"], deck_overrides(p))


# ---------------------------------------------------------------------------------------------- fitsnap_ext
def worker_ext(p: dict) -> dict:
    warm_up_torch()
    from fitsnap_ext.network_snap import trainer_from_settings
    from fitsnap_ext.workload import read_and_compute
    from fitsnap_ext.parallel import world
    from fitsnap_ext.peratom import compute_peratom

    from fitsnap_ext.lammps_session import lammps_module

    settings = load(p)
    comm = world()
    lammps_module()  # load liblammps before the baseline, as FitSNAP's start-up does
    startup_rss = current_rss_mib()
    timings = {}
    _, n_total, data = read_and_compute(settings, comm, lambda msg: None, compute_peratom, timings)
    # FitSNAP's semantics: group weights replaced by the global [PYTORCH] weights, the deck's test split is the
    # per-epoch validation set (evaluated every epoch, best epoch kept); patience 0 = no early stopping.
    test_ids = {c.index for c in data if c.test}
    zero_force_mae = float(np.mean(np.concatenate([np.abs(c.forces).ravel() for c in data if c.test])))
    for c in data:
        c.test, c.eweight, c.fweight = False, 1.0, 1.0
    model = trainer_from_settings(settings)
    t = time.perf_counter()
    model.fit(data, comm, validation=test_ids, use_energy=True, use_force=True, use_stress=False)
    fit_s = time.perf_counter() - t
    hist = model.history_
    final, best = hist[-1], hist[model.best_epoch_ - 1]
    return dict(tool="fitsnap_ext", ntrain=len(data) - len(test_ids), ntest=len(test_ids),
                natoms=int(sum(c.natoms for c in data)), npairs=int(sum(len(c.pair_i) for c in data)),
                ndesc=int(data[0].b.shape[1]), stored_mib=sum(c.nbytes for c in data) / 2**20,
                descriptors_s=timings["descriptors"], read_s=timings["read"], fit_s=fit_s,
                epoch_s=float(np.mean([r["seconds"] for r in hist])),
                epoch_s_median=float(np.median([r["seconds"] for r in hist])), epochs=len(hist),
                nparams=int(sum(q.numel() for q in model.nets_.parameters())), dtype="float64",
                final_e_mae=final["val_energy_mae"], final_f_mae=final["val_force_mae"],
                best_epoch=model.best_epoch_, best_e_mae=best["val_energy_mae"], best_f_mae=best["val_force_mae"],
                zero_force_mae=zero_force_mae, val_loss=[r["val_loss"] for r in hist],
                startup_rss_mib=startup_rss, peak_rss_mib=peak_rss_mib())


# ---------------------------------------------------------------------------------------------- FitSNAP
def fitsnap_shims(activation: str) -> list[str]:
    """Run-time adjustments FitSNAP's PyTorch path gets here (FitSNAP's files are not touched). Returns what
    was applied."""
    import torch

    import fitsnap3lib.solvers.pytorch as solver_mod

    applied = []
    if activation != "softplus":
        # FitSNAP's create_torch_network hard-codes Softplus after each hidden layer; swap in the activation
        # fitsnap_ext uses (LAMMPS mliap nn implements only tanh/sigmoid/relu), same layers otherwise
        # (including FitSNAP's trainable nd×nd standardisation layer in front).
        act = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[activation]
        original = solver_mod.create_torch_network

        def create_torch_network(layer_sizes):
            net = original(layer_sizes)
            return torch.nn.Sequential(*[act() if isinstance(m, torch.nn.Softplus) else m for m in net])

        solver_mod.create_torch_network = create_torch_network
        applied.append(f"activation Softplus → {act.__name__} (fitsnap3lib.solvers.pytorch.create_torch_network)")
    return applied


def fitsnap_input(settings, p: dict) -> dict:
    bs = settings.bispectrum
    per_el = lambda v: " ".join(repr(float(x)) for x in (v if isinstance(v, (list, tuple)) else [v]))  # noqa: E731
    bispectrum = {"numTypes": bs.numtypes, "twojmax": bs.twojmax, "rcutfac": bs.rcutfac, "rfac0": bs.rfac0,
                  "rmin0": bs.rmin0, "wj": per_el(bs.wj), "radelem": per_el(bs.radelem), "type": " ".join(bs.types),
                  "wselfallflag": int(bs.wselfallflag), "chemflag": 0, "bzeroflag": int(bs.bzeroflag),
                  "quadraticflag": 0, "switchflag": int(bs.switchflag), "bikflag": 1, "dgradflag": 1}
    ref = settings.reference
    reference = {"units": "metal", "atom_style": "atomic", "pair_style": ref.pair_style}
    if len(ref.pair_coeffs) == 1:
        reference["pair_coeff"] = ref.pair_coeffs[0]
    else:
        reference.update({f"pair_coeff{i + 1}": c for i, c in enumerate(ref.pair_coeffs)})
    layer_sizes = "num_desc " + " ".join(map(str, p["hidden"])) + " 1"
    return {
        "BISPECTRUM": bispectrum,
        "CALCULATOR": {"calculator": "LAMMPSSNAP", "energy": 1, "per_atom_energy": 1, "force": 1, "stress": 0,
                       "nonlinear": 1},
        "PYTORCH": {"layer_sizes": layer_sizes, "learning_rate": p["learning_rate"], "num_epochs": p["epochs"],
                    "batch_size": p["batch_size"], "save_state_output": "FitSNAP_Pytorch.pt",
                    "energy_weight": p["energy_weight"], "force_weight": p["force_weight"],
                    "multi_element_option": 1, "manual_seed_flag": 1},
        "SOLVER": {"solver": "PYTORCH"},
        "SCRAPER": {"scraper": "JSON"},
        "PATH": {"dataPath": "."},
        "OUTFILE": {"metrics": "FitSNAP_metrics.md", "potential": "FitSNAP_pot"},
        "REFERENCE": reference,
        "GROUPS": {"group_sections": "name training_size testing_size eweight fweight vweight",
                   "group_types": "str float float float float float", "smartweights": 0, "random_sampling": 0},
    }


def energy_shift(entries, types) -> dict[str, float]:
    """Per-element [ESHIFT] (eV/atom, added to the energies) cancelling the least-squares per-atom energy of the
    training split — the offset fitsnap_ext starts its output bias at."""
    train = [e for e in entries if not e.test]
    counts = np.array([[e.frame.symbols.count(t) for t in types] for e in train], float)
    offsets = np.linalg.lstsq(counts, np.array([e.frame.energy for e in train]), rcond=None)[0]
    return {t: -float(o) for t, o in zip(types, offsets)}


def fitsnap_data(entries, types, eshift=None) -> list[dict]:
    """FitSNAP library-mode data dictionaries (layout of fitsnap3lib.scrapers.ase_funcs.collate_data); `eshift`
    is applied as FitSNAP's scraper applies [ESHIFT] (per atom, added to the energy)."""
    from fitsnap_ext.lammps_session import lammps_frame

    eshift = eshift or {}
    out = []
    for e in entries:
        f = e.frame
        placed = lammps_frame(f.cell, f.positions, f.pbc)
        energy = float(f.energy) + sum(eshift.get(s, 0.0) for s in f.symbols)
        out.append({"Group": f.group, "File": f"{f.group}_{e.index}", "Positions": placed.positions,
                    "AtomTypes": list(f.symbols), "Energy": energy, "Forces": f.forces @ placed.rotation.T,
                    "Stress": np.zeros((3, 3)), "NumAtoms": f.natoms, "QMLattice": placed.cell,
                    "Lattice": placed.cell, "Rotation": np.eye(3), "Translation": np.zeros((f.natoms, 3)),
                    "eweight": 1.0, "fweight": 1.0, "vweight": 0.0, "test_bool": bool(e.test)})
    assert all(t in types for d in out for t in d["AtomTypes"])
    return out


def fitsnap_errors(solver, model, configs):
    """Energy MAE (eV/atom) and force-component MAE (eV/Å) of `model` (evaluated in float64) on `configs`."""
    import torch

    m = copy.deepcopy(model).to(torch.float64).eval()
    de, df = [], []
    for c in configs:
        x = torch.tensor(c.descriptors, dtype=torch.float64).requires_grad_(True)
        idx = torch.tensor(c.dgrad_indices).long()
        energy, forces = m(x, torch.tensor(c.dgrad, dtype=torch.float64), torch.zeros(c.natoms, dtype=torch.long),
                           torch.tensor(c.natoms), torch.tensor(c.types).long(), idx, idx[:, 1], idx[:, 0],
                           "cpu", 1, torch.float64)
        de.append(abs(float(energy.detach()[0]) / c.natoms - float(c.energy)))
        df.append(np.abs(forces.detach().numpy() - np.asarray(c.forces)))
    return float(np.mean(de)), float(np.mean(np.concatenate(df)))


def worker_fitsnap(p: dict) -> dict:
    warm_up_torch()
    sys.path.insert(0, p["fitsnap_src"])
    import mpi4py.MPI  # noqa: F401  (libmpi before liblammps, as fitsnap_ext does)

    from fitsnap_ext.data.dataset import load_entries

    settings = load(p)
    shims = fitsnap_shims(p["fitsnap_activation"])
    from fitsnap3lib.fitsnap import FitSnap

    with contextlib.redirect_stdout(sys.stderr):
        fs = FitSnap(fitsnap_input(settings, p), arglist=["--overwrite"])
    startup_rss = current_rss_mib()
    t = time.perf_counter()
    entries = load_entries(settings)
    types = settings.bispectrum.types
    eshift = energy_shift(entries, types) if p["fitsnap_eshift"] == "lsq" else {}
    fs.data = fitsnap_data(entries, types, eshift)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        fs.process_configs()
    descriptors_s = time.perf_counter() - t

    solver = fs.solver
    lines = []
    original_print = fs.pt.single_print

    def capture(*args, **kw):
        lines.append(" ".join(map(str, args)))
        original_print(*args, **kw)

    fs.pt.single_print = capture
    t = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        solver.perform_fit()
    fit_s = time.perf_counter() - t
    epoch_s = [float(m.group(1)) for m in (re.match(r"\s*\d+\s+\S+\s+\S+\s+(\S+)\s*$", ln) for ln in lines) if m]
    val_loss = [float(ln.split()[2]) for ln in lines if re.match(r"\s*\d+\s+\S+\s+\S+\s+\S+\s*$", ln)]

    test = [c for c in solver.configs if c.testing_bool]
    ntrain = len(solver.configs) - len(test)
    final_e, final_f = fitsnap_errors(solver, solver.model, test)
    best_e, best_f = fitsnap_errors(solver, getattr(solver, "model_best", solver.model), test)
    arrays = ("a", "b", "c", "w", "t", "dgrad", "dbdrindx")
    stored = sum(fs.pt.shared_arrays[k].array.nbytes for k in arrays if k in fs.pt.shared_arrays)
    return dict(tool="FitSNAP", ntrain=ntrain, ntest=len(test), natoms=int(sum(c.natoms for c in solver.configs)),
                npairs=int(sum(len(c.dgrad) for c in solver.configs) // 3),
                ndesc=int(solver.configs[0].descriptors.shape[1]),
                stored_mib=stored / 2**20, descriptors_s=descriptors_s, read_s=read_s, fit_s=fit_s,
                epoch_s=float(np.mean(epoch_s)), epoch_s_median=float(np.median(epoch_s)), epochs=len(epoch_s),
                nparams=int(sum(q.numel() for q in solver.model.parameters())), dtype=str(solver.dtype).split(".")[-1],
                final_e_mae=final_e, final_f_mae=final_f, best_epoch=int(np.argmin(val_loss)) + 1,
                best_e_mae=best_e, best_f_mae=best_f, val_loss=val_loss,
                startup_rss_mib=startup_rss, peak_rss_mib=peak_rss_mib(), shims=shims, eshift=eshift)


# ---------------------------------------------------------------------------------------------- driver
def launch(p: dict, mode: str, cwd: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, json.dumps(p)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{mode} worker failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-5000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return dict(json.loads(line[7:]), wall_s=wall)


def table(p: dict, ext: dict, peer: dict, command: str) -> str:
    def row(label, key, fmt, scale=1.0):
        a, b = ext[key] * scale, peer[key] * scale
        return f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {a / b:.2f} |"

    def losses(r):
        v = r["val_loss"]
        return f"{v[0]:.3g} → {min(v):.3g} → {v[-1]:.3g}"

    arch = f"{ext['ndesc']}-{'-'.join(map(str, p['hidden']))}-1"
    peer_act = p["activation"] if p["fitsnap_activation"] == "same" else p["fitsnap_activation"]
    lines = [
        f"Data: {SETS[p['set']]}; {ext['ntrain']} training / {ext['ntest']} test configurations, "
        f"{ext['natoms']} atoms, {ext['ndesc']} descriptors. Network {arch} ({p['activation']} in fitsnap_ext, "
        f"{peer_act} in FitSNAP), "
        f"{p['epochs']} epochs, batch {p['batch_size']} configurations, Adam lr {p['learning_rate']:g}, "
        f"energy_weight {p['energy_weight']:g}, force_weight {p['force_weight']:g}, one process and one thread each"
        + (f"; times: fastest of {p['repeats']} alternating repeats." if p["repeats"] > 1 else "."),
        "",
        f"Command: `{command}`",
        "",
        "| | fitsnap_ext | FitSNAP (PYTORCH) | fitsnap_ext / FitSNAP |",
        "|:--|--:|--:|--:|",
        row("descriptors: per-atom B + dB/dr (s)", "descriptors_s", "{:.2f}"),
        row("training: mean s/epoch (train + test-split evaluation)", "epoch_s", "{:.3f}"),
        row("training: median s/epoch", "epoch_s_median", "{:.3f}"),
        row("training: whole fit call (s)", "fit_s", "{:.1f}"),
        row("whole process, wall (s) ¹", "wall_s", "{:.1f}"),
        row("peak RSS of the process (MiB)", "peak_rss_mib", "{:.0f}"),
        row("RSS after start-up, before any data (MiB) ²", "startup_rss_mib", "{:.0f}"),
        row("peak RSS − start-up RSS (MiB)", "data_rss_mib", "{:.0f}"),
        row("descriptor data held (MiB)", "stored_mib", "{:.1f}"),
        row("trainable parameters", "nparams", "{:.0f}"),
        row("test energy MAE, final epoch (meV/atom)", "final_e_mae", "{:.2f}", 1000.0),
        row("test force MAE, final epoch (eV/Å)", "final_f_mae", "{:.4f}"),
        row("test energy MAE, best epoch (meV/atom)", "best_e_mae", "{:.2f}", 1000.0),
        row("test force MAE, best epoch (eV/Å)", "best_f_mae", "{:.4f}"),
        f"| best epoch (lowest loss on the test split) | {ext['best_epoch']} | {peer['best_epoch']} | |",
        f"| test-split loss, epoch 1 → best → final (each tool's own loss) | {losses(ext)} | {losses(peer)} | |",
        f"| reference: test force MAE of zero forces (mean abs(F)) | {ext['zero_force_mae']:.4f} | | |",
        f"| training precision | {ext['dtype']} | {peer['dtype']} | |",
        "",
        "Shims applied to FitSNAP at run time: " + ("; ".join(peer["shims"]) or "none") + ". Energies given to "
        "FitSNAP: " + ("shifted by [ESHIFT] " + ", ".join(f"{k} = {v:.6f} eV" for k, v in peer["eshift"].items())
                       + " (minus the least-squares per-atom energy of the training split: the offset fitsnap_ext "
                       "starts its output bias at; errors are unchanged by it)" if peer["eshift"] else
                       "unshifted (FitSNAP's output bias has to learn the per-atom energy offset)") + ".",
        "",
        "¹ Imports, reading, descriptors, training and this script's own float64 error evaluation (test split); "
        "FitSNAP's import of `fitsnap3lib.io.input` also loads the ACE coupling-coefficient pickles of "
        "`fitsnap3lib.lib.sym_ACE` (seconds, and memory) even for SNAP. "
        "² After imports, torch warm-up and LAMMPS loaded (FitSNAP: after `FitSnap(...)` is constructed).",
        "",
        "What differs between the two (same data, split, layer sizes, epochs, batch size, learning rate and "
        "weights otherwise):",
        "- Loss. FitSNAP: `energy_weight·mean_batch((ΔE/N)²) + force_weight·mean_batch-components(ΔF²)` (the "
        "force mean runs over all force components of the batch, so large cells weigh more). fitsnap_ext: "
        "`Σ_configs [energy_weight·(ΔE/N)² + force_weight·mean_config(ΔF²)] / batch` (each configuration's "
        "force term is its own mean). Equal when all cells in a batch have the same size. Group weights are 1 in both "
        "(FitSNAP's global weights replace them; fitsnap_ext's group weights were set to 1 to match).",
        "- Normalisation. FitSNAP puts a trainable N_d×N_d linear layer in front, initialised to "
        "`(B + μ)/σ` (μ, σ over all atoms, test split included; the + is in its source: the inputs are centred "
        "near 2μ/σ, not 0, which can leave a tanh network saturated — zero forces — where Softplus keeps a "
        "gradient), so it trains "
        "N_d² + N_d more parameters. fitsnap_ext standardises with a fixed `(B − μ)/σ` over the training atoms "
        "(exported as mliap's scale0/scale1) and starts the output bias at the least-squares per-atom energy; "
        "FitSNAP's output bias starts at PyTorch's random default.",
        "- Learning rate. FitSNAP: Adam at the given rate, constant (it builds a ReduceLROnPlateau scheduler but "
        "never steps it). fitsnap_ext: Adam with cosine decay to 1 % of the rate over num_epochs.",
        "- Precision. FitSNAP trains in float32 (its dataset casts to float32); fitsnap_ext in float64. Errors "
        "of both are evaluated in float64 on the same test configurations.",
        "- Per epoch both evaluate energies and forces on the test split (FitSNAP's validation set; given to "
        "fitsnap_ext as its early-stopping set with patience off) and keep the lowest-loss epoch; FitSNAP also "
        "`torch.save`s the model at each new best (outside its epoch timer, inside the whole fit).",
        "- Descriptors. FitSNAP runs `compute snap` twice per configuration (a pre-pass sizing the derivative "
        "arrays) in a new LAMMPS instance each time; fitsnap_ext once, in one reused instance. Both keep only "
        "nonzero derivative rows, float64.",
        "- Shuffling: each tool's own seeded shuffle (FitSNAP: torch.manual_seed(0); fitsnap_ext: seed "
        f"{p['seed']}); the initial weights differ.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fitsnap-src", type=Path, help="folder holding FitSNAP's fitsnap3/ and fitsnap3lib/")
    ap.add_argument("--set", default="demo", choices=sorted(DECKS))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=5e-3)
    ap.add_argument("--energy-weight", type=float, default=10.0)
    ap.add_argument("--force-weight", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    ap.add_argument("--activation", default="tanh", choices=["tanh", "sigmoid", "relu"])
    ap.add_argument("--fitsnap-activation", default="same", choices=["same", "softplus"],
                    help="'same': FitSNAP's Softplus swapped for --activation (run-time shim); 'softplus': FitSNAP "
                         "as it is")
    ap.add_argument("--fitsnap-eshift", default="lsq", choices=["lsq", "none"],
                    help="'lsq': give FitSNAP energies shifted by [ESHIFT] = minus the least-squares per-atom energy "
                         "of the training split (fitsnap_ext starts its output bias there); 'none': raw energies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="run each tool this many times, alternating; times are the fastest repeat's")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        mode, p = args.worker[0], json.loads(args.worker[1])
        result = worker_ext(p) if mode == "ext" else worker_fitsnap(p)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.fitsnap_src is None or not (args.fitsnap_src / "fitsnap3lib").is_dir():
        ap.error("--fitsnap-src DIR (holding fitsnap3lib/) is required")

    p = dict(set=args.set, deck=str(DECKS[args.set]), epochs=args.epochs, batch_size=args.batch_size,
             learning_rate=args.learning_rate, energy_weight=args.energy_weight, force_weight=args.force_weight,
             hidden=args.hidden, activation=args.activation, seed=args.seed,
             fitsnap_activation=args.fitsnap_activation if args.fitsnap_activation == "softplus" else args.activation,
             fitsnap_eshift=args.fitsnap_eshift, fitsnap_src=str(args.fitsnap_src.resolve()))
    runs = {"ext": [], "fitsnap": []}
    for rep in range(args.repeats):
        for mode in ("ext", "fitsnap"):  # alternated, so a change of the machine's load hits both
            with tempfile.TemporaryDirectory() as tmp:
                r = launch(p, mode, Path(tmp))
            r["data_rss_mib"] = r["peak_rss_mib"] - r["startup_rss_mib"]
            runs[mode].append(r)
            print(f"[{rep + 1}/{args.repeats}] {r['tool']}: descriptors {r['descriptors_s']:.2f} s, "
                  f"{r['epoch_s']:.3f} s/epoch, peak RSS {r['peak_rss_mib']:.0f} MiB, test MAE E "
                  f"{1000 * r['final_e_mae']:.2f} meV/atom F {r['final_f_mae']:.4f} eV/Å (final epoch)", flush=True)
    # times: the fastest repeat of each (least disturbed by the machine's other load); the rest from the first
    results = {mode: dict(rs[0], **{k: min(r[k] for r in rs) for k in TIME_KEYS}) for mode, rs in runs.items()}
    for key in ("ntrain", "ntest", "natoms", "ndesc"):
        if results["ext"][key] != results["fitsnap"][key]:
            raise SystemExit(f"the two tools did not see the same data: {key} {results['ext'][key]} vs "
                             f"{results['fitsnap'][key]}")
    p["fitsnap_activation"] = args.fitsnap_activation
    p["repeats"] = args.repeats
    command = "python benchmarks/bench_network_peer.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = table(p, results["ext"], results["fitsnap"], command)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
