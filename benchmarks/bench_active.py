"""One round of active learning on the predicted force σ against random picks from the same MD pool (Si, SW teacher).

    python benchmarks/bench_active.py [--model linear|ensemble] [--reps 5] [--n 20] [--per-t 100] [--nsam 8]
        [--members 3] [--hidden 16,16] [--epochs 1500] [--out benchmarks/results/bench_active.md]

Per repetition r (seed r): a small initial set (input_files/demo volume.xyz + 20 random of strain_rattle.xyz,
8-atom cells) fits the model (2J = 6 bispectrum, the demo deck's group weights): `--model linear` (default) a
linear ANL SNAP with `nsam` posterior draws exported as `.sample<k>.mod`; `--model ensemble` a deep ensemble of
`members` per-atom networks (NetworkSNAP, [PYTORCH] ensemble_size, seeds r..r+K-1), each member exported as
`.member<k>.mod`. A pool of candidates comes from Stillinger–Weber MD of 64-atom Si (Langevin, 1 fs; 1200 K and
1800 K from diamond, 2500 K after melting at 4000 K), `per_t` snapshots per temperature, seeds from r. The
generator's criterion (`samplers.force_disagreement`: max over atoms of the per-atom force σ over those `.mod`s)
picks N; N random candidates of the same pool are the control. Both are labelled with SW and refitted with the
initial set (same weights, same seed). Test set: input_files/demo md_1200K.xyz + md_2500K.xyz (80 SW-labelled
64-atom frames from other trajectories, relabelled here with SW), force error per component in eV/Å (metal
units); the network's predictions are the ensemble mean. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEMPERATURES = (1200.0, 1800.0, 2500.0)
WEIGHTS = "100 1 1e-4"  # energy (per atom), force, stress: the demo deck's


def deck():
    """2J = 6 linear SNAP as input_files/in.demo, every group training (energies per atom weigh 100)."""
    import fitsnap_ext as fx

    return fx.load_deck({
        "BISPECTRUM": {"numTypes": 1, "twojmax": 6, "rcutfac": 4.7, "rfac0": 0.99363, "rmin0": 0.0, "wj": 1.0,
                       "radelem": 0.5, "type": "Si", "bzeroflag": 0, "quadraticflag": 0},
        "CALCULATOR": {"calculator": "LAMMPSSNAP", "energy": 1, "force": 1, "stress": 1},
        "SOLVER": {"solver": "ANL"},
        "GROUPS": {"group_sections": "name training_size testing_size eweight fweight vweight",
                   "group_types": "str float float float float float", "smartweights": 0,
                   **{g: f"1.0 0.0 {WEIGHTS}" for g in ("initial", "added")}}})


def label(frames, sw_mod, group):
    """The frames relabelled by SW (energy eV, forces eV/Å, stress bar), in group `group`."""
    from fitsnap_ext.data.frame import Frame
    from fitsnap_ext.lammps_engine import LammpsEngine

    eng = LammpsEngine(["Si"], str(sw_mod))
    try:
        out = []
        for fr in frames:
            e, f, s = eng.compute(fr)
            out.append(Frame(list(fr.symbols), fr.positions.copy(), fr.cell.copy(), e, f, s, group=group))
        return out
    finally:
        eng.close()


def pool(sw_mod, seed, per_t):
    """SW MD snapshots of 64-atom Si: (frames, temperature of each)."""
    from fitsnap_ext.generate.structures import load_structure
    from fitsnap_ext.lammps_engine import LammpsEngine

    base = load_structure("si_diamond", supercell=(2, 2, 2))
    frames, temps = [], []
    for k, t in enumerate(TEMPERATURES):
        eng = LammpsEngine(["Si"], str(sw_mod))
        melt = (4000.0, 3000) if t >= 2500 else (0.0, 0)
        try:
            for _, _, fr in eng.md(base, t, per_t, 100, 1000, 0.001, 1000 * seed + k, "nvt", 0.0, 0.1, *melt):
                frames.append(fr)
                temps.append(t)
        finally:
            eng.close()
    return frames, np.array(temps)


def fit(frames, args, seed):
    """The `--model` fitted to `frames` with seed `seed` (an ensemble's members: seed, seed + 1, ...)."""
    import fitsnap_ext as fx

    if args.model == "linear":
        return fx.LinearSNAP(deck(), solver="ANL", nsam=args.nsam, seed=seed).fit(frames)
    return fx.NetworkSNAP(deck(), hidden=args.hidden, activation="tanh", num_epochs=args.epochs,
                          learning_rate=args.lr, batch_size=4, patience=args.patience, seed=seed,
                          ensemble_size=args.members).fit(frames)


def sigma_mods(folder, args):
    """The exported `.mod`s whose force spread is σ: ANL posterior draws or ensemble members."""
    if args.model == "linear":
        return [str(folder / f"Si_pot.sample{k}.mod") for k in range(args.nsam)]
    return [str(folder / f"Si_pot.member{k}.mod") for k in range(args.members)]


def model_text(args) -> str:
    if args.model == "linear":
        return f"linear ANL SNAP 2J=6 with {args.nsam} posterior draws"
    stop = f"early stop after {args.patience} epochs without gain" if args.patience else "no early stop"
    return (f"deep ensemble of {args.members} per-atom networks {deck().bispectrum.ncoeff}-"
            f"{'-'.join(map(str, args.hidden))}-1 tanh on the 2J=6 bispectrum ({args.epochs} epochs, {stop}, each "
            f"member's best-validation epoch kept; learning rate {args.lr:g}, batch 4; σ over the {args.members} "
            f"member .mods, predictions the members' mean)")


def force_errors(model, test):
    """(MAE, RMSE) of the force components (eV/Å) over `test`, and the MAE of each test temperature."""
    _, forces, _ = model.predict(test)
    err = [f - t.forces for f, t in zip(forces, test)]
    flat = np.concatenate([e.ravel() for e in err])
    by_t = {t: float(np.mean(np.abs(np.concatenate([e.ravel() for e, fr in zip(err, test) if fr.group == t]))))
            for t in sorted({fr.group for fr in test})}
    return float(np.abs(flat).mean()), float(np.sqrt((flat ** 2).mean())), by_t


def repetition(r, args, sw_mod, demo, test, work):
    """One round; a dict of its numbers."""
    from fitsnap_ext.generate.samplers import force_disagreement

    rng = np.random.default_rng(r)
    initial = label(demo["volume"] + [demo["strain_rattle"][i] for i in sorted(
        rng.choice(len(demo["strain_rattle"]), 20, replace=False))], sw_mod, "initial")
    model = fit(initial, args, r)
    folder = work / f"rep{r}"
    model.export(folder, "Si_pot")
    cands, temps = pool(sw_mod, r, args.per_t)
    t0 = time.perf_counter()
    sigma = force_disagreement(cands, sigma_mods(folder, args), ["Si"])
    t_sigma = time.perf_counter() - t0
    labelled = label(cands, sw_mod, "added")
    _, f_init, _ = model.predict(labelled)
    true_max = np.array([np.abs(f - c.forces).max() for f, c in zip(f_init, labelled)])
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    spearman = float(np.corrcoef(rank(sigma), rank(true_max))[0, 1])
    picks = {"sigma": np.argsort(-sigma, kind="stable")[: args.n],
             "random": rng.choice(len(cands), args.n, replace=False)}
    row = {"rep": r, "pool": len(cands), "init": force_errors(model, test), "spearman": spearman,
           "t_sigma": t_sigma, "sigma_median": float(np.median(sigma)), "init_train": force_errors(model, initial)}
    for name, idx in picks.items():
        train = initial + [labelled[int(j)] for j in idx]
        refit = fit(train, args, r)
        row[name] = force_errors(refit, test)
        row[name + "_train"] = force_errors(refit, train)
        row[name + "_t"] = {t: int((temps[idx] == t).sum()) for t in TEMPERATURES}
        row[name + "_sigma"] = float(np.median(sigma[idx]))
    return row


def table(rows, args) -> str:
    f = "{:.4f}".format
    lines = [f"N = {args.n} picked from {rows[0]['pool']} SW MD candidates ({args.per_t} each at "
             f"{', '.join(f'{t:g}' for t in TEMPERATURES)} K), {model_text(args)}; test: 80 demo frames (40 at 1200 K, "
             f"40 liquid at 2500 K). Force errors per component, eV/Å.", "",
             "| rep | initial MAE | σ-picked MAE | random MAE | σ/random MAE | initial RMSE | σ-picked RMSE "
             "| random RMSE | σ/random RMSE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rep']} | {f(r['init'][0])} | {f(r['sigma'][0])} | {f(r['random'][0])} | "
                     f"{r['sigma'][0] / r['random'][0]:.3f} | {f(r['init'][1])} | {f(r['sigma'][1])} | "
                     f"{f(r['random'][1])} | {r['sigma'][1] / r['random'][1]:.3f} |")
    mean = lambda k, i: np.mean([r[k][i] for r in rows])  # noqa: E731
    ratios = [r["sigma"][0] / r["random"][0] for r in rows]
    lines.append(f"| mean | {f(mean('init', 0))} | {f(mean('sigma', 0))} | {f(mean('random', 0))} | "
                 f"{np.mean(ratios):.3f} ± {np.std(ratios, ddof=1) if len(rows) > 1 else 0:.3f} | "
                 f"{f(mean('init', 1))} | {f(mean('sigma', 1))} | {f(mean('random', 1))} | "
                 f"{np.mean([r['sigma'][1] / r['random'][1] for r in rows]):.3f} |")
    lines += ["", "Per test temperature (force MAE, eV/Å) and what each pick took from the pool:", "",
              "| rep | test group | initial | σ-picked | random | picks per pool T (σ) | picks per pool T (random) "
              "| median max-atom σ: pool / σ-picks / random picks (eV/Å) | Spearman(σ, initial max-atom error) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for t in r["init"][2]:
            picks = lambda k: " / ".join(str(r[k][t]) for t in TEMPERATURES)  # noqa: E731
            lines.append(f"| {r['rep']} | {t} | {f(r['init'][2][t])} | {f(r['sigma'][2][t])} | "
                         f"{f(r['random'][2][t])} | {picks('sigma_t')} | {picks('random_t')} | "
                         f"{r['sigma_median']:.3f} / {r['sigma_sigma']:.3f} / {r['random_sigma']:.3f} | "
                         f"{r['spearman']:.2f} |")
    train = lambda k: np.mean([r[k][0] for r in rows])  # noqa: E731
    lines += ["", f"Training-set force MAE (eV/Å, mean over repetitions; a network holds 10 % of its set out for "
              f"validation): initial model {f(train('init_train'))}, σ refit {f(train('sigma_train'))}, "
              f"random refit {f(train('random_train'))}."]
    return "\n".join(lines)


def main() -> None:
    sys.path.insert(0, str(REPO))
    import fitsnap_ext as fx
    from fitsnap_ext.lammps_session import potentials_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("linear", "ensemble"), default="linear")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--per-t", type=int, default=100)
    ap.add_argument("--nsam", type=int, default=8)
    ap.add_argument("--members", type=int, default=3, help="ensemble: K networks")
    ap.add_argument("--hidden", type=lambda x: tuple(int(h) for h in x.split(",")), default=(16, 16),
                    help="ensemble: hidden layer widths, e.g. 16,16 or 16")
    ap.add_argument("--epochs", type=int, default=1500, help="ensemble: epochs")
    ap.add_argument("--lr", type=float, default=5e-3, help="ensemble: learning rate")
    ap.add_argument("--patience", type=int, default=0, help="ensemble: early-stopping patience (epochs; 0: none)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sw_mod = work / "Si_sw.mod"
        sw_mod.write_text(f"pair_style sw\npair_coeff * * {potentials_dir() / 'Si.sw'} Si\n")
        demo = {g: fx.read_frames(REPO / "input_files" / "demo" / f"{g}.xyz", stress_unit="bar")
                for g in ("volume", "strain_rattle", "md_1200K", "md_2500K")}
        test = label(demo["md_1200K"], sw_mod, "md_1200K") + label(demo["md_2500K"], sw_mod, "md_2500K")
        rows = []
        for r in range(args.reps):
            rows.append(repetition(r, args, sw_mod, demo, test, work))
            print(f"rep {r}: {time.perf_counter() - t0:.0f} s (σ of the pool: {rows[-1]['t_sigma']:.1f} s)",
                  file=sys.stderr)
    text = table(rows, args) + f"\n\nWall time {time.perf_counter() - t0:.0f} s (1 rank).\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
