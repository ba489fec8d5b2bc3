"""The QA report's plots, as PNG bytes (matplotlib's Agg backend: no display needed).

Each ``*_figure`` function builds a matplotlib figure from plain arrays (tests inspect it);
:func:`png_bytes` renders one. Sky plots are Mollweide projections of the map's own frame,
longitude 0 at the centre and growing to the left (the astronomers' view from inside the
sphere, as in Aladin and healpy's ``mollview``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import healpy as hp
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from hipsluigi.metadata.preview import mollweide_projection, preview_map
from hipsluigi.stretch.histogram import PixelHistogram
from hipsluigi.stretch.stretch import Stretch

# Figures are made with Figure() (no pyplot state), but healpy and some matplotlib paths
# consult the default backend: never a display one, which fails on a cluster node.
matplotlib.use("Agg")

#: Width of every plot, inches; with :data:`DPI`, 800 pixels.
WIDTH = 8.0
DPI = 100
#: Width of the sky pictures in the plots, pixels.
SKY_XSIZE = 800


def png_bytes(fig: Figure) -> bytes:
    """``fig`` rendered as PNG (:data:`DPI` dots per inch)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def allsky_healpix(image: np.ndarray, order: int) -> np.ndarray:
    """The HEALPix map an ``Allsky.png`` of ``order`` holds.

    Parameters
    ----------
    image : numpy.ndarray
        The Allsky picture ``[row, col]`` (gray levels) or ``[row, col, 2]`` (gray, alpha),
        row 0 at the top as in the file: tile Npix at grid row ``Npix // ncols`` (from the
        top), column ``Npix % ncols``, ``ncols = floor(sqrt(12 * 4**order))``; in a tile, PNG
        row ``r`` and column ``c`` hold the HEALPix pixel ``ix = r, iy = c`` of the tile.
    order : int
        The Allsky's order, 0..3.

    Raises
    ------
    ValueError
        For a picture too small to hold the tiles of ``order``.

    Returns
    -------
    numpy.ndarray
        float64, NESTED, ``nside = 2**order * w`` (``w``: the Allsky's tile width), the gray
        level of each pixel, NaN where the picture is transparent.
    """
    image = np.asarray(image)
    if image.ndim == 2:  # gray only: every pixel opaque
        image = np.stack([image, np.full_like(image, 255)], axis=-1)
    ntiles = 12 * 4**order
    ncols = math.isqrt(ntiles)
    width = image.shape[1] // ncols
    nrows = -(-ntiles // ncols)
    if width < 1 or image.shape[0] < nrows * width:
        raise ValueError(f"an Allsky picture of order {order} holds {nrows} x {ncols} tiles; "
                         f"got {image.shape[0]} x {image.shape[1]} pixels")
    tiles = {n: image[(n // ncols) * width:(n // ncols + 1) * width,
                      (n % ncols) * width:(n % ncols + 1) * width] for n in range(ntiles)}
    return preview_map(tiles, order, max_nside=None)[0]


def allsky_figure(image: np.ndarray, order: int, title: str, frame: str) -> Figure:
    """The Allsky preview of ``order`` (:func:`allsky_healpix`) on the sky, in the map's
    ``frame``, gray levels as in the PNG tiles."""
    picture, extent = mollweide_projection(allsky_healpix(image, order), SKY_XSIZE)
    fig = Figure(figsize=(WIDTH, 4.6))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.88))
    ax.set_facecolor("white")
    ax.imshow(np.ma.masked_invalid(picture), origin="lower", cmap="gray", vmin=0, vmax=255,
              extent=extent, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title} ({frame}; longitude 0 at the centre, growing to the left)")
    return fig


#: Bins a histogram is drawn with, at most (consecutive bins are added together).
DISPLAY_BINS = 400


def histogram_figure(hist: PixelHistogram, stretch: Stretch) -> Figure:
    """The map's pixel histogram (log counts), the stretch curve (gray level against value,
    right axis) and the chosen black and white levels (vertical lines labelled
    ``black level`` and ``white level``, at ``stretch.lo`` and ``stretch.hi``)."""
    fig = Figure(figsize=(WIDTH, 4.5))
    ax = fig.add_subplot()
    # Shown in at most DISPLAY_BINS bins: drawing every one of the histogram's bins, each gap
    # a patch of its own, took seconds a plot.
    group = -(-hist.nbins // DISPLAY_BINS)
    edges = hist.edges[::group]
    if edges[-1] != hist.edges[-1]:
        edges = np.append(edges, hist.edges[-1])
    counts = np.add.reduceat(np.asarray(hist.counts, dtype=float),
                             np.arange(0, hist.nbins, group))
    ax.stairs(np.where(counts > 0, counts, np.nan), edges, fill=True, color="0.7",
              label=f"pixels ({hist.npix:,})")
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (data units)")
    ax.set_ylabel("pixels per bin")
    lo, hi = stretch.lo, stretch.hi
    ax.axvline(lo, color="tab:blue", linestyle="--", label=f"black level {lo:.4g}")
    ax.axvline(hi, color="tab:red", linestyle="--", label=f"white level {hi:.4g}")
    ax.lines[-2].set_gid("black level")
    ax.lines[-1].set_gid("white level")
    curve = ax.twinx()
    # gray(v) is the number of edges below v: a step up by one at each edge
    x = np.concatenate([[min(hist.lo, lo)], stretch.edges, [max(hist.hi, hi)]])
    y = np.concatenate([[0], np.arange(1, len(stretch.edges) + 1), [len(stretch.edges)]])
    curve.step(x, y, where="post", color="k", linewidth=1.2,
               label=f"stretch ({stretch.kind})")
    curve.lines[-1].set_gid("stretch")
    curve.set_ylim(0, 260)
    curve.set_ylabel("PNG gray level")
    handles = ax.get_legend_handles_labels()
    more = curve.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper right", fontsize="small")
    span = max(hist.hi, hi) - min(hist.lo, lo)
    ax.set_xlim(min(hist.lo, lo) - 0.02 * span, max(hist.hi, hi) + 0.02 * span)
    ax.set_title("Histogram of the map and its PNG stretch")
    fig.tight_layout()
    return fig


def _mollweide_axes(fig: Figure, frame: str, rect=(0.05, 0.12, 0.9, 0.78)):
    ax = fig.add_axes(rect, projection="mollweide")
    ticks = np.radians(np.arange(-150, 181, 30))
    ax.set_xticks(ticks)
    # x = -longitude (longitude grows to the left)
    ax.set_xticklabels([f"{(-t) % 360:.0f}°" for t in np.arange(-150, 181, 30)],
                       fontsize="small")
    ax.grid(True, color="0.6", linewidth=0.5)
    lon_name, lat_name = ("l", "b") if frame == "galactic" else ("RA", "Dec")
    ax.set_xlabel(f"{lon_name} ({frame})")
    ax.set_ylabel(lat_name)
    return ax


def mollweide_x(lon: np.ndarray) -> np.ndarray:
    """Longitudes (degrees) to Mollweide ``x`` (radians, -pi..pi): 0 at the centre, growing to
    the left."""
    wrapped = (np.asarray(lon, dtype=float) + 180.0) % 360.0 - 180.0
    return -np.radians(wrapped)


def plate_values_figure(lon: np.ndarray, lat: np.ndarray, values: np.ndarray, frame: str,
                        title: str, label: str) -> Figure:
    """A value per plate (e.g. its background correction) as coloured dots at the plates'
    centres ``(lon, lat)``, degrees in the map's ``frame``."""
    fig = Figure(figsize=(WIDTH, 4.8))
    ax = _mollweide_axes(fig, frame)
    values = np.asarray(values, dtype=float)
    bound = float(np.nanmax(np.abs(values))) if values.size else 1.0
    bound = bound if bound > 0 else 1.0
    dots = ax.scatter(mollweide_x(lon), np.radians(lat), c=values, cmap="RdBu_r", vmin=-bound,
                      vmax=bound, s=max(4.0, min(60.0, 6000.0 / max(values.size, 1))),
                      edgecolors="none")
    fig.colorbar(dots, ax=ax, orientation="horizontal", fraction=0.05, pad=0.1, label=label)
    ax.set_title(title, pad=18)
    return fig


def residuals_figure(before: np.ndarray, after: np.ndarray) -> Figure:
    """Histograms of the plates' differences over their overlaps, before and after the
    background correction (data units)."""
    fig = Figure(figsize=(WIDTH, 3.8))
    ax = fig.add_subplot()
    both = np.concatenate([before, after]) if len(before) else np.zeros(1)
    span = float(np.max(np.abs(both))) or 1.0
    bins = np.linspace(-span, span, 41)
    ax.hist(before, bins=bins, color="0.6", label=f"fitted, before ({len(before)} overlaps; "
                                                  f"rms {_rms(before):.3g})")
    ax.hist(after, bins=bins, histtype="step", color="tab:red", linewidth=1.5,
            label=f"after the correction (rms {_rms(after):.3g})")
    ax.set_xlabel("plus - minus plate at the overlap's centre (data units)")
    ax.set_ylabel("overlaps")
    ax.legend(fontsize="small")
    ax.set_title("Overlap differences")
    fig.tight_layout()
    return fig


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 0.0


def coverage_map(order: int, npix: Sequence[int], max_order: int = 7) -> np.ndarray:
    """A NESTED HEALPix map (float, 1 covered, 0 not) of tiles ``npix`` of ``order``, at
    ``min(order, max_order)`` (deeper tiles are merged into their ancestors)."""
    shown = min(order, max_order)
    out = np.zeros(hp.order2npix(shown))
    npix = np.asarray(npix, dtype=np.int64)
    if npix.size:
        out[npix >> (2 * (order - shown))] = 1.0
    return out


def coverage_figure(order: int, npix: Sequence[int], frame: str) -> Figure:
    """The map's coverage: its tiles of ``order`` on the sky, in the map's ``frame``."""
    picture, extent = mollweide_projection(coverage_map(order, npix), SKY_XSIZE)
    fig = Figure(figsize=(WIDTH, 4.6))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.88))
    ax.imshow(np.ma.masked_invalid(picture), origin="lower", cmap="Greens", vmin=-0.3,
              vmax=1.2, extent=extent, interpolation="nearest")
    ax.set_axis_off()
    fraction = len(set(np.asarray(npix).tolist())) / hp.order2npix(order)
    ax.set_title(f"{len(npix)} tiles at order {order}, {100 * fraction:.1f}% of the sky "
                 f"({frame}; longitude 0 at the centre)")
    return fig


def timing_figure(families: Sequence[str], span: Sequence[float], wall: Sequence[float],
                  cpu: Sequence[float]) -> Figure:
    """Time per stage (task family), seconds: elapsed from the stage's first start to its last
    end, and the sums of its tasks' wall and CPU seconds."""
    n = len(families)
    fig = Figure(figsize=(WIDTH, 1.4 + 0.38 * max(n, 1)))
    ax = fig.add_subplot()
    y = np.arange(n)
    ax.barh(y - 0.27, span, height=0.27, color="tab:green", label="elapsed (stage)")
    ax.barh(y, wall, height=0.27, color="tab:blue", label="wall (sum of tasks)")
    ax.barh(y + 0.27, cpu, height=0.27, color="tab:orange", label="CPU (sum of tasks)")
    ax.set_yticks(y)
    ax.set_yticklabels(families)
    ax.invert_yaxis()  # first stage on top
    ax.set_xlabel("seconds")
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title("Time per stage (task family), from the tasks' own records")
    fig.tight_layout()
    return fig
