# SNAP potential pot.sample1 written by fitsnap_ext (units metal).
# Atom types 1..2 are Ga N. Run LAMMPS from this file's folder.

pair_style snap
pair_coeff * * pot.sample1.snapcoeff pot.sample1.snapparam Ga N
