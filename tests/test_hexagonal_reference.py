"""The hexagonal (a, c) reference: zero-stress a, c and bulk modulus of wurtzite from energies of a grid of
strained cells (GaN's volume set), checked against LAMMPS' own relaxation of the same clamped-ion crystal
(Tersoff GaN, GaN.tersoff shipped with LAMMPS) and against an exact polynomial surface."""
import numpy as np
import pytest

from fitsnap_ext.properties.eos import EV_A3_TO_GPA, fit_hexagonal_surface


def test_exact_cubic_surface_is_recovered():
    a0, c0, e0, v_factor = 3.23, 5.25, -7.1, np.sqrt(3) / 8
    aa, cc = np.meshgrid(np.linspace(3.15, 3.29, 10), np.linspace(5.13, 5.35, 10))
    a, c = aa.ravel(), cc.ravel()
    x, y = a - a0, c - c0
    # quadratic form (eV/atom/Å²) plus cubic terms, whose second derivatives vanish at the minimum
    energy = e0 + 0.5 * (6.0 * x * x + 2 * 1.2 * x * y + 3.0 * y * y) + 0.8 * x ** 3 - 0.5 * x * y * y + 0.3 * y ** 3
    surface = fit_hexagonal_surface(a, c, v_factor * a * a * c, energy)
    assert surface.a0 == pytest.approx(a0, abs=1e-7) and surface.c0 == pytest.approx(c0, abs=1e-7)
    assert surface.e0 == pytest.approx(e0, abs=1e-12) and surface.rms < 1e-12
    curvature = 6.0 * a0 * a0 + 2 * 1.2 * a0 * c0 + 3.0 * c0 * c0  # d²E/ds² along (a0 s, c0 s)
    assert surface.bulk_modulus == pytest.approx(curvature / (9 * v_factor * a0 * a0 * c0), rel=1e-6)


def test_a_k_mesh_step_inside_the_grid_is_its_own_energy_zero():
    """Cells whose DFT k-mesh differs (a k-point spacing rounds to another mesh above some c) carry another
    constant k-point error: fitted as a separate zero, it leaves a0, c0 and B as they are; ignored, it moves them."""
    aa, cc = (g.ravel() for g in np.meshgrid(np.linspace(3.15, 3.29, 10), np.linspace(5.13, 5.35, 10)))
    x, y = aa - 3.23, cc - 5.25
    smooth = -7.1 + 0.5 * (6.0 * x * x + 2 * 1.2 * x * y + 3.0 * y * y) + 0.3 * y ** 3
    mesh = np.where(cc > 5.236, 1, 0)
    energy = smooth + 1.1e-3 * mesh
    volumes = np.sqrt(3) / 8 * aa * aa * cc
    exact = fit_hexagonal_surface(aa, cc, volumes, smooth)
    split = fit_hexagonal_surface(aa, cc, volumes, energy, zero_groups=mesh)
    assert split.offsets == {1: pytest.approx(1.1e-3, abs=1e-12)}
    assert split.a0 == pytest.approx(exact.a0, abs=1e-7) and split.c0 == pytest.approx(exact.c0, abs=1e-7)
    assert split.bulk_modulus == pytest.approx(exact.bulk_modulus, rel=1e-6)
    blind = fit_hexagonal_surface(aa, cc, volumes, energy)
    assert abs(blind.c0 - exact.c0) > 3e-3  # the step drags the minimum (GaN's CP2K grid: 5.253 vs 5.265 Å)


def test_too_few_cells_or_a_minimum_outside_them_are_refused():
    from fitsnap_ext.errors import FitsnapError

    a = np.linspace(3.1, 3.3, 10)
    with pytest.raises(FitsnapError, match=r">= 15 distinct \(a, c\); these have 10"):
        fit_hexagonal_surface(a, a * 1.6, a ** 3, (a - 3.2) ** 2)
    aa, cc = (g.ravel() for g in np.meshgrid(np.linspace(3.1, 3.2, 5), np.linspace(5.1, 5.2, 5)))
    with pytest.raises(FitsnapError, match="minimum .* lies outside the cells"):
        fit_hexagonal_surface(aa, cc, aa * aa * cc, (aa - 3.4) ** 2 + (cc - 5.15) ** 2)


def test_tersoff_gan_grid_gives_lammps_clamped_ion_cell():
    """Energies of a 7×7 (a, c) grid of 8-atom wurtzite cells (fractional coordinates fixed, as in the paper's
    GaN volume set) → the surface's a0, c0 equal LAMMPS' box relaxation with the ions clamped, within 2e-4 Å,
    and its B the curvature of LAMMPS' energies along isotropic scaling, within 0.5 %."""
    from fitsnap_ext.generate.structures import load_structure
    from fitsnap_ext.lammps_session import LammpsSession, lammps_module, potentials_dir

    lammps_module()
    pot = ["pair_style tersoff", f"pair_coeff * * {potentials_dir() / 'GaN.tersoff'} Ga N"]
    base = load_structure("gan_wurtzite", lattice=3.19)
    n = base.natoms
    la, lc = np.linalg.norm(base.cell[0]), np.linalg.norm(base.cell[2])

    with LammpsSession() as session:
        def energy(sa, sc):
            fr = load_structure("gan_wurtzite", lattice=3.19)
            scale = np.diag([sa, sa, sc])
            fr.cell, fr.positions = fr.cell @ scale, fr.positions @ scale
            session.place(fr, ["Ga", "N"])
            session.commands(pot + ["run 0"])
            return float(session.lmp.get_thermo("pe")) / n, abs(np.linalg.det(fr.cell)) / n

        grid = [(sa, sc) for sa in np.linspace(0.98, 1.02, 7) for sc in np.linspace(0.98, 1.02, 7)]
        rows = [(la * sa, lc * sc, *energy(sa, sc)) for sa, sc in grid]
        a, c, e, v = (np.array(col) for col in zip(*rows))
        surface = fit_hexagonal_surface(a, c, v, e)

        session.place(base, ["Ga", "N"])
        session.commands(pot + ["fix clamp all setforce 0 0 0", "fix relax all box/relax aniso 0.0 vmax 0.001",
                                "min_style cg", "minimize 0 1e-12 10000 100000"])
        a_lmp, c_lmp = float(session.lmp.get_thermo("lx")), float(session.lmp.get_thermo("lz"))
        h = 1e-3
        e_s = [energy(a_lmp / la * s, c_lmp / lc * s)[0] for s in (1 - h, 1.0, 1 + h)]
        v0 = energy(a_lmp / la, c_lmp / lc)[1]
    assert surface.a0 == pytest.approx(a_lmp, abs=2e-4)
    assert surface.c0 == pytest.approx(c_lmp, abs=2e-4)
    bulk_lmp = (e_s[0] - 2 * e_s[1] + e_s[2]) / h ** 2 / (9 * v0)
    assert surface.bulk_modulus * EV_A3_TO_GPA == pytest.approx(bulk_lmp * EV_A3_TO_GPA, rel=5e-3)
    assert 150 < surface.bulk_modulus * EV_A3_TO_GPA < 250  # GaN: a stiff semiconductor
