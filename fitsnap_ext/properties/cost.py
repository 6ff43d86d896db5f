"""What a properties run costs: the atom-steps of each property's LAMMPS runs (from the mode's run settings), the
potential's measured MD speed, and progress lines (fitsnap_ext.progress, prefix "properties") with the time left."""
from __future__ import annotations

import re
from dataclasses import dataclass
from math import prod
from pathlib import Path

from fitsnap_ext.errors import FitsnapError
from fitsnap_ext.progress import Progress
from fitsnap_ext.properties.md_runs import md_steps
from fitsnap_ext.properties.systems import SystemPreset

SPEED_ATOMS = 64            # the speed cell: the MD cell replicated to at least this many atoms
SPEED_STEPS = 50            # timed NVE steps (after 10 untimed ones)
MIN_ITERATIONS = 100        # force evaluations assumed per energy minimisation (eos, elastic)


@dataclass(frozen=True)
class PlannedRun:
    """One LAMMPS run of a property: its run name (as the property module names it), atoms and steps."""

    prop: str
    run_name: str
    natoms: int
    steps: int
    md: bool = True            # False: minimisations or single force evaluations (steps a rough count)

    @property
    def atom_steps(self) -> int:
        return self.natoms * self.steps


def planned_runs(system: SystemPreset, quick: bool, wanted: list[str], n_unit: int, n_md: int) -> list[PlannedRun]:
    """The runs of the wanted properties; `n_unit`/`n_md` atoms in the crystal's cell and in the MD cell.
    MD runs are exact (steps from the run settings); minimisations and force-only runs are rough."""
    m = system.mode(quick)
    runs = [PlannedRun("eos", "eos", n_unit, ((7 if quick else 13) + 1) * MIN_ITERATIONS, False)]
    if "elastic" in wanted:
        runs.append(PlannedRun("elastic", "elastic", n_unit * prod(m.elastic_supercell), 13 * MIN_ITERATIONS,
                               False))
    if "phonons" in wanted:
        runs += [PlannedRun("phonons", "phonon", n_unit * prod(m.phonon_supercell), 6 * n_unit + 1, False),
                 PlannedRun("phonons", "dynmat", n_unit, 6 * n_unit + 1, False)]
    if "liquid" in wanted:
        runs.append(PlannedRun("liquid", "liquid", n_md * prod(m.md_supercell),
                               sum(md_steps(m.timestep_ps, m.liquid_melt_ps, m.liquid_equil_ps, m.liquid_prod_ps))))
    if "melting" in wanted:
        prep, nph = md_steps(m.timestep_ps, m.melt_prep_ps, m.melt_nph_ps)
        runs.append(PlannedRun("melting", "melt", n_md * prod(m.melt_supercell), 2 * prep + round(prep / 2) + nph))
    if "thermal" in wanted:
        steps = sum(md_steps(m.timestep_ps, m.thermal_equil_ps, m.thermal_steady_ps, m.thermal_prod_ps))
        runs += [PlannedRun("thermal", f"thermal_run{run + 1}", n_md * prod(m.thermal_supercell), steps)
                 for run in range(m.thermal_runs)]
    if "diffusion" in wanted:
        steps = sum(md_steps(m.timestep_ps, m.diffusion_equil_ps, m.diffusion_prod_ps))
        runs += [PlannedRun("diffusion", f"diffusion_T{temp:g}_run{run + 1}", n_md * prod(m.diffusion_supercell), steps)
                 for temp in system.diffusion_T for run in range(m.diffusion_runs)]
    return runs


def speed_replication(lengths, natoms: int, target: int = SPEED_ATOMS) -> tuple[int, int, int]:
    """Replicas of a cell (edge lengths, atoms) reaching `target` atoms, growing the shortest edge first."""
    reps = [1, 1, 1]
    while natoms * prod(reps) < target:
        k = min(range(3), key=lambda i: (lengths[i] * reps[i], i))
        reps[k] += 1
    return tuple(reps)


def loop_speed(log: Path) -> float:
    """Atom-steps per second of the last `run` in a LAMMPS log ("Loop time of T on P procs for N steps with M
    atoms")."""
    found = re.findall(r"Loop time of (\S+) on \d+ procs for (\d+) steps with (\d+) atoms", Path(log).read_text())
    if not found:
        raise FitsnapError(f"{log}: no 'Loop time' line (the speed run did not finish)")
    seconds, steps, atoms = (float(x) for x in found[-1])
    return atoms * steps / max(seconds, 1e-9)


def measure_speed(runner, md_atoms, md_data: Path, out: Path, temperature: float) -> float:
    """MD speed of the potential (atom-steps/s on this communicator): NVE on the MD cell replicated to ≥ 64 atoms."""
    nx, ny, nz = speed_replication(md_atoms.cell.lengths(), len(md_atoms))
    runner.run("speed", "speed", data=md_data, out=out, nx=nx, ny=ny, nz=nz, T=temperature, steps=SPEED_STEPS)
    return loop_speed(runner.logs / "log.speed.lammps")


def duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 2 h 07 min."""
    s = int(round(seconds))
    if seconds < 1:
        return "<1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class RunProgress(Progress):
    """Progress lines ("properties") per property and per LAMMPS run, with the time left; the DeckRunner's monitor.

    The time left is the planned atom-steps still to run over the speed: the measured one until MD runs have
    finished, then the speed those runs actually had (a loaded machine, a liquid denser than the crystal)."""

    def __init__(self, comm, runs: list[PlannedRun], stream=None):
        super().__init__(comm, "properties", stream)
        self.runs = {r.run_name: r for r in runs}
        self.finished: dict[str, float] = {}
        self.speed: float | None = None

    def effective_speed(self) -> float | None:
        """Atom-steps/s: of the MD runs done so far, else the measured speed."""
        done = [(self.runs[n].atom_steps, s) for n, s in self.finished.items() if self.runs[n].md]
        if done and sum(s for _, s in done) > 0:
            return sum(a for a, _ in done) / sum(s for _, s in done)
        return self.speed

    def seconds(self, runs) -> float | None:
        speed = self.effective_speed()
        return sum(r.atom_steps for r in runs) / speed if speed else None

    def left(self) -> str:
        seconds = self.seconds(r for n, r in self.runs.items() if n not in self.finished)
        return "" if seconds is None else f", about {duration(seconds)} left"

    def estimate(self, speed: float, atoms: int) -> dict[str, float]:
        """Set the measured speed, print the estimated cost per property and in all; returns seconds per property."""
        self.speed = speed
        by_prop: dict[str, list[PlannedRun]] = {}
        for r in self.runs.values():
            by_prop.setdefault(r.prop, []).append(r)
        estimated = {p: self.seconds(rs) for p, rs in by_prop.items()}
        parts = [f"{p} {duration(s)} ({sum(r.atom_steps for r in by_prop[p]) / 1e6:.3g} M atom-steps)"
                 for p, s in estimated.items()]
        self(f"estimated cost at {speed / 1e3:.1f} katom-step/s (measured: {atoms} atoms x {SPEED_STEPS} MD steps): "
             f"{duration(sum(estimated.values()))} in all; " + ", ".join(parts))
        return estimated

    def started(self, run_name: str) -> None:
        run = self.runs.get(run_name)
        if run is not None and run.md:
            guess = self.seconds([run])
            self(f"{run.prop}: LAMMPS run '{run_name}' started: {run.natoms} atoms x {run.steps} steps"
                 + ("" if guess is None else f", ~{duration(guess)}"))

    def ended(self, run_name: str, seconds: float) -> None:
        if run_name in self.runs:
            self.finished[run_name] = seconds
            self(f"{self.runs[run_name].prop}: LAMMPS run '{run_name}' done in {seconds:.1f} s{self.left()}")
