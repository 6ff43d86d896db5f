# MD sampler potential for gen_gan.in: Tersoff GaN (Nord, Albe, Erhart, Nordlund 2003), GaN.tersoff from the
# LAMMPS distribution. LAMMPS types: 1 = Ga, 2 = N.
pair_style tersoff
pair_coeff * * GaN.tersoff Ga N
