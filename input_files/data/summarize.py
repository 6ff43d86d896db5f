"""Markdown table of a generated data set: frames x atoms, E/atom, max |F|, pressure, V/atom per file.

    python input_files/data/summarize.py input_files/data/gan
"""
import os
import sys

import numpy as np

from fitsnap_ext.data.extxyz import read_extxyz


def main(folder):
    print("| file | frames × atoms | E/atom (eV) | max \\|F\\| (eV/Å) | pressure (kbar) | V/atom (Å³) |")
    print("|---|---|---|---|---|---|")
    total = 0
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".xyz"):
            continue
        frames = read_extxyz(os.path.join(folder, f), "bar")
        if not frames:
            continue
        total += len(frames)
        nat = sorted({fr.natoms for fr in frames})
        e = [fr.energy / fr.natoms for fr in frames]
        fm = max(float(np.linalg.norm(fr.forces, axis=1).max()) for fr in frames)
        p = [np.trace(fr.stress) / 3 / 1000 for fr in frames if fr.stress is not None]
        v = [fr.volume / fr.natoms for fr in frames]
        print(f"| {f} | {len(frames)} × {'/'.join(map(str, nat))} | {min(e):.3f} … {max(e):.3f} | {fm:.2f} | "
              f"{min(p):.0f} … {max(p):.0f} | {min(v):.2f} … {max(v):.2f} |")
    print(f"\n{total} frames")


if __name__ == "__main__":
    main(sys.argv[1])
