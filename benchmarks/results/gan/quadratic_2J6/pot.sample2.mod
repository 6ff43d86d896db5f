# SNAP potential pot.sample2 written by fitsnap_ext (units metal).
# Atom types 1..2 are Ga N. Run LAMMPS from this file's folder.

pair_style snap
pair_coeff * * pot.sample2.snapcoeff pot.sample2.snapparam Ga N
