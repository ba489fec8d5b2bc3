"""``index.html``: a page that shows the HiPS it sits in with Aladin Lite v3.

Aladin Lite v3 API (cds-astro/aladin-lite ``src/js/A.js``, ``Aladin.js``, ``HiPS.js``):
``A.init.then(() => A.aladin(div, {survey, fov, target, cooFrame}))``; ``survey`` takes a HiPS
URL or a CDS ID; ``fov`` is in degrees; ``target`` is parsed in the view's frame;
``aladin.gotoRaDec(ra, dec)`` takes ICRS degrees. A string that ``new URL()`` cannot parse
(such as ``"."``) is first looked up as a CDS ID on the MocServer, so the page resolves the
relative URL ``"."`` against its own address in the browser and passes an absolute URL: the
file itself stays relocatable. Browsers do not let Aladin Lite fetch tiles from ``file://``,
so the page must be served over HTTP (``python -m http.server`` in the HiPS folder).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from hipsluigi.geometry.frames import astropy_frame, check_frame
from hipsluigi.storage.atomic import write_bytes_atomic

ALADIN_LITE_JS = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js"

#: HiPS frame -> Aladin Lite ``cooFrame`` (its CooFrameEnum accepts 'ICRS...' and 'gal...')
ALADIN_FRAMES = {"equatorial": "ICRS", "galactic": "galactic"}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, height=device-height, initial-scale=1.0">
<title>{title}</title>
<style>
  body {{ margin: 0; font-family: sans-serif; }}
  #aladin-lite-div {{ width: 100%; height: 90vh; }}
  p {{ margin: 0.5em 1em; }}
</style>
</head>
<body>
<p><b>{title}</b> &mdash; HiPS ({frame}) made with hipsluigi.</p>
<div id="aladin-lite-div"></div>
<p>To view this page, serve this HiPS folder over HTTP: run <code>python -m http.server</code>
in it and open <code>http://localhost:8000/</code> (browsers block the tiles from file://).</p>
<script type="text/javascript" src="{script}" charset="utf-8"></script>
<script type="text/javascript">
  A.init.then(() => {{
    // this HiPS is the folder of this page
    const hipsUrl = new URL(".", window.location.href).href;
    const aladin = A.aladin("#aladin-lite-div", {{
      survey: hipsUrl,
      fov: {fov},
      target: {target},
      cooFrame: {coo_frame},
    }});
    // target is read in the view frame; pin the ICRS position whatever the frame
    aladin.gotoRaDec({ra}, {dec});
  }});
</script>
</body>
</html>
"""


def _js(value: object) -> str:
    """A JavaScript literal safe inside ``<script>`` (no ``</script>`` can sneak in)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def index_html(
    title: str, frame: str, initial_ra: float, initial_dec: float, initial_fov: float,
) -> str:
    """The page showing this HiPS (relative URL ``"."``) with Aladin Lite v3.

    Parameters
    ----------
    title : str
        Page title (HTML-escaped).
    frame : str
        The HiPS frame, also the display frame.
    initial_ra, initial_dec : float
        Initial position, ICRS degrees (as ``hips_initial_ra/dec``).
    initial_fov : float
        Field of view, degrees (> 0).

    Returns
    -------
    str
        The HTML.

    Raises
    ------
    ValueError
        For an unknown frame, a bad position or a non-positive field of view.
    """
    check_frame(frame)
    ra, dec, fov = float(initial_ra), float(initial_dec), float(initial_fov)
    if not (math.isfinite(ra) and -90.0 <= dec <= 90.0):
        raise ValueError(f"bad initial position ra={initial_ra}, dec={initial_dec}")
    if not (math.isfinite(fov) and fov > 0):
        raise ValueError(f"initial_fov must be > 0 degrees, got {initial_fov}")
    lon, lat = _view_position(ra, dec, frame)
    return _TEMPLATE.format(
        title=html.escape(title),
        frame=html.escape(frame),
        script=ALADIN_LITE_JS,
        fov=_js(fov),
        target=_js(f"{lon:.6f} {lat:+.6f}"),
        coo_frame=_js(ALADIN_FRAMES[frame]),
        ra=_js(ra),
        dec=_js(dec),
    )


def _view_position(ra: float, dec: float, frame: str) -> tuple[float, float]:
    """ICRS ``(ra, dec)`` in the HiPS frame, degrees."""
    if frame == "equatorial":
        return ra % 360.0, dec
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(astropy_frame(frame))
    return float(c.spherical.lon.deg) % 360.0, float(c.spherical.lat.deg)


def write_index_html(
    path: str | Path, title: str, frame: str, initial_ra: float, initial_dec: float,
    initial_fov: float,
) -> None:
    """Write :func:`index_html` (same arguments) to ``path`` (UTF-8, atomically)."""
    text = index_html(title, frame, initial_ra, initial_dec, initial_fov)
    write_bytes_atomic(Path(path), text.encode("utf-8"))
