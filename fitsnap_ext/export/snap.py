"""LAMMPS `pair_style snap` files: .snapcoeff, .snapparam and the .mod include file."""
from __future__ import annotations

from datetime import datetime

import numpy as np

from ..settings import BispectrumSettings, ReferenceSettings


def coefficients_per_element(coef: np.ndarray, bs: BispectrumSettings) -> np.ndarray:
    """(numtypes, ncoeff+1) array with the constant first (zero when bzeroflag fits none)."""
    coef = np.asarray(coef, dtype=float).reshape(bs.numtypes, -1)
    if bs.bzeroflag:
        coef = np.hstack([np.zeros((bs.numtypes, 1)), coef])
    return coef


def check_tied(per_element: np.ndarray, bs: BispectrumSettings) -> None:
    """Refuse coefficients that differ on identical `compute snap` columns (chemflag): pair_style snap's forces
    assume one value per group (BispectrumSettings.duplicate_groups), so its forces would not be the gradient of
    its energy. The fit ties them; this catches any other writer."""
    _, first, labels = np.unique(bs.duplicate_groups(), return_index=True, return_inverse=True)
    values = per_element[:, 1:]
    if not np.array_equal(values, values[:, first[labels]]):
        raise ValueError("chemflag coefficients differ within a group of identical descriptor columns")


def snapcoeff_text(coef: np.ndarray, bs: BispectrumSettings, comment: str = "") -> str:
    per_element = coefficients_per_element(coef, bs)
    check_tied(per_element, bs)
    labels = bs.coefficient_labels()
    out = [f"# fitsnap_ext fit generated on {datetime.now().isoformat(timespec='seconds')} {comment}".rstrip(),
           "", f"{bs.numtypes} {per_element.shape[1]}"]
    for element, radius, weight, values in zip(bs.types, bs.radelem, bs.wj, per_element):
        out.append(f"{element} {radius!r} {weight!r}")
        out += [f" {float(v)!r:<26} #  {label}" for v, label in zip(values, labels)]
    out += ["", "# End of potential", ""]
    return "\n".join(out)


def snapparam_text(bs: BispectrumSettings, reference: ReferenceSettings) -> str:
    lines = ["# required", f"rcutfac {bs.rcutfac!r}", f"twojmax {bs.twojmax}", "", "# optional",
             f"rfac0 {bs.rfac0!r}", f"rmin0 {bs.rmin0!r}", f"bzeroflag {int(bs.bzeroflag)}",
             f"quadraticflag {int(bs.quadraticflag)}", f"wselfallflag {int(bs.wselfallflag)}",
             f"chemflag {int(bs.chemflag)}", f"bnormflag {int(bs.bnormflag)}",
             f"switchflag {int(bs.switchflag)}", f"switchinnerflag {int(bs.switchinnerflag)}"]
    if bs.switchinnerflag:
        lines += ["sinner " + " ".join(map(repr, bs.sinner)), "dinner " + " ".join(map(repr, bs.dinner))]
    lines += ["", "# written by fitsnap_ext; reference potential (overlaid in the .mod):"]
    lines += [f"# {c}" for c in reference.commands]
    return "\n".join(lines) + "\n"


def overlay_pair_style(reference: ReferenceSettings, style: str, style_coeff: str) -> str:
    """pair_style/pair_coeff lines: the reference potential (minus `zero`) overlaid with `style`."""
    tokens = reference.pair_style.split()
    if tokens[0] == "hybrid/overlay" or tokens[0] == "hybrid":
        kept, i = [], 1
        while i < len(tokens):
            if tokens[i] == "zero":  # zero CUTOFF [full]
                i += 2
                if i < len(tokens) and tokens[i] == "full":
                    i += 1
                continue
            kept.append(tokens[i])
            i += 1
        coeffs = [c for c in reference.pair_coeffs if c.split()[2:3] != ["zero"]]
    elif tokens[0] == "zero":
        kept, coeffs = [], []
    else:
        kept = tokens
        coeffs = [" ".join(c.split()[:2] + [tokens[0]] + c.split()[2:]) for c in reference.pair_coeffs]
    if not kept:
        return f"pair_style {style}\npair_coeff * * {style_coeff}\n"
    lines = ["pair_style hybrid/overlay " + " ".join(kept) + f" {style}"]
    lines += [f"pair_coeff {c}" for c in coeffs]
    lines.append(f"pair_coeff * * {style} {style_coeff}")
    return "\n".join(lines) + "\n"


def mod_text(potential_name: str, bs: BispectrumSettings, reference: ReferenceSettings) -> str:
    """The include file: paths are relative to the .mod's own folder (FitSNAP's convention)."""
    base = potential_name.replace("\\", "/").split("/")[-1]
    head = (f"# SNAP potential {base} written by fitsnap_ext (units metal).\n"
            f"# Atom types 1..{bs.numtypes} are {' '.join(bs.types)}. Run LAMMPS from this file's folder.\n\n")
    return head + overlay_pair_style(reference, "snap",
                                     f"{base}.snapcoeff {base}.snapparam {' '.join(bs.types)}")


def snap_files(potential: str, coef: np.ndarray, bs: BispectrumSettings, reference: ReferenceSettings) -> dict:
    """{path: text} for the three files of a fitted SNAP."""
    return {f"{potential}.snapcoeff": snapcoeff_text(coef, bs),
            f"{potential}.snapparam": snapparam_text(bs, reference),
            f"{potential}.mod": mod_text(potential, bs, reference)}
