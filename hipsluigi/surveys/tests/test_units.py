"""The map's pixel unit: the most common BUNIT, images in another unit rejected with a reason."""

import numpy as np
from astropy.table import Table

from hipsluigi.surveys.units import map_units


def _index(units, zps, status=None):
    n = len(units)
    return Table({"path": [f"im{k}.fits" for k in range(n)], "status": status or ["ok"] * n,
                  "reason": [""] * n, "bunit": units, "magzp": np.array(zps, float)})


def test_the_most_common_unit_wins_and_other_units_are_rejected_with_both_named():
    index = _index(["DN", "DN", "MJy/sr", ""], [20.5, 20.5, np.nan, np.nan])
    assert map_units(index) == {"BUNIT": "DN", "MAGZP": 20.5}
    assert list(index["status"]) == ["ok", "ok", "skipped", "ok"]
    assert index["reason"][2].startswith("BUNIT 'MJy/sr' differs from the map's 'DN'")


def test_differing_zero_points_give_no_map_zero_point():
    assert map_units(_index(["DN", "DN"], [20.5, 20.4])) == {"BUNIT": "DN"}


def test_rejected_rows_do_not_vote_and_no_unit_gives_none():
    index = _index(["K", "DN"], [np.nan, np.nan], status=["skipped", "ok"])
    assert map_units(index) == {"BUNIT": "DN"}
    assert map_units(_index(["", ""], [np.nan, np.nan])) == {}
