"""Plate mosaic progress: ``progress(done, total)`` follows the images the walk has finished."""

import numpy as np
from astropy.wcs import WCS

from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.mosaic.coadd import mosaic_plate
from hipsluigi.mosaic.engines import engine_for
from hipsluigi.surveys.base import SurveyImage


def _image(key, lon, lat, size=10, scale=0.6):
    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    w.wcs.crval = [lon, lat]
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cdelt = [-scale, scale]
    return SurveyImage(key, w, (size, size), lonlat_to_vec(lon, lat), np.radians(scale * size),
                       loader=lambda: np.ones((size, size)))


def test_progress_counts_images_whose_walk_is_over_and_ends_at_all_of_them():
    grid = PlateGrid(2, 16, 5, 4)  # plate (2, 2) is face 4, around l = 0, b = 0
    # north and south of the plate's centre (finished in different bands), and one on the
    # far side of the sky that touches no block (finished from the start)
    images = [_image("north", 0.0, 25.0), _image("south", 0.0, -25.0),
              _image("far", 180.0, 0.0)]
    events = []

    class Watch:
        name = "watch"

        def start(self, plate, cache):
            inner = engine_for("interp").start(plate, cache)

            class Coadd:
                def begin_block(self, *args):
                    inner.begin_block(*args)

                def add(self, k, data, x, y):
                    events.append(("add", images[k].key))
                    inner.add(k, data, x, y)

                def end_block(self):
                    inner.end_block()

                def image_done(self, k):
                    inner.image_done(k)

                def finish(self):
                    return inner.finish()

            return Coadd()

    def progress(done, total):
        events.append(("progress", done, total))

    result = mosaic_plate(grid, 2, 2, images, "galactic", engine=Watch(), block=8,
                          progress=progress)
    reports = [e[1:] for e in events if e[0] == "progress"]
    assert sorted(result.used_images) == ["north", "south"]
    assert events[0] == ("progress", 1, 3)  # "far" is finished before any block
    assert reports[-1] == (3, 3)
    assert [d for d, _ in reports] == sorted({d for d, _ in reports})  # strictly growing
    assert (2, 3) in reports  # one of the two was finished while the other still had blocks
    for k, event in enumerate(events):
        if event[0] == "progress":
            done, total = event[1:]
            added_later = {e[1] for e in events[k + 1:] if e[0] == "add"}
            assert len(added_later) <= total - done, (event, added_later)


def test_no_progress_callback_gives_the_same_mosaic():
    grid = PlateGrid(2, 16, 5, 4)
    images = [_image("north", 0.0, 25.0), _image("south", 0.0, -25.0)]
    seen = []
    a = mosaic_plate(grid, 2, 2, images, "galactic", block=8)
    b = mosaic_plate(grid, 2, 2, images, "galactic", block=8,
                     progress=lambda d, n: seen.append((d, n)))
    assert a.data.tobytes() == b.data.tobytes() and seen[-1] == (2, 2)
