"""Survey image projections as array algebra, for the two commonest cases.

Most survey images are plain TAN (no SIP, no lookup tables), and all-sky images are often plain
CAR. For them the pixel position of a unit vector is a few array operations, which numpy does
far faster than WCSLIB through astropy: TAN is a ratio of dot products,
``(x, y) = (A0 . v, A1 . v) / (e_z . v) + CRPIX - 1``; CAR (equator on CRVAL2 = 0) is linear in
longitude and latitude. :func:`tan_projection` and :func:`car_projection` return None for any
WCS whose structure they cannot represent exactly (any distortion, including those WCSLIB keeps
behind a TAN ctype: TPV, SCAMP's TAN with PV, DSS plate solutions); callers then use WCSLIB.
:mod:`hipsluigi.geometry.wcs_mapping` also holds them to WCSLIB numerically before use. Pixel
positions are 0-based, ``x`` along columns (FITS axis 1) and ``y`` along rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS


@dataclass(frozen=True)
class TanProjection:
    """A plain TAN WCS as matrices acting on unit vectors of its own celestial frame.

    ``basis`` rows are the east, north and tangent-point unit vectors; ``pix`` maps the standard
    coordinates (radians) to pixel offsets; ``crpix0`` is the 0-based reference pixel.
    """

    basis: np.ndarray  # (3, 3)
    pix: np.ndarray    # (2, 2): pixel offset = pix @ (xi, eta)
    crpix0: np.ndarray  # (2,)

    def rotated(self, rotation: np.ndarray) -> TanProjection:
        """The same projection acting on vectors of another celestial frame,
        ``v_own = rotation @ v``."""
        return TanProjection(self.basis @ rotation, self.pix, self.crpix0)

    def vectors_to_pixels(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based ``(x, y)`` of unit vectors ``(..., 3)``; NaN behind the tangent plane."""
        q = vec @ self.basis.T
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(q[..., 2] > 0, 1.0 / q[..., 2], np.nan)
        xi = q[..., 0] * inv
        eta = q[..., 1] * inv
        x = self.pix[0, 0] * xi + self.pix[0, 1] * eta + self.crpix0[0]
        y = self.pix[1, 0] * xi + self.pix[1, 1] * eta + self.crpix0[1]
        return x, y

    def pixels_to_vectors(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Unit vectors ``(..., 3)`` (own frame) of 0-based pixel positions."""
        inv = np.linalg.inv(self.pix)
        dx = np.asarray(x, dtype=np.float64) - self.crpix0[0]
        dy = np.asarray(y, dtype=np.float64) - self.crpix0[1]
        xi = inv[0, 0] * dx + inv[0, 1] * dy
        eta = inv[1, 0] * dx + inv[1, 1] * dy
        norm = 1.0 / np.sqrt(1.0 + xi**2 + eta**2)
        return np.stack([xi * norm, eta * norm, norm], axis=-1) @ self.basis


#: Keywords of the header WCSLIB writes back that mean more than a plain projection: PV and
#: PS parameters, and the distortions (TPV polynomials, DSS plate solutions, SCAMP's TAN with
#: PV) WCSLIB keeps as CPDIS/CQDIS records; astropy's ``WCS`` does not show those as
#: distortions and its ``ctype`` still says TAN.
_NOT_PLAIN = ("PV", "PS", "CPDIS", "CQDIS", "DP", "DQ")


def _written_cards(w) -> dict[str, str]:
    """Keyword -> value text of the header WCSLIB writes for ``w`` (a set ``Wcsprm``)."""
    text = w.to_header(True)
    cards = (text[k:k + 80] for k in range(0, len(text), 80))
    return {card[:8].strip(): card[10:].strip() for card in cards if card[8:10] == "= "}


def _plain_celestial(wcs: WCS, code: str):
    """``wcs.wcs`` (set) if ``wcs`` is 2-D, celestial (longitude first) in projection ``code``
    on both axes, with no distortion of any kind (SIP, lookup tables, WCSLIB's distortions)
    and no projection parameter; else None."""
    w = wcs.wcs
    if (wcs.naxis != 2 or wcs.sip is not None or wcs.cpdis1 is not None
            or wcs.cpdis2 is not None or wcs.det2im1 is not None or wcs.det2im2 is not None):
        return None
    if not (w.ctype[0].endswith(f"-{code}") and w.ctype[1].endswith(f"-{code}")):
        return None
    w.set()
    if w.lng != 0 or w.lat != 1 or w.get_pv() or w.get_ps():
        return None
    # What WCSLIB will actually compute: TPV and DSS hide behind a TAN ctype.
    cards = _written_cards(w)
    if any(key.startswith(_NOT_PLAIN) for key in cards):
        return None
    for axis in ("CTYPE1", "CTYPE2"):
        quoted = cards.get(axis, "").split("'")
        ctype = quoted[1].strip() if len(quoted) > 2 else ""
        if len(ctype) != 8 or ctype[4:] != f"-{code}":
            return None
    return w


def tan_projection(wcs: WCS) -> TanProjection | None:
    """The :class:`TanProjection` of a WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Any WCS.

    Returns
    -------
    TanProjection or None
        None unless ``wcs`` is 2-D, celestial (longitude first), plain TAN (no SIP, no lookup
        table, no TPV, DSS or other WCSLIB distortion, no PV, LONPOLE 180). This is a check
        of the WCS's structure only; :func:`hipsluigi.geometry.wcs_mapping.fast_projection`
        also checks the numbers.
    """
    w = _plain_celestial(wcs, "TAN")
    if w is None or abs(w.lonpole - 180.0) > 1e-12:
        return None
    lon0, lat0 = np.radians(w.crval)
    east = np.array([-np.sin(lon0), np.cos(lon0), 0.0])
    north = np.array([-np.sin(lat0) * np.cos(lon0), -np.sin(lat0) * np.sin(lon0), np.cos(lat0)])
    centre = np.array([np.cos(lat0) * np.cos(lon0), np.cos(lat0) * np.sin(lon0), np.sin(lat0)])
    # Intermediate world coordinates (degrees) are (xi, eta) in degrees; pixel offsets are
    # CD^-1 applied to them.
    cd = w.get_pc() * w.get_cdelt()[:, None]
    pix = np.linalg.inv(cd) * np.degrees(1.0)
    return TanProjection(np.stack([east, north, centre]), pix, np.asarray(w.crpix) - 1.0)


@dataclass(frozen=True)
class CarProjection:
    """A plain CAR WCS with CRVAL2 = 0 (native = celestial, turned by CRVAL1), acting on unit
    vectors of its own celestial frame (``rotation`` brings other frames' vectors to it)."""

    lon0: float         # CRVAL1, degrees
    pix: np.ndarray     # (2, 2): pixel offset = pix @ (lon - lon0, lat) in degrees
    crpix0: np.ndarray  # (2,)
    rotation: np.ndarray | None = None

    def rotated(self, rotation: np.ndarray) -> CarProjection:
        """The same projection acting on vectors of another celestial frame,
        ``v_own = rotation @ v``."""
        identity = np.allclose(rotation, np.eye(3), atol=1e-15)
        return CarProjection(self.lon0, self.pix, self.crpix0, None if identity else rotation)

    def vectors_to_pixels(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based ``(x, y)`` of unit vectors ``(..., 3)``."""
        # Turning the vectors by -CRVAL1 first makes arctan2 return lon - CRVAL1 in (-pi, pi]
        # directly, with no modulo pass.
        lon0 = np.radians(self.lon0)
        turn = np.array([[np.cos(lon0), np.sin(lon0), 0.0], [-np.sin(lon0), np.cos(lon0), 0.0],
                         [0.0, 0.0, 1.0]])
        if self.rotation is not None:
            vec = vec @ (turn @ self.rotation).T
            vx, vy, vz = vec[..., 0], vec[..., 1], vec[..., 2]
        else:
            vx, vy, vz = vec[..., 0], vec[..., 1], vec[..., 2]
            if lon0 != 0.0:
                vx, vy = turn[0, 0] * vx + turn[0, 1] * vy, turn[1, 0] * vx + turn[1, 1] * vy
        lon = np.arctan2(vy, vx)
        lat = np.arcsin(np.clip(vz, -1.0, 1.0))
        m = self.pix * np.degrees(1.0)  # pixels per radian
        return (_affine(m[0, 0], lon, m[0, 1], lat, self.crpix0[0]),
                _affine(m[1, 0], lon, m[1, 1], lat, self.crpix0[1]))


def _affine(a: float, u: np.ndarray, b: float, v: np.ndarray, c: float) -> np.ndarray:
    """``a u + b v + c``, skipping a zero term (CAR images are rarely rotated)."""
    out = a * u if a != 0.0 else b * v
    if a != 0.0 and b != 0.0:
        out += b * v
    out += c
    return out


def car_projection(wcs: WCS) -> CarProjection | None:
    """The :class:`CarProjection` of a WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Any WCS.

    Returns
    -------
    CarProjection or None
        None unless ``wcs`` is 2-D, celestial (longitude first), plain CAR with CRVAL2 = 0,
        LONPOLE 0 and no PV or distortion (structure only, as for :func:`tan_projection`).
    """
    w = _plain_celestial(wcs, "CAR")
    if w is None or w.crval[1] != 0.0 or abs(w.lonpole) > 1e-12:
        return None
    cd = w.get_pc() * w.get_cdelt()[:, None]
    return CarProjection(float(w.crval[0]), np.linalg.inv(cd), np.asarray(w.crpix) - 1.0)
