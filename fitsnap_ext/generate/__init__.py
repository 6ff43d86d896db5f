"""Training-data generator: samplers (strain/rattle, MD, active learning) x labelers (LAMMPS, CP2K, SevenNet,
any ASE calculator), resumable, writing one extended XYZ file per group. Entry point: :func:`cli.main`."""
