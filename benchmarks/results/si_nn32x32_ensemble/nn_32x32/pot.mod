# Neural-network SNAP potential pot written by fitsnap_ext (units metal).
# Atom types 1..1 are Si. Run LAMMPS from this file's folder.

pair_style mliap model nn pot.mliap.model descriptor sna pot.mliap.descriptor
pair_coeff * * Si
