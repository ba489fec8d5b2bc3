"""Montage's tables: fitcombo.tbl from difference fits, corrections.tbl from planes."""

import numpy as np

from hipsluigi.background.overlap import fit_overlap
from hipsluigi.background.tables import MONTAGE_FIT_COLUMNS, corrections_table, fitcombo_table
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_pixel_vectors


def test_fitcombo_table_has_montages_columns_first_and_no_edge_profiles():
    grid = PlateGrid(1, 16, 5, 4)
    rows, cols = grid.shape(padded=True)
    plus, minus = ((10 * plate_pixel_vectors(grid, *p, slice(0, rows), slice(0, cols))[..., 2]
                    + level) for p, level in (((2, 2), 0.5), ((2, 3), 0.0)))
    diff = fit_overlap(grid, (2, 2), (2, 3), plus, minus, 12, 13)
    table = fitcombo_table([diff])
    assert tuple(table.colnames[:len(MONTAGE_FIT_COLUMNS)]) == MONTAGE_FIT_COLUMNS
    assert "plus_profile" not in table.colnames and "l11" in table.colnames
    assert (table["plus"][0], table["minus"][0]) == (12, 13)
    assert table["c"][0] == diff.c
    assert fitcombo_table([]).colnames == list(MONTAGE_FIT_COLUMNS)


def test_corrections_table_is_sorted_by_plate_id():
    table = corrections_table({5: (0.1, 0.2, 0.3), 2: (1.0, 2.0, 3.0)}, {5: "p5", 2: "p2"})
    assert list(table["id"]) == [2, 5] and list(table["plate"]) == ["p2", "p5"]
    np.testing.assert_array_equal(table["c"], [3.0, 0.3])
