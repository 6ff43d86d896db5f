# SNAP potential pot written by fitsnap_ext (units metal).
# Atom types 1..1 are Si. Run LAMMPS from this file's folder.

pair_style snap
pair_coeff * * pot.snapcoeff pot.snapparam Si
