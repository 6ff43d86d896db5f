"""Physically suspect results: numbers a run produced that no real material of the system would give.

`suspect_flags` is a pure function of props.json's values: {property key: reason with the number}. A flag does
not stop the run (the number may be what the potential really does); it says the number needs a look, most often
because the potential was never fitted to that state (a liquid from a fit without liquid data).
"""
from __future__ import annotations

import numpy as np

PHONON_TOLERANCE_THZ = 0.1      # finite-difference noise of acoustic modes near Γ stays well below this
LIQUID_T_TOLERANCE = 0.1        # the liquid's mean temperature within 10 % of the thermostat's


def elastic_flags(props: dict, symmetry: str) -> dict[str, str]:
    """Negative C12 and violated Born stability criteria (cubic, hexagonal, or a 6×6 not positive definite)."""
    c = {k: props[k] for k in props if k.startswith("C") and k.endswith("_GPa") and props[k] is not None}
    flags = {}
    if "C12_GPa" in c and c["C12_GPa"] < 0:
        flags["C12_GPa"] = (f"C12 = {c['C12_GPa']:.4g} GPa is negative (no tetrahedral or close-packed solid "
                            "has one)")
    if symmetry == "cubic" and {"C11_GPa", "C12_GPa", "C44_GPa"} <= set(c):
        c11, c12, c44 = c["C11_GPa"], c["C12_GPa"], c["C44_GPa"]
        criteria = {"C11 - C12 > 0": c11 - c12, "C11 + 2 C12 > 0": c11 + 2 * c12, "C44 > 0": c44}
    elif symmetry == "hexagonal" and {"C11_GPa", "C12_GPa", "C13_GPa", "C33_GPa", "C44_GPa", "C66_GPa"} <= set(c):
        c11, c12, c13, c33 = (c[k] for k in ("C11_GPa", "C12_GPa", "C13_GPa", "C33_GPa"))
        criteria = {"C11 - |C12| > 0": c11 - abs(c12),
                    "(C11 + C12) C33 - 2 C13^2 > 0": (c11 + c12) * c33 - 2 * c13 ** 2,
                    "C44 > 0": c["C44_GPa"], "C66 > 0": c["C66_GPa"]}
    elif symmetry == "none" and len(c) == 21:
        matrix = np.zeros((6, 6))
        for i in range(6):
            for j in range(i, 6):
                matrix[i, j] = matrix[j, i] = c[f"C{i + 1}{j + 1}_GPa"]
        criteria = {"smallest eigenvalue of C > 0": float(np.linalg.eigvalsh(matrix)[0])}
    else:
        criteria = {}
    broken = [f"{name} fails ({value:.4g})" for name, value in criteria.items() if not value > 0]
    if broken:
        flags["elastic_stability"] = "Born stability criteria violated: " + "; ".join(broken)
    return flags


def suspect_flags(props: dict, symmetry: str = "none", liquid_coordination=None,
                  liquid_temperature: float | None = None) -> dict[str, str]:
    """Reasons to distrust computed values, keyed by their props.json key (see the module docstring)."""
    flags = elastic_flags(props, symmetry)
    low = props.get("phonon_min_THz")
    if low is not None and low < -PHONON_TOLERANCE_THZ:
        flags["phonon_min_THz"] = (f"imaginary phonon mode of {-low:.3g}i THz (below -{PHONON_TOLERANCE_THZ:g} "
                                   "THz): the relaxed crystal is dynamically unstable for this potential")
    cn, (lo, hi) = props.get("coordination_number"), liquid_coordination or (None, None)
    if cn is not None and lo is not None and not lo <= cn <= hi:
        flags["coordination_number"] = (f"liquid coordination {cn:.3g} is outside {lo:g}-{hi:g}, far from any "
                                        "liquid of this system (was the potential fitted to liquid configurations?)")
    temp = props.get("liquid_temperature_K")
    if temp is not None and liquid_temperature and abs(temp - liquid_temperature) > LIQUID_T_TOLERANCE * \
            liquid_temperature:
        flags["liquid_temperature_K"] = (f"the liquid's mean temperature {temp:.4g} K is not the thermostat's "
                                         f"{liquid_temperature:g} K: the MD is not in equilibrium")
    if props.get("melting_coexistence_ok") is False:
        frac, tm = props.get("melting_crystal_fraction_end", float("nan")), props.get("melting_point_K", 0.0)
        flags["melting_point_K"] = (f"crystal fraction {frac:.3g} at the end of the coexistence run: the box "
                                    f"{'melted' if frac <= 0.1 else 'froze'}, so {tm:.4g} K is not the melting point")
    kappa = props.get("thermal_conductivity_W_mK")
    if kappa is not None and not kappa > 0:
        flags["thermal_conductivity_W_mK"] = f"thermal conductivity {kappa:.4g} W/mK is not positive"
    for key, value in props.items():
        if key.endswith("_diffusivity_cm2_s") and isinstance(value, list) and any(not d > 0 for d in value):
            flags[key] = f"a diffusivity is not positive: {', '.join(f'{d:.3g}' for d in value)} cm^2/s"
    return flags
