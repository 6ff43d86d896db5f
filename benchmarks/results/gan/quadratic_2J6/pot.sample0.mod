# SNAP potential pot.sample0 written by fitsnap_ext (units metal).
# Atom types 1..2 are Ga N. Run LAMMPS from this file's folder.

pair_style snap
pair_coeff * * pot.sample0.snapcoeff pot.sample0.snapparam Ga N
