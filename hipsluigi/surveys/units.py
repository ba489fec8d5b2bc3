"""The pixel unit of a map: one ``BUNIT`` for every image, never a silent mix or rescale."""

from __future__ import annotations

from collections import Counter

import numpy as np
from astropy.table import Table


def _text(value) -> str:
    return "" if np.ma.is_masked(value) else str(value).strip()


def map_units(index: Table) -> dict[str, object]:
    """Choose the map's unit from a survey index, rejecting images in another unit.

    Parameters
    ----------
    index : astropy.table.Table
        A survey index with ``status``, ``reason`` and, optionally, ``bunit`` (the image's
        ``BUNIT``, empty if none) and ``magzp`` (``MAGZP``, NaN if none). Modified in place:
        a usable image whose non-empty ``BUNIT`` differs from the most common one gets
        ``status = skipped`` and a reason naming both units (its pixels cannot be averaged with
        the others without a conversion hipsluigi will not guess).

    Returns
    -------
    dict
        ``{"BUNIT": unit}`` when the usable images state one, plus ``"MAGZP"`` when every image
        of that unit gives the same zero point; empty otherwise.
    """
    if "bunit" not in index.colnames or len(index) == 0:
        return {}
    ok = np.asarray(index["status"]) == "ok"
    units = [_text(u) for u in index["bunit"]]
    stated = Counter(u for u, good in zip(units, ok, strict=True) if good and u)
    if not stated:
        return {}
    unit = stated.most_common(1)[0][0]
    status = [str(s) for s in index["status"]]
    reason = [_text(r) for r in index["reason"]]
    for k, (u, good) in enumerate(zip(units, ok, strict=True)):
        if good and u and u != unit:
            status[k] = "skipped"
            reason[k] = (f"BUNIT {u!r} differs from the map's {unit!r} (the most common unit); "
                         "images in other units are not mixed")
    # Rebuilt, not assigned in place: a fixed-width string column would cut the reason.
    index.replace_column("status", np.array(status, dtype=str))
    index.replace_column("reason", np.array(reason, dtype=str))
    result: dict[str, object] = {"BUNIT": unit}
    if "magzp" in index.colnames:
        mine = np.asarray([u == unit for u in units]) & (np.asarray(index["status"]) == "ok")
        zps = np.unique(np.asarray(index["magzp"], dtype=float)[mine])
        if len(zps) == 1 and np.isfinite(zps[0]):
            result["MAGZP"] = float(zps[0])
    return result
