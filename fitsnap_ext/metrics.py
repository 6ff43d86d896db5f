"""Error tables by group and split: energy (eV/atom), force (eV/Å), stress (bar) MAE, RMSE, count.

Each rank sums its own residuals; the sums are gathered, so the table is the same on any rank count.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

UNITS = {"Energy": "eV/atom", "Force": "eV/Å", "Stress": "bar"}
KINDS = ("Energy", "Force", "Stress")
ALL = "*ALL"


@dataclass(frozen=True)
class ErrorRow:
    group: str
    split: str        # "Train" or "Test"
    quantity: str     # Energy / Force / Stress
    count: int
    mae: float
    rmse: float

    @property
    def unit(self) -> str:
        return UNITS[self.quantity]


def residual_sums(residual: np.ndarray, kind: np.ndarray, group: list[str], test: np.ndarray) -> dict:
    """{(group, split, quantity): [count, Σ|r|, Σr²]} for this rank, groups and *ALL."""
    sums: dict = {}
    names, codes = np.unique(np.asarray(group, dtype=object).astype(str), return_inverse=True)
    for key_group, sel in [(ALL, np.ones(len(residual), bool))] + [(g, codes == i) for i, g in enumerate(names)]:
        for split, split_sel in (("Train", ~test), ("Test", test)):
            for k, name in enumerate(KINDS):
                m = sel & split_sel & (kind == k)
                if m.any():
                    r = residual[m]
                    sums[(key_group, split, name)] = [int(m.sum()), float(np.abs(r).sum()), float((r * r).sum())]
    return sums


def merge_sums(all_sums: list[dict]) -> list[ErrorRow]:
    """Combine per-rank sums into rows ordered *ALL first, then groups as first seen, Train before Test."""
    total: dict = {}
    for sums in all_sums:
        for key, (n, sa, s2) in sums.items():
            t = total.setdefault(key, [0, 0.0, 0.0])
            t[0] += n
            t[1] += sa
            t[2] += s2
    groups = [ALL] + sorted({k[0] for k in total} - {ALL})
    rows = []
    for g in groups:
        for split in ("Train", "Test"):
            for q in KINDS:
                if (g, split, q) in total:
                    n, sa, s2 = total[(g, split, q)]
                    rows.append(ErrorRow(g, split, q, n, sa / n, float(np.sqrt(s2 / n))))
    return rows


def markdown_table(rows: list[ErrorRow], title: str = "") -> str:
    head = (f"{title}\n\n" if title else "") + (
        "Units: LAMMPS metal — energy eV/atom, force eV/Å, stress bar.\n\n"
        "| group | split | quantity | unit | count | MAE | RMSE |\n|:--|:--|:--|:--|--:|--:|--:|\n")
    body = "".join(f"| {r.group} | {r.split} | {r.quantity} | {r.unit} | {r.count} | {r.mae:.6g} | {r.rmse:.6g} |\n"
                   for r in rows)
    return head + body


def csv_table(rows: list[ErrorRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "split", "quantity", "unit", "count", "mae", "rmse"])
    for r in rows:
        w.writerow([r.group, r.split, r.quantity, r.unit, r.count, repr(r.mae), repr(r.rmse)])
    return buf.getvalue()


def error_frame(rows: list[ErrorRow]):
    """The error table as a pandas DataFrame: group, split, quantity, unit, count, MAE, RMSE."""
    import pandas as pd

    return pd.DataFrame([{"group": r.group, "split": r.split, "quantity": r.quantity, "unit": r.unit,
                          "count": r.count, "MAE": r.mae, "RMSE": r.rmse} for r in rows],
                        columns=["group", "split", "quantity", "unit", "count", "MAE", "RMSE"])
