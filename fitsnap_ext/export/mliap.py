"""LAMMPS `pair_style mliap model nn ... descriptor sna ...` files for a NetworkSNAP (no PYTHON package).

Format read by LAMMPS' src/ML-IAP/mliap_model_nn.cpp (MLIAPModelNN::read_coeffs):
    nelements nparams
    NET ndesc nlayers act_1 n_1 ... act_L n_L      (activations: linear sigmoid tanh relu; the last is linear 1)
    per element: scale0 (ndesc values), scale1 (ndesc values), then nparams values: layer by layer, per output
    node `bias w_1 .. w_nin`.
LAMMPS evaluates E_i = NN((B_i − scale0) / scale1) on the descriptor of `mliap_descriptor_snap.cpp`, the same
bispectrum (same order, same bzeroflag handling) as `compute snap`, with no constant added. A block must
not share a line with the next one (LAMMPS counts values per block) and a coefficient line holds at most 30
values; every number is written with repr() so the round trip is exact.
"""
from __future__ import annotations

import numpy as np

from ..settings import ACTIVATIONS, BispectrumSettings, ReferenceSettings
from .snap import overlay_pair_style

LAMMPS_ACTIVATIONS = ("linear", *ACTIVATIONS)  # what mliap model nn reads; any other name runs as linear
PER_LINE = 5


def _block(values) -> list[str]:
    values = [repr(float(v)) for v in np.asarray(values, dtype=float).ravel()]
    return [" ".join(values[k:k + PER_LINE]) for k in range(0, len(values), PER_LINE)]


def model_text(layers_per_element, scale0, scale1, activation: str, types, comment: str = "") -> str:
    """The .mliap.model text. `layers_per_element[e]` = [(W (out, in), b (out,)), ...]; last layer has 1 output."""
    if activation not in LAMMPS_ACTIVATIONS[1:]:
        raise ValueError(f"activation {activation!r}: LAMMPS' mliap model nn treats any name but "
                         f"{', '.join(LAMMPS_ACTIVATIONS)} as linear, silently")
    first = layers_per_element[0]
    ndesc = first[0][0].shape[1]
    shapes = [w.shape for w, _ in first]
    if shapes[-1][0] != 1:
        raise ValueError("the last layer must have one output (the atom's energy)")
    for layers in layers_per_element:
        if [w.shape for w, _ in layers] != shapes:
            raise ValueError("every element's network must have the same shape (one NET line)")
    nparams = sum((nin + 1) * nout for nout, nin in shapes)
    acts = [activation] * (len(shapes) - 1) + ["linear"]
    net = " ".join(f"{a} {nout}" for a, (nout, _) in zip(acts, shapes))
    lines = [f"# fitsnap_ext neural network for LAMMPS pair_style mliap model nn (units metal). {comment}".rstrip(),
             "# E_i = NN((B_i - scale0) / scale1); per node: bias then weights.", "",
             "# nelements nparams", f"{len(layers_per_element)} {nparams}", "",
             f"NET {ndesc} {len(shapes)} {net}", ""]
    for e, layers in enumerate(layers_per_element):
        lines += [f"# Scale0 ({types[e]})"] + _block(scale0[e]) + [f"# Scale1 ({types[e]})"] + _block(scale1[e])
        lines.append(f"# Coefficients ({types[e]})")
        flat = np.concatenate([np.hstack([b[:, None], w]).ravel() for w, b in layers])
        assert len(flat) == nparams
        lines += _block(flat)
        lines.append("")
    return "\n".join(lines) + "\n"


def descriptor_text(bs: BispectrumSettings) -> str:
    """The .mliap.descriptor text (keys of MLIAPDescriptorSNAP::read_paramfile)."""
    lines = ["# fitsnap_ext: SNAP descriptor for pair_style mliap ... descriptor sna", "",
             f"rcutfac {bs.rcutfac!r}", f"twojmax {bs.twojmax}", "",
             f"nelems {bs.numtypes}", "elems " + " ".join(bs.types),
             "radelems " + " ".join(repr(r) for r in bs.radelem), "welems " + " ".join(repr(w) for w in bs.wj), "",
             f"rfac0 {bs.rfac0!r}", f"rmin0 {bs.rmin0!r}", f"bzeroflag {int(bs.bzeroflag)}",
             f"switchflag {int(bs.switchflag)}", f"chemflag {int(bs.chemflag)}", f"bnormflag {int(bs.bnormflag)}",
             f"wselfallflag {int(bs.wselfallflag)}", f"switchinnerflag {int(bs.switchinnerflag)}"]
    if bs.switchinnerflag:
        lines += ["sinnerelems " + " ".join(map(repr, bs.sinner)), "dinnerelems " + " ".join(map(repr, bs.dinner))]
    return "\n".join(lines) + "\n"


def mod_text(potential: str, bs: BispectrumSettings, reference: ReferenceSettings) -> str:
    """The include file: `pair_style mliap model nn ... descriptor sna ...` over the reference potential."""
    base = potential.replace("\\", "/").split("/")[-1]
    style = f"mliap model nn {base}.mliap.model descriptor sna {base}.mliap.descriptor"
    elements = " ".join(bs.types)
    text = overlay_pair_style(reference, style, elements)
    # under hybrid/overlay the sub-style's pair_coeff names the style keyword alone: `pair_coeff * * mliap Si`
    text = text.replace(f"pair_coeff * * {style} {elements}", f"pair_coeff * * mliap {elements}")
    head = (f"# Neural-network SNAP potential {base} written by fitsnap_ext (units metal).\n"
            f"# Atom types 1..{bs.numtypes} are {elements}. Run LAMMPS from this file's folder.\n\n")
    return head + text


def mliap_files(potential: str, layers_per_element, scale0, scale1, activation: str, bs: BispectrumSettings,
                reference: ReferenceSettings, comment: str = "") -> dict:
    """{path: text} for the three files of an exported network."""
    return {f"{potential}.mliap.model": model_text(layers_per_element, scale0, scale1, activation, bs.types, comment),
            f"{potential}.mliap.descriptor": descriptor_text(bs),
            f"{potential}.mod": mod_text(potential, bs, reference)}
