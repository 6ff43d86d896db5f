"""Linear (and quadratic) SNAP as an estimator: `compute snap` rows → weighted least squares (TSQR over ranks) →
`pair_style snap` files. Quadratic SNAP is the same model on quadratic descriptors ([BISPECTRUM] quadraticflag)."""
from __future__ import annotations

import time

import numpy as np

from .settings import Settings
from .descriptors import ENERGY, FORCE, KIND_NAMES, Rows, SnapCalculator, n_columns
from .errors import FitsnapError
from .estimator import SnapEstimator, prediction_settings, unlabelled_entries, with_solver
from .export.snap import snap_files
from .metrics import residual_sums
from .models.linear import LinearSolver, column_groups
from .parallel import collective, map_entries

UQ_SOLVERS = ("ANL", "BOOTSTRAP")  # the solvers that give a covariance, a predictive σ and coefficient sets
TOTAL_ENERGY_EV_PER_ATOM = 20.0  # |E/atom| above this is a total energy (GTH/plane-wave codes), not a cohesive one


class LinearSNAP(SnapEstimator):
    """E = Σ_i β·B_i (+ a constant per element, + ½ βᵀ(B_i⊗B_i) with quadraticflag) fitted by weighted least
    squares: `solver` SVD (FitSNAP's `rcond` cutoff), RIDGE (`alpha`), ANL (FitSNAP's Bayesian solve with
    `cov_nugget`: the posterior mean, its covariance and `nsam` coefficient sets drawn from it) or BOOTSTRAP (the
    SVD fit; `nboot` SVD fits to resamples of the training configurations give the covariance, and the first
    `nsam` of them are the coefficient sets). Learned: `coef_` (one per column, per element: constant then
    components), `rank_`, `n_free_`, `singular_values_`, `settings_`; with ANL or BOOTSTRAP also `covariance_` and
    `samples_` (nsam × ncoef), with ANL `sigma2_` (the data's noise variance, weighted units)."""

    kind = "linear"
    calibration_scaled_on = "the training rows (the fit's own residuals: no validation split)"

    def __init__(self, settings=None, solver: str = "SVD", alpha: float = 1e-6, rcond: float = 1e-13,
                 nsam: int = 0, cov_nugget: float = 0.0, nboot: int = 100, seed: int = 0):
        self.settings = settings
        self.solver = solver
        self.alpha = alpha
        self.rcond = rcond
        self.nsam = nsam
        self.cov_nugget = cov_nugget
        self.nboot = nboot
        self.seed = seed

    @classmethod
    def from_settings(cls, settings: Settings) -> "LinearSNAP":
        s = settings.solver
        return cls(settings, s.solver, s.alpha, s.rcond, s.nsam, s.cov_nugget, s.nboot)

    def apply_params(self, settings: Settings) -> Settings:
        if settings.network is not None:
            raise FitsnapError("the deck describes a network ([SOLVER] solver = PYTORCH): use NetworkSNAP")
        if self.solver not in ("SVD", "RIDGE") + UQ_SOLVERS:
            raise FitsnapError(f"solver {self.solver!r}: LinearSNAP solves SVD, RIDGE, ANL or BOOTSTRAP")
        return with_solver(settings, solver=self.solver, alpha=self.alpha, rcond=self.rcond, nsam=self.nsam,
                           cov_nugget=self.cov_nugget, nboot=self.nboot)

    @property
    def has_std(self) -> bool:
        return self.solver in UQ_SOLVERS

    def describe(self) -> str:
        bs = self.settings_.bispectrum
        return f"{self.solver}, 2J={bs.twojmax}, {'quadratic' if bs.quadraticflag else 'linear'} SNAP"

    # ------------------------------------------------------------------ pipeline hooks
    def descriptors(self, settings: Settings, entries, comm, progress) -> Rows:
        blocks = map_entries(lambda: SnapCalculator(settings), lambda calc, entry: calc.rows(entry), entries, comm,
                             progress, "descriptors")
        return Rows.concatenate(blocks, n_columns(settings))

    def fit_descriptors(self, settings: Settings, entries, rows: Rows, comm, progress, timings=None):
        bs = settings.bispectrum
        note = bzero_offset_note(settings, entries, comm)
        if note:
            progress(note)
        took = f" in {timings['descriptors']:.2f} s" if timings and "descriptors" in timings else ""
        progress(f"descriptors done: {comm.allreduce(len(rows.b))} rows × {rows.a.shape[1]} columns "
                 f"(2J={bs.twojmax}, {'quadratic' if bs.quadraticflag else 'linear'}){took}")
        test = _row_split(entries, rows)
        t = time.perf_counter()
        with collective(comm, "solving"):
            if comm.allreduce(int((~test).sum())) == 0:
                raise FitsnapError("no training rows: every configuration is in the test split")
            solver = LinearSolver(self.solver, self.alpha, self.rcond, groups=column_groups(bs),
                                  nugget=self.cov_nugget, nboot=self.nboot, seed=self.seed)
            solver.fit(rows, comm, train_mask=~test)  # chemflag's identical columns get one coefficient
        self.coef_, self.rank_, self.n_free_ = solver.coef_, solver.rank_, solver.n_free_
        self.singular_values_ = solver.singular_values_
        self.settings_ = settings
        if self.solver in UQ_SOLVERS:
            self._posterior(solver, progress)
        tied = f" ({len(self.coef_)} with chemflag's tied copies)" if self.n_free_ < len(self.coef_) else ""
        sv = self.singular_values_
        progress(f"solved {self.solver}: rank {self.rank_} of {self.n_free_} coefficients{tied}, "
                 f"condition {sv[0] / sv[-1]:.3g} in {time.perf_counter() - t:.2f} s")
        self.warning_ = rank_warning(self.rank_, self.n_free_, settings)
        if self.warning_:
            progress(self.warning_)
        return self

    def _posterior(self, solver: LinearSolver, progress) -> None:
        """The coefficients' covariance and `nsam` coefficient sets: ANL's drawn from its posterior, BOOTSTRAP's
        the first replicates (in the tied space, so every set is tied)."""
        from .models.posterior import sample_coefficients

        self.covariance_, self.covariance_factor_ = solver.covariance_, solver.covariance_factor_
        if self.solver == "ANL":
            self.sigma2_ = solver.sigma2_
            draws = sample_coefficients(solver.free_coef_, solver.reduced_covariance_, self.nsam, self.seed)
            what = f"ANL posterior: noise σ̂ = {np.sqrt(self.sigma2_):.4g} (weighted units)"
        else:
            draws = solver.replicates_[:self.nsam]
            what = f"bootstrap: {self.nboot} fits to resampled training configurations"
        self.samples_ = draws if solver.ties is None else solver.ties.expand(draws)
        sd = np.sqrt(np.diag(self.covariance_))
        progress(f"{what}; coefficient σ from {sd.min():.3g} to {sd.max():.3g}; {self.nsam} coefficient sets")

    def error_sums(self, settings: Settings, entries, rows: Rows) -> dict:
        return residual_sums(rows.a @ self.coef_ - rows.b, rows.kind, _per_row(entries, rows, "group"),
                             _row_split(entries, rows))

    def potential_files(self, stem: str) -> dict:
        """The potential (.snapcoeff/.snapparam/.mod); with ANL or BOOTSTRAP also `stem.covariance.npy` and each
        coefficient set as a deployable potential `stem.sample<k>.*`."""
        bs, reference = self.settings_.bispectrum, self.settings_.reference
        files = snap_files(stem, self.coef_, bs, reference)
        if self.solver in UQ_SOLVERS:
            cov = self.covariance_
            files[f"{stem}.covariance.npy"] = lambda p: np.save(open(p, "wb"), cov)
            for k, coef in enumerate(self.samples_):
                files.update(snap_files(f"{stem}.sample{k}", coef, bs, reference))
        return files

    def fit_files(self, settings: Settings, entries, rows: Rows, comm) -> dict:
        """FitSNAP's optional dumps ([EXTRAS] dump_*): every row gathered on rank 0 (collective)."""
        out = settings.output
        if not (out.dump_descriptors or out.dump_truth or out.dump_weights or out.dump_dataframe):
            return {}
        meta = {e.index: (e.frame.group, e.frame.label(), e.test) for e in entries}
        all_meta = comm.gather(meta, root=0)
        full = gather_rows(rows, comm)
        if comm.rank != 0:
            return {}
        merged = {k: v for m in all_meta for k, v in m.items()}
        return dump_files(settings, full, full.a @ self.coef_, merged)

    def metrics_note(self) -> str:
        return self.warning_

    def calibration(self, settings: Settings, entries, rows: Rows, comm) -> list[dict] | None:
        """ANL, BOOTSTRAP: how well σ = sqrt(aᵀΣa) covers the test errors (energy per atom, force components), raw
        and with one scale fitted on the training rows (collective; rank 0's list, None elsewhere or without σ).
        Rows whose prediction does not depend on the coefficients (design rows zero to round-off: forces fixed
        by a crystal's symmetry) have no σ to calibrate and are left out (calibration.informative)."""
        if self.solver not in UQ_SOLVERS:
            return None
        from . import calibration
        from .models.posterior import predictive_std

        test = _row_split(entries, rows)
        parts = {}
        for quantity, kind in (("Energy", ENERGY), ("Force", FORCE)):
            for split, mask in (("test", test), ("train", ~test)):
                sel = (rows.kind == kind) & mask & (rows.w > 0)
                sigma = predictive_std(rows.a[sel], self.covariance_factor_)
                keep = calibration.informative(sigma, rows.a[sel])
                parts[quantity, split] = ((rows.a[sel] @ self.coef_ - rows.b[sel])[keep], sigma[keep])
        gathered = comm.gather(parts, root=0)
        if comm.rank != 0:
            return None
        table = []
        for quantity in ("Energy", "Force"):
            def joined(split, i):
                return np.concatenate([g[quantity, split][i] for g in gathered])
            if len(joined("test", 0)) and len(joined("train", 0)):
                scale = calibration.fit_scale(joined("train", 0), joined("train", 1))
                table += [calibration.calibration_row(quantity, joined("test", 0), joined("test", 1), factor)
                          for factor in (1.0, scale)]
        return table

    def predict_frames(self, settings: Settings, frames, return_std: bool = False):
        if return_std and self.solver not in UQ_SOLVERS:
            raise FitsnapError(f"solver {self.solver} gives no predictive σ: fit with solver = ANL or BOOTSTRAP")
        settings = prediction_settings(settings, frames)
        calc = SnapCalculator(settings)
        try:
            for entry in unlabelled_entries(settings, frames):
                yield calc.predict(entry, self.coef_, self.covariance_factor_ if return_std else None)
        finally:
            calc.close()



def _per_row(entries, rows: Rows, what: str) -> np.ndarray:
    """Each row's configuration's `what` ("test" or "group"), looked up by the rows' entry indices at once."""
    values = np.empty(max((e.index for e in entries), default=-1) + 1, dtype=bool if what == "test" else object)
    for e in entries:
        values[e.index] = e.test if what == "test" else e.frame.group
    return values[rows.entry]


def _row_split(entries, rows: Rows) -> np.ndarray:
    """True for the rows of test configurations."""
    return _per_row(entries, rows, "test")


def gather_rows(rows: Rows, comm) -> Rows | None:
    """All rows on rank 0 in deck order (only for the optional FitSNAP-style dumps)."""
    parts = comm.gather(rows, root=0)
    if comm.rank != 0:
        return None
    full = Rows.concatenate(parts, rows.a.shape[1])
    order = np.argsort(full.entry, kind="stable")
    return Rows(full.a[order], full.b[order], full.w[order], full.kind[order], full.entry[order])


def dump_files(settings: Settings, rows: Rows, pred: np.ndarray, entries_meta: dict) -> dict:
    out = settings.output
    files = {}
    if out.dump_descriptors:
        files[out.descriptors_file] = lambda p: np.save(open(p, "wb"), rows.a)
    if out.dump_truth:
        files[out.truth_file] = lambda p: np.save(open(p, "wb"), rows.b)
    if out.dump_weights:
        files[out.weights_file] = lambda p: np.save(open(p, "wb"), rows.w)
    if out.dump_dataframe:
        def write_frame(p):
            import pandas as pd

            meta = [entries_meta[int(i)] for i in rows.entry]
            pd.DataFrame({"Groups": [m[0] for m in meta], "Configs": [m[1] for m in meta],
                          "Testing": [m[2] for m in meta], "Row_Type": [KIND_NAMES[k] for k in rows.kind],
                          "truths": rows.b, "preds": pred, "weights": rows.w}).to_pickle(p)
        files[out.dataframe_file] = write_frame
    return files


def bzero_offset_note(settings: Settings, entries, comm) -> str:
    """A note when bzeroflag = 1 meets total-energy labels: that flag fits no per-element constant (an isolated
    atom has zero energy), so an offset of hundreds of eV/atom must come from the descriptors and ruins the fit."""
    bs = settings.bispectrum
    if not (bs.bzeroflag and settings.calculator.energy):
        return ""
    energy = comm.allreduce(sum(e.frame.energy for e in entries))  # every frame has one (the readers check)
    atoms = comm.allreduce(sum(e.frame.natoms for e in entries))
    if atoms == 0 or abs(energy / atoms) < TOTAL_ENERGY_EV_PER_ATOM:
        return ""
    return (f"note: the energies average {energy / atoms:.1f} eV/atom (total energies) and bzeroflag = 1 fits no "
            f"per-element constant: the descriptors must carry that offset and the fit suffers; set [BISPECTRUM] "
            f"bzeroflag = 0 (a constant per element) or subtract isolated-atom energies")


def rank_warning(rank: int, ncoef: int, settings: Settings) -> str:
    """A loud line when the data determine fewer coefficients than the model has (rcutfac or radelem too small
    to see neighbours, too few configurations): those coefficients are the solver's choice."""
    if rank >= ncoef:
        return ""
    bs = settings.bispectrum
    return (f"WARNING: rank-deficient fit: the data determine {rank} of {ncoef} coefficients; the other "
            f"{ncoef - rank} are set by the solver's regularisation, not by the data (check [BISPECTRUM] rcutfac "
            f"{bs.rcutfac!r} and radelem {' '.join(map(repr, bs.radelem))}: cutoff "
            f"{2 * bs.rcutfac * max(bs.radelem):.3g} Å; and the amount of data)")
