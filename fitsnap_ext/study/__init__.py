"""The model-complexity study (`python -m fitsnap_ext study STUDY_DECK`).

For every model of a ladder on the same descriptors and the same fixed train/test split: fit it, deploy the
`.mod` in LAMMPS, compute simulated properties with the property engine, time NVE MD on a fixed supercell,
and compare everything with ab initio references. Writes `study.md`, `study.csv` and PNG plots.

Modules, imports flowing one way: cli → stages → deck (the study deck), cache (stage keys and records), abinitio
(references), report → plots → summary (the per-model rows) → statistics (error bars: bootstrap, z tests).
"""
from .abinitio import abinitio_reference, data_provenance, labeler_summary, load_literature, rdf_numpy
from .cache import data_fingerprint, fit_key, stage_key
from .cli import main
from .deck import ModelSpec, StudySpec, ladder_models, model_settings, network_weights, read_study, study_system
from .report import failure_lines, write_report
from .stages import network_available, parameter_count, run_study
from .summary import summary_row

__all__ = ["ModelSpec", "StudySpec", "abinitio_reference", "data_fingerprint", "data_provenance", "failure_lines",
           "fit_key", "labeler_summary", "ladder_models", "load_literature", "main", "model_settings",
           "network_available", "network_weights", "parameter_count", "rdf_numpy", "read_study", "run_study",
           "stage_key", "study_system", "summary_row", "write_report"]
