# Neural-network SNAP potential pot.member2 written by fitsnap_ext (units metal).
# Atom types 1..1 are Si. Run LAMMPS from this file's folder.

pair_style mliap model nn pot.member2.mliap.model descriptor sna pot.member2.mliap.descriptor
pair_coeff * * Si
