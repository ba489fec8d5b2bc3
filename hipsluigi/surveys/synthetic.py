"""The synthetic survey: a seeded analytic sky observed as overlapping TAN images.

The sky (the *truth*) is defined on the sphere, in the map's frame:

    f(v) = level + disk(v) + sum_k amp_k * exp(-(1 - v.c_k) / sigma_k**2)

with ``v`` a unit vector; the sum runs over diffuse blobs (sigma 1.5-8 degrees) and point
sources (FWHM 2.5 survey pixels); each Gaussian is cut to zero where its exponent passes 12.5
(5 sigma), which is part of the definition, so sparse evaluation is exact. ``disk`` is a smooth
band along the map's equator. For small angles ``2(1 - v.c)`` is the squared angle, so these are
ordinary Gaussians of width ``sigma``.

The survey observes it as square TAN images of ``frame_size`` pixels, whose WCS is in the
celestial frame ``frame_system`` (ICRS by default), at the HiPS pixel scale of the map's deepest
order, laid out in rings of constant latitude that overlap by ``overlap``. Each image adds its
own background plane ``c + a (x - x0) + b (y - y0)`` (0-based image pixels, ``x`` along columns,
``x0 = y0 = (frame_size - 1)/2``) and Gaussian noise; both can be switched off
(``backgrounds = 0``, ``noise = 0``). The offsets ``c`` have standard deviation
``backgrounds``; the slopes ``a, b`` have ``tilt * backgrounds / frame_size``, so an image tilts
by ``tilt`` of the offset spread across its width (survey backgrounds are mostly offsets).
Everything is deterministic for a ``seed``. Images are numbered 0 .. ``nimages - 1``, ring by
ring from the south pole.

:func:`truth` and :func:`injected_planes` describe the survey of a map spec.
"""

from __future__ import annotations

from functools import cached_property, lru_cache, partial

import healpy as hp
import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from hipsluigi.geometry.frames import (
    astropy_frame,
    lonlat_to_vec,
    rotation_matrix,
    vec_to_lonlat,
)
from hipsluigi.geometry.hpx import face_side
from hipsluigi.geometry.sky import cap_of_vectors
from hipsluigi.geometry.tan import tan_projection
from hipsluigi.spec import MapSpec, SyntheticSpec
from hipsluigi.surveys.base import SurveyImage

_CUT = 12.5  # exponent beyond which a Gaussian is zero (5 sigma)
_CHUNK = 4096  # points per evaluation chunk; small chunks see few point sources
_SORT_NSIDE = 64


def pixel_scale_deg(order: int, tile_width: int) -> float:
    """Mean HiPS pixel size (square root of the pixel area), in degrees.

    Parameters
    ----------
    order : int
        HiPS tile order.
    tile_width : int
        Tile width in pixels.

    Returns
    -------
    float
        ``sqrt(4 pi / (12 N**2))`` in degrees, ``N = tile_width * 2**order``.
    """
    return float(np.degrees(np.sqrt(np.pi / 3) / face_side(order, tile_width)))


class SyntheticSky:
    """The analytic truth (see the module docstring).

    Call it with unit vectors in the map frame, shape ``(..., 3)`` (NaN rows allowed); it
    returns the sky values, shape ``(...)``, NaN where the vector is NaN.

    Parameters
    ----------
    spec : SyntheticSpec
        The ``[synthetic]`` settings (seed, numbers of blobs and point sources).
    pixel_scale_rad : float
        HiPS pixel size in radians (sets the point sources' width).
    """

    level = 5.0
    disk_amplitude = 20.0
    disk_width = np.radians(8.0)

    def __init__(self, spec: SyntheticSpec, pixel_scale_rad: float):
        rng = np.random.default_rng([spec.seed, 0])
        nb, ns = spec.blobs, spec.sources
        self.centres = _uniform_on_sphere(rng, nb + ns)
        self.sigmas = np.concatenate([
            np.exp(rng.uniform(np.log(np.radians(1.5)), np.log(np.radians(8.0)), nb)),
            np.full(ns, 2.5 * pixel_scale_rad / 2.3548),
        ])
        self.amplitudes = np.concatenate([
            rng.uniform(2.0, 10.0, nb),
            np.exp(rng.uniform(np.log(3.0), np.log(300.0), ns)),
        ])
        # Angle beyond which each Gaussian is cut to zero: 1 - cos(reach) = _CUT * sigma**2.
        self.reach = np.arccos(np.clip(1.0 - _CUT * self.sigmas**2, -1.0, 1.0))

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        vec = np.asarray(vec, dtype=np.float64)
        v = vec.reshape(-1, 3)
        out = self.level + self.disk_amplitude * np.exp(
            -v[:, 2] ** 2 / (2 * np.sin(self.disk_width) ** 2)) * (1 + 0.4 * v[:, 0])
        finite = np.isfinite(v[:, 0])
        out[~finite] = np.nan
        idx = np.flatnonzero(finite)
        if len(idx) > _CHUNK and cap_of_vectors(v[idx[:: max(1, len(idx) // 1024)]])[1] > 0.3:
            # Scattered points: sort them along the NESTED curve so that chunks are compact.
            idx = idx[np.argsort(hp.vec2pix(_SORT_NSIDE, *v[idx].T, nest=True), kind="stable")]
        for start in range(0, len(idx), _CHUNK):
            self._add_gaussians(out, v, idx[start:start + _CHUNK])
        return out.reshape(vec.shape[:-1])

    def _add_gaussians(self, out: np.ndarray, v: np.ndarray, rows: np.ndarray) -> None:
        """Add the Gaussians that reach the points ``v[rows]`` to ``out[rows]``."""
        centre, radius = cap_of_vectors(v[rows])
        angle = np.arccos(np.clip(self.centres @ centre, -1.0, 1.0))
        near = angle <= radius + self.reach + 1e-9
        if not near.any():
            return
        arg = (1.0 - v[rows] @ self.centres[near].T) * (1.0 / self.sigmas[near] ** 2)
        out[rows] += np.where(arg < _CUT, np.exp(-np.minimum(arg, _CUT)), 0.0) @ (
            self.amplitudes[near])


def _uniform_on_sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    z = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


class SyntheticSurvey:
    """The images of the synthetic survey for a map, as a :class:`~hipsluigi.surveys.base.Survey`.

    Parameters
    ----------
    spec : MapSpec
        The map: its order, tile width and frame, and its ``synthetic`` settings.

    Raises
    ------
    ValueError
        For ``frame_size < 8`` or ``overlap`` outside ``[0, 0.5)``.
    """

    def __init__(self, spec: MapSpec):
        self.spec = spec
        self.syn = spec.synthetic
        if self.syn.frame_size < 8:
            raise ValueError(f"[synthetic] frame_size must be >= 8, got {self.syn.frame_size}")
        if not 0 <= self.syn.overlap < 0.5:
            raise ValueError(f"[synthetic] overlap must be in [0, 0.5), got {self.syn.overlap}")
        self.pixel_scale = pixel_scale_deg(spec.order, spec.tile_width)
        self.sky = SyntheticSky(self.syn, np.radians(self.pixel_scale))
        frame_cls = astropy_frame("equatorial" if self.syn.frame_system == "icrs"
                                  else "galactic")
        self.to_map = rotation_matrix(frame_cls, astropy_frame(spec.frame))
        self._build_rings()
        size = self.syn.frame_size
        self.image_radius = float(
            np.arctan(np.sqrt(2) * (size / 2 + 1) * np.radians(self.pixel_scale)))

    def _build_rings(self) -> None:
        side = self.syn.frame_size * self.pixel_scale
        step = side * (1 - self.syn.overlap)
        nring = int(np.ceil(180.0 / step)) + 1
        self.ring_lat = np.linspace(-90.0, 90.0, nring)
        dlat = 180.0 / (nring - 1)
        edge = np.clip(np.abs(self.ring_lat) - dlat / 2, 0.0, 90.0)
        count = np.maximum(1, np.ceil(360.0 * np.cos(np.radians(edge)) / step)).astype(np.int64)
        count[np.abs(self.ring_lat) == 90.0] = 1
        self.ring_count = count
        self.ring_start = np.concatenate([[0], np.cumsum(count)[:-1]])
        rng = np.random.default_rng([self.syn.seed, 3])
        self.ring_phase = rng.uniform(0.0, 360.0 / count)
        self.nimages = int(count.sum())

    # -- image geometry ---------------------------------------------------------------------
    def image_lonlat(self, iid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres of images ``iid``: longitude and latitude in ``frame_system``, degrees."""
        iid = np.asarray(iid)
        ring = np.searchsorted(self.ring_start, iid, side="right") - 1
        k = iid - self.ring_start[ring]
        lon = (self.ring_phase[ring] + k * 360.0 / self.ring_count[ring]) % 360.0
        return lon, self.ring_lat[ring]

    def image_wcs(self, iid: int) -> WCS:
        """The TAN WCS of image ``iid`` (celestial frame ``frame_system``, 1-based CRPIX at the
        image centre, ``-CDELT1 = CDELT2`` = the pixel scale in degrees)."""
        lon, lat = self.image_lonlat(iid)
        size = self.syn.frame_size
        wcs = WCS(naxis=2)
        if self.syn.frame_system == "icrs":
            wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
            wcs.wcs.radesys = "ICRS"
        else:
            wcs.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
        wcs.wcs.crval = [float(lon), float(lat)]
        wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
        wcs.wcs.cdelt = [-self.pixel_scale, self.pixel_scale]
        wcs.pixel_shape = (size, size)
        return wcs

    def planes(self, iid: int) -> tuple[float, float, float]:
        """Injected plane ``(c, a, b)`` of image ``iid``: value at the centre, slopes per pixel
        along ``x`` (columns) and ``y`` (rows), in data units."""
        if self.syn.backgrounds <= 0:
            return 0.0, 0.0, 0.0
        rng = np.random.default_rng([self.syn.seed, 1, int(iid)])
        c = rng.normal(0.0, self.syn.backgrounds)
        a, b = rng.normal(0.0, self.syn.tilt * self.syn.backgrounds / self.syn.frame_size, 2)
        return float(c), float(a), float(b)

    def render(self, iid: int) -> np.ndarray:
        """Pixels ``[row, col]`` of image ``iid``: truth + plane + noise, float64
        ``(frame_size, frame_size)``."""
        size = self.syn.frame_size
        wcs = self.image_wcs(iid)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        tan = tan_projection(wcs)
        if tan is not None:
            vec = tan.pixels_to_vectors(xs, ys)
        else:  # images centred on a pole (LONPOLE 0)
            vec = lonlat_to_vec(*wcs.pixel_to_world_values(xs, ys))
        data = self.sky(vec @ self.to_map.T)
        c, a, b = self.planes(iid)
        if c or a or b:
            x0 = (size - 1) / 2
            data += c + a * (xs - x0) + b * (ys - x0)
        if self.syn.noise > 0:
            data += np.random.default_rng([self.syn.seed, 2, int(iid)]).normal(
                0.0, self.syn.noise, data.shape)
        return data

    def image(self, iid: int) -> SurveyImage:
        """Image ``iid``, its pixels rendered when loaded."""
        lon, lat = self.image_lonlat(iid)
        centre = self.to_map @ lonlat_to_vec(lon, lat)
        size = self.syn.frame_size
        return SurveyImage(key=f"synthetic:{int(iid)}", wcs=self.image_wcs(iid),
                           shape=(size, size), centre=centre, radius=self.image_radius,
                           loader=partial(self.render, iid))

    def images_touching(self, centre: np.ndarray, radius: float) -> list[SurveyImage]:
        """Images whose cap meets the cap ``(centre, radius)`` (map frame, radians)."""
        return [self.image(iid) for iid in self.image_ids_touching(centre, radius)]

    def image_ids_touching(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """Ids of the images whose cap meets the cap ``(centre, radius)`` (map frame,
        radians), exactly: the centres within ``radius + image_radius``."""
        reach = radius + self.image_radius
        local = self.to_map.T @ np.asarray(centre, dtype=np.float64)
        lon_c, lat_c = (float(x) for x in vec_to_lonlat(local))
        reach_deg = np.degrees(reach)
        ids = []
        for r in np.flatnonzero(np.abs(self.ring_lat - lat_c) <= reach_deg + 1e-9):
            n = int(self.ring_count[r])
            lat = np.radians(self.ring_lat[r])
            cos_d = (np.cos(reach) - np.sin(lat) * np.sin(np.radians(lat_c))) / max(
                np.cos(lat) * np.cos(np.radians(lat_c)), 1e-300)
            if n == 1 or cos_d <= -1 or abs(lat_c) + reach_deg >= 90:
                ks = np.arange(n)
            else:
                half = np.degrees(np.arccos(min(1.0, cos_d))) + 1e-6
                step = 360.0 / n
                k0 = int(np.ceil((lon_c - half - self.ring_phase[r]) / step))
                k1 = int(np.floor((lon_c + half - self.ring_phase[r]) / step))
                ks = np.unique(np.arange(k0, k1 + 1) % n)
            ids.append(self.ring_start[r] + ks)
        if not ids:
            return np.zeros(0, dtype=np.int64)
        ids = np.concatenate(ids)
        lon, lat = self.image_lonlat(ids)
        angle = np.arccos(np.clip((lonlat_to_vec(lon, lat) @ self.to_map.T) @ centre, -1, 1))
        return ids[angle <= reach]

    # -- tables -----------------------------------------------------------------------------
    @cached_property
    def planes_table(self) -> Table:
        """One row per image: ``image`` (id), ``lon, lat`` (its centre in ``frame_system``,
        degrees), ``c, a, b`` (:meth:`planes`) and ``x0, y0`` (0-based pixel of the centre)."""
        ids = np.arange(self.nimages)
        lon, lat = self.image_lonlat(ids)
        planes = np.array([self.planes(f) for f in ids]).reshape(-1, 3)
        x0 = (self.syn.frame_size - 1) / 2
        return Table({"image": ids, "lon": lon, "lat": lat, "c": planes[:, 0],
                      "a": planes[:, 1], "b": planes[:, 2],
                      "x0": np.full(len(ids), x0), "y0": np.full(len(ids), x0)})


@lru_cache(maxsize=4)
def survey_for(spec: MapSpec) -> SyntheticSurvey:
    """The synthetic survey of map ``spec`` (cached per spec: a spec is hashable)."""
    return SyntheticSurvey(spec)


def truth(spec: MapSpec, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """The noiseless sky of map ``spec`` at positions in the map's frame (degrees)."""
    return survey_for(spec).sky(lonlat_to_vec(lon_deg, lat_deg))


def injected_planes(spec: MapSpec) -> Table:
    """The background plane injected into each image of map ``spec``'s survey."""
    return survey_for(spec).planes_table
