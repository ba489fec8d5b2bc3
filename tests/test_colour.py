"""Colour composites end to end: three synthetic maps with different skies, each with its own
stretch, and their RGB HiPS built by one ``luigi.build([ColourPNGs(...)])``.

The colour tiles are checked against the maps' FITS tiles (the data values), read with
astropy; the HiPS convention that a PNG tile is its FITS tile flipped vertically (PNG rows run
top-down, FITS rows bottom-up) is applied here, not taken from hipsluigi.
"""

import json
import re
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image
from scipy.stats import spearmanr

from hipsluigi import ColourPNGs
from hipsluigi.spec import SettingsError
from hipsluigi.testing import luigi_options

ORDER = 2
WIDTH = 64
MAPS = {"red": "sky1", "green": "sky2", "blue": "sky3"}
NAME = "colour-sky1-sky2-sky3"

CONFIG = {
    "hips": {"order": ORDER, "tile_width": WIDTH, "nplate": "", "background": "none",
             "region": "", "executor": "local", "frame": "galactic"},
    "synthetic": {"frame_size": 128, "noise": 0, "backgrounds": 0, "sources": 60,
                  "blobs": 400},
    # different skies, and each map its own kind of stretch
    "synthetic.sky1": {"seed": 1},
    "synthetic.sky2": {"seed": 2},
    "synthetic.sky3": {"seed": 3},
    "hips.sky2": {"stretch": "asinh"},
    "hips.sky3": {"stretch": "linear"},
    # a map that cannot join them: another order
    "hips.other": {"order": ORDER - 1},
}


def _run():
    from luigi.execution_summary import _summary_dict

    result = luigi.build([ColourPNGs(**MAPS)], local_scheduler=True, workers=2,
                         detailed_summary=True)
    summary = _summary_dict(result.worker)
    ran = summary["completed"] | summary["failed"]
    return result, sorted(str(task) for task in ran)  # e.g. "HiPSMetadata(map=sky1)"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{root}/u0"
    with luigi_options(options):
        result, ran = _run()
        rerun, reran = _run()
        yield {"root": root, "hips": root / "u0" / NAME / "HiPS", "result": result, "ran": ran,
               "rerun": rerun, "reran": reran}


def _tiles(hips: Path, order: int, ext: str) -> dict[int, Path]:
    return {int(p.stem[4:]): p for p in (hips / f"Norder{order}").glob(f"Dir*/Npix*.{ext}")}


def _properties(path: Path) -> dict[str, str]:
    props = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _stretch_range(root: Path, name: str) -> tuple[float, float]:
    (path,) = (root / "u0" / name / "stretch").glob("stretch-*.json")
    data = json.loads(path.read_text())
    return data["lo"], data["hi"]


def test_build_succeeds_and_makes_the_three_maps_in_the_same_graph(built):
    assert built["result"].status == luigi.LuigiStatusCode.SUCCESS
    for name in MAPS.values():
        # the maps were built by this run, not before it
        assert f"HiPSMetadata(map={name})" in built["ran"]
        assert (built["root"] / "u0" / name / "HiPS" / "properties").exists()


def test_channels_rise_with_each_maps_own_stretched_values_and_not_with_the_others(built):
    """Must show: rank correlation > 0.99 between each channel and its own map's data values
    (inside that map's stretch range), and clearly lower with the two other maps' values."""
    colour = _tiles(built["hips"], ORDER, "png")
    values = {}
    channels = {}
    for k, (channel, name) in enumerate(MAPS.items()):
        fits_tiles = _tiles(built["root"] / "u0" / name / "HiPS", ORDER, "fits")
        v, c = [], []
        for npix, path in sorted(colour.items()):
            with Image.open(path) as im:
                assert im.mode == "RGBA"
                rgba = np.asarray(im)
            data = fits.getdata(fits_tiles[npix])
            v.append(data[::-1].ravel())         # PNG row r is FITS row w-1-r
            c.append(rgba[..., k].ravel())
        values[channel], channels[channel] = np.concatenate(v), np.concatenate(c)
    ranges = {ch: _stretch_range(built["root"], name) for ch, name in MAPS.items()}
    print()
    for channel in MAPS:
        lo, hi = ranges[channel]
        inside = np.isfinite(values[channel]) & (values[channel] > lo) & (values[channel] < hi)
        assert inside.mean() > 0.5
        rho = {other: spearmanr(values[other][inside], channels[channel][inside])[0]
               for other in MAPS}
        print(f"{channel} ({MAPS[channel]}): Spearman with " +
              ", ".join(f"{o} map values {r:.4f}" for o, r in rho.items()))
        assert rho[channel] > 0.99
        for other in MAPS:
            if other != channel:
                assert rho[other] < 0.8, f"{channel} channel follows the {other} map"


def test_channels_are_the_maps_own_png_gray_levels_and_the_tiles_are_opaque(built):
    for order in range(ORDER + 1):
        for path in _tiles(built["hips"], order, "png").values():
            with Image.open(path) as im:
                rgba = np.asarray(im)
            assert (rgba[..., 3] == 255).all()    # every map covers the whole sky
            for k, name in enumerate(MAPS.values()):
                own = built["root"] / "u0" / name / "HiPS" / path.relative_to(built["hips"])
                with Image.open(own) as im:
                    la = np.asarray(im.convert("LA"))
                np.testing.assert_array_equal(rgba[..., k], la[..., 0])


def test_every_tile_of_every_order_exists_with_allsky_moc_and_page(built):
    hips = built["hips"]
    for order in range(ORDER + 1):
        assert sorted(_tiles(hips, order, "png")) == list(range(12 * 4**order))
        assert not _tiles(hips, order, "fits")
        with Image.open(hips / f"Norder{order}" / "Allsky.png") as im:
            assert im.mode == "RGBA"
    assert (hips / "Moc.fits").stat().st_size > 0
    assert (hips / "index.html").stat().st_size > 0


def test_properties_say_colour_png_and_name_the_three_maps(built):
    props = _properties(built["hips"] / "properties")
    assert props["dataproduct_subtype"] == "color"
    assert props["hips_tile_format"] == "png"
    assert props["hips_order"] == str(ORDER)
    assert props["hips_tile_width"] == str(WIDTH)
    assert props["hips_frame"] == "galactic"
    for channel, name in MAPS.items():
        assert props[f"hips_rgb_{channel}"].startswith(name)
        assert f"{channel} {name}" in props["obs_title"]


def test_hipsgen_lint_passes_the_colour_hips_with_no_warning(built, hipsgen_lint):
    report = hipsgen_lint(built["hips"])
    assert re.search(r"tile test hierarchy \[.*\.png\] ok", report)
    # the recommended keys come from the three maps
    props = _properties(built["hips"] / "properties")
    maps = [_properties(built["root"] / "u0" / name / "HiPS" / "properties")
            for name in MAPS.values()]
    assert float(props["t_min"]) == min(float(m["t_min"]) for m in maps)
    assert all(m["obs_title"] in props["obs_description"] for m in maps)


def test_rerun_runs_nothing(built):
    assert built["rerun"].status == luigi.LuigiStatusCode.SUCCESS
    assert built["reran"] == []


def test_a_deleted_colour_tile_is_made_again(built):
    victim = _tiles(built["hips"], ORDER, "png")[37]
    before = victim.read_bytes()
    victim.unlink()
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{built['root']}/u0"
    with luigi_options(options):
        result, ran = _run()
    assert result.status == luigi.LuigiStatusCode.SUCCESS
    assert victim.read_bytes() == before
    assert any(t.startswith("ColourTiles(") for t in ran)
    assert not any(t.startswith("PlatePNGs(") for t in ran)


def test_maps_of_another_order_are_refused_naming_the_setting(tmp_path):
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{tmp_path}/u0"
    with luigi_options(options), pytest.raises(SettingsError) as err:
        ColourPNGs(red="sky1", green="other", blue="sky3")
    message = str(err.value)
    assert "\n" not in message
    assert "[hips] order differs" in message and "other (green) 1" in message
    assert "tile_width" in message.split(";", 1)[0]   # the shared settings are named
    assert "[hips] tile_width differs" not in message
    assert not (tmp_path / "u0").exists()             # refused before any task ran


def test_a_damaged_map_tile_fails_its_group_naming_the_file(built):
    from hipsluigi.pipeline.colour import ColourTiles

    victim = _tiles(built["root"] / "u0" / "sky2" / "HiPS", ORDER, "png")[37]
    saved = victim.read_bytes()
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{built['root']}/u0"
    try:
        victim.write_bytes(b"\x89PNG\r\n\x1a\n not a PNG after all")
        with luigi_options(options), pytest.raises(ValueError) as err:
            ColourTiles(**MAPS, name=NAME, order=ORDER, cell=37 >> 4).run()  # NESTED parent
    finally:
        victim.write_bytes(saved)
    assert str(victim) in str(err.value) and "unreadable PNG tile" in str(err.value)
