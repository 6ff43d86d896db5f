# SNAP potential pot written by fitsnap_ext (units metal).
# Atom types 1..2 are Ga N. Run LAMMPS from this file's folder.

pair_style snap
pair_coeff * * pot.snapcoeff pot.snapparam Ga N
