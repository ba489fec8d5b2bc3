"""``index.html``: a page that shows the HiPS it sits in with Aladin Lite v3.

Aladin Lite v3 API (cds-astro/aladin-lite ``src/js/A.js``, ``Aladin.js``, ``HiPS.js``):
``A.init.then(() => A.aladin(div, {survey, fov, target, cooFrame}))``; ``survey`` takes a HiPS
URL or a CDS ID; ``fov`` is in degrees; ``target`` is parsed in the view's frame;
``aladin.gotoRaDec(ra, dec)`` takes ICRS degrees. A string that ``new URL()`` cannot parse
(such as ``"."``) is first looked up as a CDS ID on the MocServer, so the page resolves the
relative URL ``"."`` against its own address in the browser and passes an absolute URL: the
file itself stays relocatable. Browsers do not let Aladin Lite fetch tiles from ``file://``,
so the page must be served over HTTP (``hipsluigi serve``, or ``python -m http.server`` in the
HiPS folder).

Offline: the npm build of Aladin Lite (``aladin-lite/aladin.js`` beside the page, an ES module
with the WebAssembly inlined) is imported when it was there as the page was written; should
that import fail, the page loads the CDS build (a classic script defining ``window.A``). The
PNG tiles show first; a PNG|FITS select switches the base layer with
``HiPS.setOptions({imgFormat, minCut, maxCut, stretch})`` (Aladin Lite 3.8 ``HiPS.js``,
``ColorCfg.js``: the cuts are in pixel units for FITS).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from hipsluigi.geometry.frames import astropy_frame, check_frame
from hipsluigi.storage.atomic import write_bytes_atomic

ALADIN_LITE_JS = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js"

#: The local copy, relative to the page (:mod:`hipsluigi.viewer.aladin_lite`): an ES module.
LOCAL_ALADIN_LITE_JS = "aladin-lite/aladin.js"

#: HiPS frame -> Aladin Lite ``cooFrame`` (its CooFrameEnum accepts 'ICRS...' and 'gal...')
ALADIN_FRAMES = {"equatorial": "ICRS", "galactic": "galactic"}

#: The stretches Aladin Lite 3 applies to FITS tiles between the cuts (its ColorCfg).
FITS_STRETCHES = ("linear", "sqrt", "asinh", "pow2", "log")

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
<p><b>{title}</b> &mdash; HiPS ({frame}) made with hipsluigi.{format_select}{report}</p>
<div id="aladin-lite-div"></div>
<p>To view this page, serve this HiPS folder over HTTP: run <code>hipsluigi serve</code> (or
<code>python -m http.server</code> in it and open <code>http://localhost:8000/</code>);
browsers block the tiles from file://.</p>
<script type="module">
  const LOCAL_SCRIPT = {local_script};
  const CDS_SCRIPT = {cds_script};

  // The CDS build is a classic script defining window.A; the npm build an ES module.
  function loadClassicScript(src) {{
    return new Promise((resolve, reject) => {{
      const script = document.createElement("script");
      script.src = src;
      script.charset = "utf-8";
      script.onload = () => resolve(window.A);
      script.onerror = () => reject(new Error("cannot load " + src));
      document.head.appendChild(script);
    }});
  }}

  async function loadAladinLite() {{
    if (LOCAL_SCRIPT) {{
      try {{
        return (await import(new URL(LOCAL_SCRIPT, window.location.href).href)).default;
      }} catch (err) {{
        // a copy deleted or damaged after the page was written: the public one still works
        console.warn("local Aladin Lite failed (" + err + "); loading " + CDS_SCRIPT);
      }}
    }}
    return loadClassicScript(CDS_SCRIPT);
  }}

  const A = await loadAladinLite();
  await A.init;
  // this HiPS is the folder of this page; Aladin Lite adds "/Norder..." itself
  const hipsUrl = new URL(".", window.location.href).href.replace(/\\/$/, "");
  const aladin = A.aladin("#aladin-lite-div", {{
    survey: hipsUrl,
    fov: {fov},
    target: {target},
    cooFrame: {coo_frame},
  }});
  // target is read in the view frame; pin the ICRS position whatever the frame
  aladin.gotoRaDec({ra}, {dec});
  window.aladin = aladin;  // for the browser console (and the browser test)

  const FITS_OPTIONS = {fits_options};
  if (FITS_OPTIONS) {{
    document.getElementById("hips-format").addEventListener("change", (event) => {{
      const layer = aladin.getBaseImageLayer();
      layer.setOptions(event.target.value === "fits" ? FITS_OPTIONS : {{imgFormat: "png"}});
    }});
  }}
</script>
</body>
</html>
"""


#: The PNG|FITS select, for a HiPS with FITS tiles.
_FORMAT_SELECT = """
<label>Tiles: <select id="hips-format">
<option value="png" selected>PNG</option>
<option value="fits">FITS</option>
</select></label>"""


def _js(value: object) -> str:
    """A JavaScript literal safe inside ``<script>`` (no ``</script>`` can sneak in)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def index_html(
    title: str, frame: str, initial_ra: float, initial_dec: float, initial_fov: float,
    *, local_aladin_lite: bool = False, pixel_cut: tuple[float, float] | None = None,
    fits_stretch: str = "asinh", report: str | None = None, fits_tiles: bool = True,
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
    local_aladin_lite : bool, optional
        Load ``aladin-lite/aladin.js`` beside the page, falling back at run time to the CDS
        copy if it fails to load; False: the CDS copy only.
    pixel_cut : (float, float), optional
        The FITS tiles' display cut, in pixel units (as ``hips_pixel_cut``); None: Aladin
        Lite takes ``hips_pixel_cut`` from ``properties``. The page shows the PNG tiles first
        and offers the FITS tiles through a PNG|FITS select.
    fits_stretch : str, optional
        Aladin Lite's stretch of the FITS tiles between the cuts, one of
        :data:`FITS_STRETCHES`.
    report : str, optional
        The QA report's URL relative to the page (e.g. ``"qa/report.html"``), linked as
        "QA report"; None: no link.
    fits_tiles : bool, optional
        Whether the HiPS has FITS tiles to offer (a colour HiPS has PNG tiles only: no
        select then).

    Returns
    -------
    str
        The HTML.

    Raises
    ------
    ValueError
        For an unknown frame or stretch, a bad position, a non-positive field of view or a
        cut that is not two finite increasing numbers.
    """
    check_frame(frame)
    ra, dec, fov = float(initial_ra), float(initial_dec), float(initial_fov)
    if not (math.isfinite(ra) and -90.0 <= dec <= 90.0):
        raise ValueError(f"bad initial position ra={initial_ra}, dec={initial_dec}")
    if not (math.isfinite(fov) and fov > 0):
        raise ValueError(f"initial_fov must be > 0 degrees, got {initial_fov}")
    if fits_stretch not in FITS_STRETCHES:
        raise ValueError(f"unknown FITS stretch {fits_stretch!r}; expected one of "
                         f"{', '.join(FITS_STRETCHES)}")
    fits_options: dict[str, object] = {"imgFormat": "fits", "stretch": fits_stretch}
    if pixel_cut is not None:
        lo, hi = (float(v) for v in pixel_cut)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"pixel_cut must be two finite numbers lo < hi, got {pixel_cut}")
        fits_options.update(minCut=lo, maxCut=hi)
    lon, lat = _view_position(ra, dec, frame)
    return _TEMPLATE.format(
        title=html.escape(title),
        frame=html.escape(frame),
        report=(f' <a href="{html.escape(report)}">QA report</a>' if report else ""),
        local_script=_js(LOCAL_ALADIN_LITE_JS if local_aladin_lite else None),
        cds_script=_js(ALADIN_LITE_JS),
        fov=_js(fov),
        target=_js(f"{lon:.6f} {lat:+.6f}"),
        coo_frame=_js(ALADIN_FRAMES[frame]),
        ra=_js(ra),
        dec=_js(dec),
        fits_options=_js(fits_options if fits_tiles else None),
        format_select=_FORMAT_SELECT if fits_tiles else "",
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
    initial_fov: float, *, pixel_cut: tuple[float, float] | None = None,
    fits_stretch: str = "asinh", report: str | None = None, fits_tiles: bool = True,
) -> None:
    """Write :func:`index_html` to ``path`` (UTF-8, atomically).

    The page loads the local Aladin Lite if ``aladin-lite/aladin.js`` exists beside ``path``
    now (:func:`hipsluigi.viewer.aladin_lite.install_aladin_lite` puts it there), else the
    CDS copy. Other arguments as :func:`index_html`.
    """
    path = Path(path)
    local = (path.parent / LOCAL_ALADIN_LITE_JS).is_file()
    text = index_html(title, frame, initial_ra, initial_dec, initial_fov,
                      local_aladin_lite=local, pixel_cut=pixel_cut, fits_stretch=fits_stretch,
                      report=report, fits_tiles=fits_tiles)
    write_bytes_atomic(path, text.encode("utf-8"))
