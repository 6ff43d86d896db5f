# Neural-network SNAP potential pot.member1 written by fitsnap_ext (units metal).
# Atom types 1..1 are Si. Run LAMMPS from this file's folder.

pair_style mliap model nn pot.member1.mliap.model descriptor sna pot.member1.mliap.descriptor
pair_coeff * * Si
