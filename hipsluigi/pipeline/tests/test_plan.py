"""The graph reads its plan from platelist.tbl: an edited plate list is what runs."""

import pytest
from astropy.table import Table

import hipsluigi
from hipsluigi.pipeline import plan
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.pipeline.worktree import layout_of
from hipsluigi.storage.artifacts import read_plate_list, write_plate_list


def _options(tmp_path, name):
    return {"hips": {"name": name, "order": 0, "tile_width": 64, "nplate": "", "region": "",
                     "background": "none", "storage": f"{tmp_path}/u0,{tmp_path}/u1"}}


def test_the_plan_is_written_once_and_then_read_from_platelist(tmp_path, luigi_config):
    with luigi_config(_options(tmp_path, "planA")):
        spec = map_spec()
        path = layout_of(spec).platelist
        assert not path.exists()
        plates = plan.plate_plan(spec).plates
        assert path.exists() and layout_of(spec).fingerprint.exists()  # the work tree too
        table = read_plate_list(path)
        assert plates == tuple(zip(table["i"].tolist(), table["j"].tolist(), strict=True))
        assert hipsluigi.Setup().complete() and hipsluigi.PlateList().complete()


def test_a_plate_removed_from_platelist_leaves_the_graph(tmp_path, luigi_config):
    with luigi_config(_options(tmp_path, "planB")):
        spec = map_spec()
        path = layout_of(spec).platelist
        plan.ensure_plate_list(spec)
        table = read_plate_list(path)
        dropped = (int(table["i"][0]), int(table["j"][0]))
        write_plate_list(path, table[1:])
        plan.plate_plan.cache_clear()
        plan.plates_at_order.cache_clear()
        tiles = {(t.i, t.j) for t in hipsluigi.AllSkyFITS().requires()}
    assert dropped not in tiles and len(tiles) == len(table) - 2  # and the face-6 copy


def test_a_plate_list_naming_a_missing_unit_is_refused_naming_the_file(tmp_path, luigi_config):
    with luigi_config(_options(tmp_path, "planC")):
        spec = map_spec()
        path = layout_of(spec).platelist
        plan.ensure_plate_list(spec)
        write_plate_list(path, Table({"id": [0], "plate": ["plate_02_02"], "i": [2], "j": [2],
                                      "unit": [7]}))
        plan.plate_plan.cache_clear()
        with pytest.raises(ValueError, match=r"platelist\.tbl: plate \(2, 2\) on unit 7"):
            plan.plate_plan(spec)
