"""The validated settings of a fit, one frozen dataclass per deck section (FitSNAP's keys and defaults), and the
output files they name. Built from a deck by `config.load_settings`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations_with_replacement
from pathlib import Path

from .errors import DeckError

@dataclass(frozen=True)
class BispectrumSettings:
    """[BISPECTRUM]: the `compute snap` descriptor (FitSNAP keys and defaults)."""

    types: tuple[str, ...]
    twojmax: int
    rcutfac: float
    rfac0: float
    rmin0: float
    wj: tuple[float, ...]
    radelem: tuple[float, ...]
    bzeroflag: bool
    quadraticflag: bool
    chemflag: bool
    wselfallflag: bool
    bnormflag: bool
    switchflag: bool
    switchinnerflag: bool
    sinner: tuple[float, ...]
    dinner: tuple[float, ...]

    @property
    def numtypes(self) -> int:
        return len(self.types)

    @property
    def blist(self) -> list[tuple[int, int, int]]:
        """(j1, j2, j) triples of the linear bispectrum components, in LAMMPS' order."""
        out = []
        for j1 in range(self.twojmax + 1):
            for j2 in range(j1 + 1):
                for j in range(abs(j1 - j2), min(self.twojmax, j1 + j2) + 1, 2):
                    if j >= j1:
                        out.append((j1, j2, j))
        return out

    @property
    def n_linear(self) -> int:
        """Linear bispectrum components per element (times numtypes³ with chemflag)."""
        n = len(self.blist)
        return n * self.numtypes ** 3 if self.chemflag else n

    @property
    def ncoeff(self) -> int:
        """Descriptor columns per element that `compute snap` returns (linear + quadratic)."""
        n = self.n_linear
        return n + n * (n + 1) // 2 if self.quadraticflag else n

    def coefficient_labels(self) -> list[str]:
        """Labels of one element's coefficients as FitSNAP writes them: B[0] then B[i, j1, j2, j]."""
        lin = [f"B[{i}, {j1}, {j2}, {j}]" for i, (j1, j2, j) in enumerate(self.blist * (self.numtypes ** 3 if self.chemflag else 1), 1)]
        labels = ["B[0]"] + lin
        if self.quadraticflag:
            idx = len(lin) + 1
            for a, b in combinations_with_replacement(range(len(lin)), 2):
                labels.append(f"B[{idx}] = B{a + 1}*B{b + 1}")
                idx += 1
        return labels

    def duplicate_groups(self) -> tuple[int, ...]:
        """A label for each of one element's `compute snap` columns (linear, then quadratic); columns with equal
        labels are identical for every configuration.

        With chemflag, column (e1, e2, e3; j1, j2, j) couples element e1's U_j1 and e2's U_j2 into j and contracts
        with e3's U_j (LAMMPS' SNA::compute_bi). The bispectrum is unchanged by permuting (j1, e1), (j2, e2),
        (j, e3) together (up to (j+1) factors, which are 1 here), so within the stored j ≥ j1 ≥ j2 it equals
        (e2, e1, e3) when j1 = j2, (e3, e2, e1) when j = j1, every permutation when all three are equal, with or
        without bnormflag. A quadratic column B_k·B_l (½B_k² on the diagonal) repeats its factors' labels.
        Without chemflag every label is distinct. pair_style snap's forces assume equal coefficients on equal
        columns (its Y array takes one β per group); the fit ties them.
        """
        from itertools import permutations, product

        blist = self.blist
        if not self.chemflag:
            linear = list(range(len(blist)))
        else:
            n, index, linear = self.numtypes, {}, []
            for triple in product(range(n), repeat=3):
                for k, (j1, j2, j) in enumerate(blist):
                    e1, e2, e3 = triple
                    same = {triple, (e2, e1, e3) if j1 == j2 else triple, (e3, e2, e1) if j == j1 else triple}
                    if j1 == j2 == j:
                        same = set(permutations(triple))
                    linear.append(index.setdefault((min(same), k), len(index)))
        labels = list(linear)
        if self.quadraticflag:
            index = {}
            for a, b in combinations_with_replacement(range(len(linear)), 2):
                key = (min(linear[a], linear[b]), max(linear[a], linear[b]), a == b)
                labels.append(len(linear) + index.setdefault(key, len(index)))
        return tuple(labels)

    def compute_snap_args(self) -> str:
        """Keyword tail for `compute snap` (after rcutfac rfac0 twojmax radelem... wj...)."""
        args = [f"{self.rcutfac!r}", f"{self.rfac0!r}", str(self.twojmax)]
        args += [repr(r) for r in self.radelem] + [repr(w) for w in self.wj]
        args += [f"rmin0 {self.rmin0!r}", f"bzeroflag {int(self.bzeroflag)}",
                 f"quadraticflag {int(self.quadraticflag)}", f"switchflag {int(self.switchflag)}",
                 f"bnormflag {int(self.bnormflag)}", f"wselfallflag {int(self.wselfallflag)}"]
        if self.chemflag:
            args.append(f"chem {self.numtypes} " + " ".join(str(i) for i in range(self.numtypes)))
        if self.switchinnerflag:
            args.append("switchinnerflag 1 sinner " + " ".join(map(repr, self.sinner))
                        + " dinner " + " ".join(map(repr, self.dinner)))
        return " ".join(args)


STRESS_COMPONENTS = {"all": (1.0,) * 6, "diagonal": (1.0, 1.0, 1.0, 0.0, 0.0, 0.0)}  # Voigt xx yy zz yz xz xy


@dataclass(frozen=True)
class CalculatorSettings:
    """[CALCULATOR]: which rows enter the fit."""

    calculator: str = "LAMMPSSNAP"
    energy: bool = True
    force: bool = True
    stress: bool = True
    nonlinear: bool = False
    # "diagonal": fit σ_xx, σ_yy, σ_zz only (data whose shear stresses are unreliable); all six are still reported
    stress_components: str = "all"

    @property
    def stress_mask(self) -> tuple[float, ...]:
        """Per Voigt component (xx yy zz yz xz xy): 1 if it enters the fit."""
        return STRESS_COMPONENTS[self.stress_components]


@dataclass(frozen=True)
class SolverSettings:
    """[SOLVER] (+ [RIDGE]): the fitting method."""

    solver: str = "SVD"
    alpha: float = 1e-6       # ridge penalty, [RIDGE] alpha
    rcond: float = 1e-13      # singular values below rcond*max are dropped (FitSNAP's lstsq cutoff)
    compute_testerrs: bool = True
    detailed_errors: bool = True
    nsam: int = 0             # ANL, BOOTSTRAP: coefficient sets (posterior draws, replicates) written as potentials
    cov_nugget: float = 0.0   # ANL: added to the diagonal of AᵀWA before inverting (FitSNAP's key)
    nboot: int = 100          # BOOTSTRAP: fits to resampled training configurations


@dataclass(frozen=True)
class ScraperSettings:
    """[SCRAPER]: the data format and the unit its stresses are in."""

    scraper: str = "JSON"
    stress_unit: str = "bar"


@dataclass(frozen=True)
class GroupSettings:
    """One [GROUPS] row: split sizes (fractions < 1 or counts) and row weights."""

    name: str
    training_size: float
    testing_size: float
    eweight: float
    fweight: float
    vweight: float


@dataclass(frozen=True)
class GroupsSettings:
    groups: tuple[GroupSettings, ...]
    smartweights: bool = False
    random_sampling: bool = False
    random_seed: int = 0


@dataclass(frozen=True)
class ReferenceSettings:
    """[REFERENCE]: the pair style subtracted from the targets and overlaid in the `.mod`."""

    units: str = "metal"
    atom_style: str = "atomic"
    pair_style: str = "zero 10.0"
    pair_coeffs: tuple[str, ...] = ("* * ",)

    @property
    def commands(self) -> list[str]:
        return [f"pair_style {self.pair_style}"] + [f"pair_coeff {c}" for c in self.pair_coeffs]


@dataclass(frozen=True)
class OutputSettings:
    """[OUTFILE] + [EXTRAS]: output names (relative to the current directory, like FitSNAP)."""

    potential: str = "fitsnap_potential"
    metrics: str = "fitsnap_metrics.md"
    dump_descriptors: bool = False
    dump_truth: bool = False
    dump_weights: bool = False
    dump_dataframe: bool = False
    descriptors_file: str = "Descriptors.npy"
    truth_file: str = "Truth-Ref.npy"
    weights_file: str = "Weights.npy"
    dataframe_file: str = "FitSNAP.df"


@dataclass(frozen=True)
class NetworkSettings:
    """[PYTORCH]: a per-atom network E_i = NN(B_i) trained on energies and forces (FitSNAP's keys + ours).

    As in FitSNAP, `energy_weight` and `force_weight` are given together or not at all: given, they are the loss
    weights of every configuration (overriding the group weights); absent, each configuration's group
    eweight/fweight are the loss weights. The loss is Σ w_E·(ΔE/N)² + w_F·mean(ΔF²) (+ stress_weight·ΔP², P in
    GPa, times the group vweight when the group weights are used).
    """

    hidden: tuple[int, ...] = (32, 32)   # from layer_sizes = num_desc 32 32 1
    activation: str = "tanh"             # tanh | sigmoid | relu (what LAMMPS' mliap model nn implements)
    learning_rate: float = 5e-3
    num_epochs: int = 300
    batch_size: int = 4                  # configurations per batch
    energy_weight: float | None = None   # with force_weight: global loss weights overriding the group weights
    force_weight: float | None = None
    stress_weight: float = 0.0           # loss weight of (stress component error in GPa)²; 0: stresses are
                                         # predicted and reported but not fitted
    seed: int = 0
    validation_fraction: float = 0.1     # of the training configurations, held out for early stopping
    training_fraction: float | None = None  # FitSNAP's global split: overrides the groups' train/test fractions
    shuffle_flag: bool = True            # shuffle the training configurations every epoch (FitSNAP's default)
    multi_element_option: int = 2        # 2: one network per element; 1: one network shared by all (FitSNAP's 1)
    patience: int = 50                   # epochs without validation improvement before stopping (0: never)
    save_state_output: str = "FitTorchModel"
    save_state_input: str = ""
    checkpoint: str = ""                 # file to checkpoint to every save_freq epochs (resumes if present)
    save_freq: int = 10
    ensemble_size: int = 1               # K members (deep ensemble); the mean is exported as one network
    ensemble_bootstrap: bool = False     # members also train on a seeded bootstrap resample of the configurations
    ema_decay: float = 0.0               # exponential moving average of the weights per step (MACE: 0.99); 0: off
    weight_decay: float = 0.0            # AdamW's decoupled weight decay (per unit learning rate); 0: plain Adam
    linear_baseline: bool = False        # Δ-learning: the networks fit what linear SNAP (fitted first) leaves


ACTIVATIONS = ("tanh", "sigmoid", "relu")


@dataclass(frozen=True)
class PropertiesSettings:
    """[PROPERTIES]: simulated properties of the fitted potential, run right after the fit."""

    system: str                       # si | gan | lgps
    properties: tuple[str, ...] = ()  # empty: the system's default list
    quick: bool = False
    out: str = ""                     # default <potential>_props.json
    reference: Path | None = None     # reference values (JSON), relative to the deck's folder


@dataclass(frozen=True)
class Settings:
    """Everything a fit needs, built from one deck."""

    deck: Path
    bispectrum: BispectrumSettings
    calculator: CalculatorSettings
    solver: SolverSettings
    scraper: ScraperSettings
    data_path: Path
    groups: GroupsSettings
    eshift: dict = field(default_factory=dict)
    reference: ReferenceSettings = ReferenceSettings()
    output: OutputSettings = OutputSettings()
    network: NetworkSettings | None = None  # set when [SOLVER] solver = PYTORCH
    properties: PropertiesSettings | None = None
    lines: dict = field(default_factory=dict, compare=False, repr=False)  # (SECTION, lower key) → deck line
    notes: tuple[str, ...] = ()  # accepted FitSNAP keys that change nothing here, said once in the log

    def in_folder(self, out_dir: "str | Path") -> "Settings":
        """The same settings with every relative output name ([OUTFILE], [PYTORCH] files, [PROPERTIES] out) placed
        in `out_dir` instead of the current folder."""
        def place(name: str) -> str:
            return name if not name or Path(name).is_absolute() else str(Path(out_dir) / name)

        out = self.output
        output = replace(out, potential=place(out.potential), metrics=place(out.metrics),
                         descriptors_file=place(out.descriptors_file), truth_file=place(out.truth_file),
                         weights_file=place(out.weights_file), dataframe_file=place(out.dataframe_file))
        network = self.network and replace(self.network, save_state_output=place(self.network.save_state_output),
                                           checkpoint=place(self.network.checkpoint))
        props = self.properties and replace(self.properties, out=place(self.properties.out))
        return replace(self, output=output, network=network, properties=props)

    def error(self, message: str, section: str, key: str | None = None) -> DeckError:
        """A DeckError naming this deck, the line of `[section] key` and the key (for checks made after loading)."""
        line = self.lines.get((section, key.lower())) if key else None
        return DeckError(message, self.deck, line, section, key)




def output_files(settings: Settings) -> list[tuple[str, tuple[str, str]]]:
    """Every file a fit (and its [PROPERTIES] run) writes, with the (SECTION, key) that names it."""
    out, net, props = settings.output, settings.network, settings.properties
    pot = ("OUTFILE", "potential")
    suffixes = (".mliap.model", ".mliap.descriptor", ".mod", ".loss.csv", ".loss.png") if net else \
        (".snapcoeff", ".snapparam", ".mod")
    files = [(f"{out.potential}{suffix}", pot) for suffix in suffixes]
    if settings.solver.solver in ("ANL", "BOOTSTRAP"):
        files.append((f"{out.potential}.covariance.npy", ("SOLVER", "solver")))
        files += [(f"{out.potential}.sample{k}{suffix}", ("SOLVER", "nsam")) for k in range(settings.solver.nsam)
                  for suffix in suffixes]
    if net is not None and net.ensemble_size > 1:  # the members one by one, and the calibration of their spread
        files += [(f"{out.potential}.member{k}{suffix}", ("PYTORCH", "ensemble_size"))
                  for k in range(net.ensemble_size) for suffix in (".mliap.model", ".mliap.descriptor", ".mod")]
    if settings.solver.solver in ("ANL", "BOOTSTRAP") or net is not None and net.ensemble_size > 1:  # models with a predictive σ
        files.append((calibration_csv(out.metrics), ("OUTFILE", "metrics")))
    files += [(out.metrics, ("OUTFILE", "metrics")), (str(Path(out.metrics).with_suffix(".csv")), ("OUTFILE", "metrics"))]
    for flag, name, key in ((out.dump_descriptors, out.descriptors_file, "descriptors"),
                            (out.dump_truth, out.truth_file, "truth"), (out.dump_weights, out.weights_file, "weights"),
                            (out.dump_dataframe, out.dataframe_file, "dataframe")):
        if flag:
            files.append((name, ("OUTFILE", key)))
    if net is not None and net.save_state_output:
        files.append((net.save_state_output, ("PYTORCH", "save_state_output")))
    if props is not None:
        files.append((props.out or f"{out.potential}_props.json", ("PROPERTIES", "out")))
    return files


def calibration_csv(metrics: str) -> str:
    """Where a model with a predictive σ writes its calibration table: `<metrics stem>_calibration.csv`."""
    return str(Path(metrics).with_name(Path(metrics).stem + "_calibration.csv"))
