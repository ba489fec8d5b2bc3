"""The progenitor index (HpxFinder): which tiles an image touches, checked with astropy and
healpy; the records and the folder written."""

import json

import healpy as hp
import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, SkyCoord
from astropy.wcs import WCS

from hipsluigi.geometry.frames import astropy_frame, rotation_matrix
from hipsluigi.metadata.progenitors import (
    Progenitor,
    finder_properties,
    progenitor_tiles,
    write_progenitor_index,
)
from hipsluigi.metadata.properties import parse_properties


def _image(ra=83.6, dec=22.0, side=200, scale=0.02, rot=30.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [side / 2 + 0.5, side / 2 + 0.5]
    c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    wcs.wcs.cd = scale * np.array([[-c, s], [s, c]])
    corners = wcs.pixel_to_world([-0.5, side - 0.5, side - 0.5, -0.5],
                                 [-0.5, -0.5, side - 0.5, side - 0.5])
    return wcs, side, Progenitor(name="img", path="/data/img.fits",
                                 corners=np.column_stack([corners.ra.deg, corners.dec.deg]),
                                 date_obs="2011-01-01")


def _touched(wcs, side, order, frame):
    """Tiles holding a pixel centre of the image (every 2nd pixel), by astropy and healpy."""
    y, x = np.mgrid[0:side:2, 0:side:2]
    world = wcs.pixel_to_world(x.ravel(), y.ravel()).transform_to(astropy_frame(frame))
    lon, lat = world.spherical.lon.deg, world.spherical.lat.deg
    return set(hp.ang2pix(1 << order, lon, lat, nest=True, lonlat=True).tolist())


def test_an_image_lists_every_tile_it_touches_and_few_more():
    for frame in ("equatorial", "galactic"):
        for order in (5, 7):
            wcs, side, image = _image()
            listed = set(progenitor_tiles(image, order, rotation_matrix(
                ICRS(), astropy_frame(frame))).tolist())
            touched = _touched(wcs, side, order, frame)
            assert touched <= listed, (frame, order)
            assert len(listed) <= 2 * len(touched) + 12, (frame, order)


def test_an_archive_image_known_by_its_cap_lists_the_tiles_of_the_cap():
    image = Progenitor(name="w", path="https://example.org/w.fits", cap=(10.0, -5.0, 0.8))
    listed = set(progenitor_tiles(image, 6, np.eye(3)).tolist())
    centre = SkyCoord(10 * u.deg, -5 * u.deg)
    lon, lat = hp.pix2ang(64, sorted(listed), nest=True, lonlat=True)
    inside = hp.query_disc(64, hp.ang2vec(10.0, -5.0, lonlat=True), np.radians(0.8),
                           nest=True)
    assert set(inside.tolist()) <= listed
    assert SkyCoord(lon * u.deg, lat * u.deg).separation(centre).deg.max() < 0.8 + 1.0
    assert json.loads(image.record())["stc"] == "CIRCLE ICRS 10.0 -5.0 0.8"


def test_records_are_hipsgens_json_with_icrs_centre_and_polygon():
    _, _, image = _image()
    record = json.loads(image.record())
    assert set(record) == {"name", "path", "ra", "dec", "stc", "DATE-OBS"}
    assert all(isinstance(v, str) for v in record.values())
    assert abs(float(record["ra"]) - 83.6) < 1e-6 and abs(float(record["dec"]) - 22.0) < 1e-3
    words = record["stc"].split()
    assert words[:2] == ["POLYGON", "J2000"] and len(words) == 10


def test_the_index_folder_is_replaced_whole(tmp_path):
    wcs, side, image = _image()
    to_frame = rotation_matrix(ICRS(), astropy_frame("equatorial"))
    tiles = progenitor_tiles(image, 6, to_frame)
    props = finder_properties("ivo://x/P/y", "Y", 6, "equatorial", 64, "2026-01-01T00:00Z")
    assert write_progenitor_index(tmp_path, 6, "equatorial", 64, [image], tiles, props) \
        == len(tiles)
    # a second index for fewer tiles leaves no file of the first
    assert write_progenitor_index(tmp_path, 6, "equatorial", 64, [image], tiles[:2],
                                  props) == 2
    files = sorted((tmp_path / "HpxFinder").glob("Norder6/Dir*/Npix*"))
    assert [int(p.name[4:]) for p in files] == sorted(tiles[:2].tolist())
    assert parse_properties((tmp_path / "HpxFinder" / "properties").read_text())[
        "dataproduct_type"] == "meta"
    assert not list(tmp_path.glob(".HpxFinder*"))
