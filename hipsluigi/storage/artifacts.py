"""Every artifact of the work tree, written and read in one place.

Each artifact has one ``write_*``/``read_*`` pair here; every write is atomic
(:mod:`hipsluigi.storage.atomic`). Pixel kernels never open files: a task reads its inputs
with these functions, calls the kernel, and saves the result with them.

Formats:

* plates and plate mosaics: FITS, float32 primary image with the plate's HPX WCS; a mosaic
  adds an ``IMAGES`` binary table of the background plane subtracted from each survey image
  (``image, c, a, b``: ``c + a u + b v``, see ``hipsluigi.mosaic``), a ``SKIPPED`` table of
  the images it could not use (``image, reason``) and ``INPUTS``, the id of the survey
  index rows it was made from;
* difference fits: JSON, one record (or ``null`` when the plates do not overlap);
* tile manifests: JSON ``{"order", "plate", "tiles": [npix, ...], ["stretch"]}``;
* histograms: ``.npz`` (``lo, hi, counts, npix``);
* seam fields: one ``.npz`` of every plate's edge corrections, keyed by plate id;
* stretch: JSON (:meth:`hipsluigi.stretch.stretch.Stretch.to_json`);
* survey units: JSON ``{"BUNIT": ..., "MAGZP": ...}`` (keys present only when known);
* tables (``platelist.tbl``, ``images.tbl``, ``fitcombo.tbl``, ``corrections.tbl``, the
  survey index and its rejects ``path, hdu, reason``): IPAC ASCII with Montage's column names.
  The survey index also records ``\\listing``, the fingerprint of the folder it indexed.

Text from outside (file names, error messages) may hold any character, a newline or a ``|``
included, which IPAC tables and FITS headers and string columns cannot: it is stored through
:func:`escape_text` (printable ASCII, backslash escapes) and read back through
:func:`unescape_text`, so that every name round-trips. Plain ASCII names are stored as they are.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits
from astropy.table import Table

from hipsluigi.background.overlap import DifferenceFit
from hipsluigi.pyramid.shrink import HalfPlate
from hipsluigi.storage.atomic import write_atomic, write_fits_atomic, write_text_atomic
from hipsluigi.storage.iometer import count_read
from hipsluigi.stretch.histogram import PixelHistogram

if TYPE_CHECKING:  # scipy.special, which a SLURM job of most tasks need not import
    from hipsluigi.metadata.allsky import AllskyPart
    from hipsluigi.stretch.stretch import Stretch

PathLike = str | os.PathLike

# -- text from outside -------------------------------------------------------------------------

_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\(?:([\\nrt])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")


def _escape_char(c: str) -> str:
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def escape_text(text: str) -> str:
    """``text`` as printable ASCII, one line, safe in an IPAC table and a FITS header.

    Backslash, control and non-ASCII characters (and surrogates, which stand for the bytes of a
    file name that is not UTF-8) become Python-style escapes (``\\\\``, ``\\n``, ``\\xe9``,
    ``\\u2603``, ``\\U0001f600``); so do ``|`` (the IPAC column separator), spaces at either
    end (which tables strip) and a whole value ``null`` (IPAC's blank). Printable ASCII text
    without those is returned unchanged. :func:`unescape_text` is the exact inverse.
    """
    out = "".join(c if " " <= c <= "~" and c not in "\\|" else _escape_char(c) for c in text)
    if out == "null":
        return "\\x6eull"
    body = out.strip(" ")
    lead = len(out) - len(out.lstrip(" "))
    trail = len(out) - lead - len(body)
    return "\\x20" * lead + body + "\\x20" * trail


def unescape_text(text: str) -> str:
    """The text :func:`escape_text` escaped (other backslashes are left as they are)."""
    def one(m: re.Match) -> str:
        if m.group(1):
            return _UNESCAPES[m.group(1)]
        return chr(int(next(g for g in m.groups()[1:] if g), 16))

    return _ESCAPE.sub(one, text)


# -- plates ----------------------------------------------------------------------------------


def _text_column(name: str, texts: Sequence[str]) -> fits.Column:
    """A FITS string column of :func:`escape_text` forms (FITS strings are ASCII)."""
    escaped = [escape_text(t) for t in texts]
    return fits.Column(name, f"{max(len(t) for t in ['x', *escaped])}A", array=escaped)


def write_plate(path: PathLike, image: np.ndarray, header: fits.Header,
                image_planes: Mapping[str, Sequence[float]] | None = None,
                skipped_images: Mapping[str, str] | None = None) -> None:
    """Write a plate, atomically.

    Parameters
    ----------
    path : path of the FITS file.
    image : numpy.ndarray
        The plate's pixels ``[row, col]`` (float32; NaN where there is no data).
    header : astropy.io.fits.Header
        The plate's HPX WCS and any other cards.
    image_planes : mapping of str to (c, a, b), optional
        For a mosaic: the background plane subtracted from each survey image, by image name,
        written as the ``IMAGES`` table.
    skipped_images : mapping of str to str, optional
        For a mosaic: why each unusable survey image was skipped, by image name, written as
        the ``SKIPPED`` table.
    """
    hdus = [fits.PrimaryHDU(image, header)]
    if image_planes:
        names = list(image_planes)
        planes = np.array([image_planes[k] for k in names], dtype=np.float64).reshape(-1, 3)
        hdus.append(fits.BinTableHDU.from_columns([
            _text_column("image", names),
            fits.Column("c", "D", array=planes[:, 0]),
            fits.Column("a", "D", array=planes[:, 1]),
            fits.Column("b", "D", array=planes[:, 2]),
        ], name="IMAGES", header=fits.Header([("COMMENT", "background planes subtracted: "
                                               "c + a u + b v, u = (x - x0)/size")])))
    if skipped_images:
        names = list(skipped_images)
        hdus.append(fits.BinTableHDU.from_columns([
            _text_column("image", names),
            _text_column("reason", [skipped_images[k] for k in names]),
        ], name="SKIPPED", header=fits.Header([("COMMENT", "survey images skipped as "
                                                "unusable; text escaped as in IPAC tables")])))
    write_fits_atomic(path, fits.HDUList(hdus) if len(hdus) > 1 else hdus[0])


def write_plate_mosaic(path: PathLike, data: np.ndarray, plate_header: Mapping,
                       used_images: Sequence[str], skipped_images: Mapping[str, str],
                       image_planes: Mapping[str, Sequence[float]],
                       inputs: str | None = None) -> None:
    """Write a padded plate mosaic: the plate's WCS, how many survey images went in
    (``NIMAGES``) and were skipped (``NSKIPPED``, each with its reason as ``HISTORY`` and in
    the ``SKIPPED`` table), the ``IMAGES`` table of the background planes subtracted, and
    ``INPUTS``, the id of the survey inputs it was made from (see :func:`read_mosaic_inputs`).
    """
    header = fits.Header()
    header.update(plate_header)
    header["NIMAGES"] = (len(used_images), "survey images coadded")
    header["NSKIPPED"] = (len(skipped_images), "survey images skipped as unusable")
    if inputs is not None:
        header["INPUTS"] = (inputs, "survey inputs (SHA-1)")
    for reason in skipped_images.values():
        # astropy continues a long HISTORY on further cards: the file name is never cut.
        header.add_history(f"skipped {escape_text(reason)}")
    write_plate(path, data, header, image_planes, skipped_images)


def write_half_plate(path: PathLike, half: HalfPlate, header: fits.Header) -> None:
    """Write a deepest plate shrunk by 2 before its correction
    (:class:`~hipsluigi.pyramid.shrink.HalfPlate`), atomically: the means as the primary
    image, the partly blank blocks as the ``PARTIAL`` table (``index``, ``members``)."""
    table = fits.BinTableHDU.from_columns([
        fits.Column("index", "K", array=np.asarray(half.partial, dtype=np.int64)),
        fits.Column("members", "B", array=np.asarray(half.members, dtype=np.uint8)),
    ], name="PARTIAL", header=fits.Header([("COMMENT", "blocks with 1 to 3 finite pixels: "
                                           "flat index, bit 2 r + c set if finite")]))
    write_fits_atomic(path, fits.HDUList([fits.PrimaryHDU(half.data, header), table]))


def read_half_plate(path: PathLike) -> HalfPlate:
    """A :func:`write_half_plate` file as a :class:`~hipsluigi.pyramid.shrink.HalfPlate`
    (native float32 means), counted as read whole; ``OSError`` naming the file if it is not
    one."""
    try:
        with fits.open(path, memmap=False) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            rows = hdul["PARTIAL"].data
            half = HalfPlate(data, np.asarray(rows["index"], dtype=np.int64),
                             np.asarray(rows["members"], dtype=np.uint8))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OSError(f"{path}: not a readable half plate ({err})") from err
    count_read(path, os.path.getsize(path))
    return half


def read_plate(path: PathLike, memmap: bool = True, count: bool = True) -> np.ndarray:
    """A plate's pixels ``[row, col]``. With ``memmap`` (the default), a read-only big-endian
    view of the file: readers take slices or strided quarters, and a plate read whole into
    fresh memory costs more in page faults than the work on it.

    With ``count`` (the default) the whole array counts as read
    (:mod:`hipsluigi.storage.iometer`); a reader that touches only part of a memory map says
    so itself."""
    with fits.open(path, memmap=memmap, mode="readonly") as hdul:
        data = hdul[0].data
    if count and data is not None:
        count_read(path, data.nbytes)
    return data


def read_plate_header(path: PathLike) -> fits.Header:
    return fits.getheader(path)


def read_image_planes(path: PathLike) -> dict[str, tuple[float, float, float]]:
    """The ``IMAGES`` table of a plate mosaic: ``{image: (c, a, b)}`` (empty if none)."""
    with fits.open(path) as hdul:
        if "IMAGES" not in hdul:
            return {}
        rows = hdul["IMAGES"].data
        return {unescape_text(str(r["image"])): (float(r["c"]), float(r["a"]), float(r["b"]))
                for r in rows}


def read_skipped_images(path: PathLike) -> dict[str, str]:
    """The ``SKIPPED`` table of a plate mosaic: ``{image: reason}`` (empty if none)."""
    with fits.open(path) as hdul:
        if "SKIPPED" not in hdul:
            return {}
        return {unescape_text(str(r["image"])): unescape_text(str(r["reason"]))
                for r in hdul["SKIPPED"].data}


def read_mosaic_inputs(path: PathLike) -> str | None:
    """``INPUTS`` of a plate mosaic: the id of the survey inputs it was made from (None if it
    records none, as mosaics of synthetic surveys)."""
    value = fits.getheader(path).get("INPUTS")
    return None if value is None else str(value)


def check_plate(path: PathLike, shape: tuple[int, int]) -> None:
    """Raise ``OSError`` naming ``path`` unless it is a whole FITS image of array ``shape``
    (header and data present; the pixels are not read)."""
    from astropy.utils.exceptions import AstropyUserWarning

    # A truncated file gets the error below, not astropy's warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                found = hdul[0].shape
                info = hdul.fileinfo(0)
        except (OSError, ValueError, IndexError) as err:
            raise OSError(f"{path}: not a readable FITS image ({err})") from err
    if found != tuple(shape):
        raise OSError(f"{path}: image shape {found}, expected {tuple(shape)}")
    size = os.path.getsize(path)
    if size < info["datLoc"] + info["datSpan"]:
        raise OSError(f"{path}: truncated, {size} bytes of {info['datLoc'] + info['datSpan']}")


# -- difference fits, manifests ----------------------------------------------------------------


def write_difference_fit(path: PathLike, fit: DifferenceFit | None) -> None:
    """One difference fit; ``None`` records that the two plates share no usable pixel."""
    write_text_atomic(path, json.dumps(None if fit is None else fit.row()))


def read_difference_fit(path: PathLike) -> DifferenceFit | None:
    with open(path) as f:
        row = json.load(f)
    return None if row is None else DifferenceFit(**row)


def write_manifest(path: PathLike, order: int, plate: str, tiles: Sequence[int],
                   stretch: str | None = None) -> None:
    """The tiles a tile group wrote (HEALPix NESTED indices at ``order``)."""
    manifest = {"order": order, "plate": plate, "tiles": [int(n) for n in tiles]}
    if stretch is not None:
        manifest["stretch"] = stretch
    write_text_atomic(path, json.dumps(manifest))


def read_manifest(path: PathLike) -> dict:
    """``{"order", "plate", "tiles": [npix, ...]}`` (and ``"stretch"`` for PNG groups)."""
    with open(path) as f:
        return json.load(f)


# -- histograms, stretch, seam fields ----------------------------------------------------------


def write_histogram(path: PathLike, hist: PixelHistogram) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # an open file: numpy adds no ".npz" to the name
            np.savez(f, lo=hist.lo, hi=hist.hi, counts=hist.counts, npix=hist.npix)

    write_atomic(path, save)


def read_histogram(path: PathLike) -> PixelHistogram:
    with open(path, "rb") as f, np.load(f) as z:
        return PixelHistogram(float(z["lo"]), float(z["hi"]), z["counts"], int(z["npix"]))


def write_stretch(path: PathLike, stretch: Stretch) -> None:
    write_text_atomic(path, stretch.to_json())


def read_stretch(path: PathLike) -> Stretch:
    from hipsluigi.stretch.stretch import Stretch

    return Stretch.from_json(Path(path).read_text())


def write_seam_fields(path: PathLike, fields: Mapping[int, np.ndarray]) -> None:
    """Every plate's edge corrections, keyed by plate id (``cntr`` of ``images.tbl``)."""
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **{str(k): v for k, v in fields.items()})

    write_atomic(path, save)


def read_seam_field(path: PathLike, plate_id: int) -> np.ndarray | None:
    """Plate ``plate_id``'s edge corrections, or None if it has none."""
    with np.load(path) as seams:
        return seams[str(plate_id)] if str(plate_id) in seams.files else None


def write_plate_correction(path: PathLike, plane: Sequence[float] | None,
                           edges: np.ndarray | None) -> None:
    """A deepest-order plate's background correction
    (:func:`hipsluigi.background.seams.correct_plate`): the plane ``(a, b, c)`` and the edge
    corrections, each absent when there is none (no global background matching). Stored
    as float64 arrays, so that the plate read through it is the plate corrected once."""
    arrays = {}
    if plane is not None:
        arrays["plane"] = np.asarray(plane, dtype=np.float64)
    if edges is not None:
        arrays["edges"] = edges

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, save)


def read_plate_correction(path: PathLike
                          ) -> tuple[tuple[float, float, float] | None, np.ndarray | None]:
    """``(plane, edges)`` as :func:`write_plate_correction` wrote them (None where absent)."""
    with np.load(path) as stored:
        plane = (tuple(float(v) for v in stored["plane"]) if "plane" in stored.files
                 else None)
        edges = stored["edges"] if "edges" in stored.files else None
    return plane, edges


def write_allsky_part(path: PathLike, part: AllskyPart) -> None:
    """An :class:`~hipsluigi.metadata.allsky.AllskyPart` (uncompressed npz), atomically."""
    arrays = {name: value for name, value in vars(part).items() if value is not None}

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, save)


def read_allsky_part(path: PathLike) -> AllskyPart:
    """The :class:`~hipsluigi.metadata.allsky.AllskyPart` :func:`write_allsky_part` wrote.

    Raises
    ------
    ValueError
        Naming the file, if it is not a whole part (not an npz, an array missing, or arrays
        of disagreeing lengths); ``OSError`` if it cannot be read.
    """
    from zipfile import BadZipFile

    from hipsluigi.metadata.allsky import AllskyPart

    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        part = AllskyPart(**arrays)
    except (BadZipFile, EOFError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not an Allsky part ({type(err).__name__}: {err})") from None
    sizes = {len(value) for value in vars(part).values() if value is not None}
    if len(sizes) != 1:
        raise ValueError(f"{path}: not an Allsky part (arrays of {sorted(sizes)} tiles)")
    count_read(path, os.path.getsize(path))
    return part


# -- IPAC tables -----------------------------------------------------------------------------


def write_ipac_table(path: PathLike, table: Table) -> None:
    """Write an IPAC table atomically, floats with 10 significant digits."""
    for name in table.colnames:
        if table[name].dtype.kind == "f":
            table[name].info.format = ".10g"
    write_atomic(path, lambda tmp: table.write(str(tmp), format="ascii.ipac"))


def read_ipac_table(path: PathLike, columns: Sequence[str] = ()) -> Table:
    """Read an IPAC table; ``ValueError`` naming the file if one of ``columns`` is missing."""
    table = Table.read(str(path), format="ascii.ipac")
    missing = set(columns) - set(table.colnames)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return table


PLATE_LIST_COLUMNS = ("id", "plate", "i", "j", "unit")


def write_plate_list(path: PathLike, table: Table) -> None:
    """``platelist.tbl`` (see :func:`hipsluigi.geometry.platelist.plate_list`)."""
    write_ipac_table(path, table)


def read_plate_list(path: PathLike) -> Table:
    return read_ipac_table(path, PLATE_LIST_COLUMNS)


def read_fitcombo(path: PathLike) -> list[DifferenceFit]:
    """The records of ``fitcombo.tbl``, as written from :class:`DifferenceFit` rows."""
    table = read_ipac_table(path)
    names = DifferenceFit.__dataclass_fields__
    return [DifferenceFit(**{k: row[k].item() for k in table.colnames if k in names})
            for row in table]


def read_corrections(path: PathLike) -> dict[int, tuple[float, float, float]]:
    """``corrections.tbl``: ``{plate id: (a, b, c)}``, the plane subtracted from each plate."""
    table = read_ipac_table(path, ("id", "a", "b", "c"))
    return {int(r["id"]): (float(r["a"]), float(r["b"]), float(r["c"])) for r in table}


# -- survey ----------------------------------------------------------------------------------

REJECT_COLUMNS = ("path", "hdu", "reason")


def _escaped(table: Table) -> Table:
    """A copy of ``table`` whose text columns hold :func:`escape_text` forms."""
    out = Table(table, copy=True)
    for name in out.colnames:
        if out[name].dtype.kind in "US":
            out[name] = np.array([escape_text(str(v)) for v in out[name]], dtype=str)
    return out


def _unescaped(table: Table) -> Table:
    """``table`` with its text columns unescaped, and IPAC's blank strings as ``''``."""
    for name in table.colnames:
        column = table[name]
        if column.dtype.kind in "US":
            values = column.filled("") if hasattr(column, "filled") else column
            table[name] = np.array([unescape_text(str(v)) for v in values], dtype=str)
    return table


def write_survey_index(path: PathLike, index: Table, listing: str | None = None) -> None:
    """``survey/index.tbl``: the survey's inputs, one row per image, usable or not.

    Text columns (paths, reasons, units) are stored through :func:`escape_text`, so any file
    name or message round-trips. ``listing`` is the fingerprint of the folder that was indexed
    (``fits`` surveys: :func:`hipsluigi.surveys.fits_folder.listing_fingerprint`), recorded as
    the table keyword ``listing`` (:func:`read_survey_listing`).
    """
    table = _escaped(index)
    table.meta = {}
    if listing is not None:
        table.meta["keywords"] = {"listing": {"value": listing}}
    write_ipac_table(path, table)


def read_survey_index(path: PathLike) -> Table:
    """The survey index :func:`write_survey_index` wrote, its text unescaped."""
    return _unescaped(read_ipac_table(path, ("path", "status")))


def read_survey_listing(path: PathLike) -> str | None:
    """The folder fingerprint recorded in a survey index (None if it records none)."""
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            if not line.startswith("\\"):
                break
            key, _, value = line[1:].partition("=")
            if key.strip() == "listing":
                return value.strip().strip("'\"")
    return None


def write_rejects(path: PathLike, index: Table) -> None:
    """``survey/rejects.tbl``: the rows of a survey index whose ``status`` is not ``ok``,
    as ``path, hdu, reason`` (``hdu`` -1 where no HDU is meant), text escaped as in
    :func:`write_survey_index`."""
    bad = index[np.asarray(index["status"]) != "ok"]
    hdu = (np.asarray(bad["hdu"], dtype=np.int64) if "hdu" in bad.colnames
           else np.full(len(bad), -1, dtype=np.int64))
    table = Table({"path": np.asarray(bad["path"], dtype=str) if len(bad) else np.array([], str),
                   "hdu": hdu,
                   "reason": np.asarray(bad["reason"], dtype=str) if len(bad)
                   else np.array([], str)})
    write_ipac_table(path, _escaped(table))


def read_rejects(path: PathLike) -> Table:
    """``survey/rejects.tbl``, its text unescaped."""
    return _unescaped(read_ipac_table(path, REJECT_COLUMNS))


def write_survey_units(path: PathLike, units: Mapping[str, object]) -> None:
    """``survey/units.json``: the survey's pixel unit and photometric keys (FITS keywords)."""
    write_text_atomic(path, json.dumps(dict(units), sort_keys=True))


def read_survey_units(path: PathLike) -> dict[str, object]:
    """The survey's units (empty when its images state none)."""
    return json.loads(Path(path).read_text())
