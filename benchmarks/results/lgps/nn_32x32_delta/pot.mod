# Neural-network SNAP potential pot written by fitsnap_ext (units metal).
# Atom types 1..4 are Li Ge P S. Run LAMMPS from this file's folder.

pair_style hybrid/overlay zbl 4.0 4.8 mliap model nn pot.mliap.model descriptor sna pot.mliap.descriptor
pair_coeff 1 1 zbl 3 3
pair_coeff 1 2 zbl 3 32
pair_coeff 1 3 zbl 3 15
pair_coeff 1 4 zbl 3 16
pair_coeff 2 2 zbl 32 32
pair_coeff 2 3 zbl 32 15
pair_coeff 2 4 zbl 32 16
pair_coeff 3 3 zbl 15 15
pair_coeff 3 4 zbl 15 16
pair_coeff 4 4 zbl 16 16
pair_coeff * * mliap Li Ge P S
