"""Cutting FITS tiles out of a plate.

Plates live on the CDS-oriented HPX plane (see ``hipsluigi.geometry.hpx`` and ``docs/design.md``,
"HPX geometry"), so a tile is a plain ``w x w`` slice of the plate, already in the standard
orientation: ``data[row][col]`` holds sub-pixel ``ix = w-1-row, iy = col`` of the tile. No
transpose (Montage's FITS tiles are transposed) and no all-NaN tile is written (Montage writes
them). Files are written through a function the caller gives (``write_file``), which makes them
appear atomically.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy.io import fits

from hipsluigi.geometry.hpx import tile_header, tile_wcs_reference
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.tiles.checksum import encode_checksum, fold, ones_complement_sum


def plate_tiles(plate: np.ndarray, grid: PlateGrid, i: int, j: int,
                npix: Collection[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The tiles of an unpadded plate that hold a finite pixel.

    Parameters
    ----------
    plate : numpy.ndarray
        The unpadded plate ``[row, col]``.
    grid : PlateGrid
        The plate grid of the plate's order.
    i, j : int
        The plate.
    npix : collection of int, optional
        The tiles already found to hold a finite pixel (the FITS tiles cut from this plate):
        exactly these are yielded, without testing the pixels again.

    Yields
    ------
    tuple
        ``(npix, tile)``: the NESTED tile index and a ``(w, w)`` view of the plate (in its
        dtype and byte order), ``tile[row][col]`` holding sub-pixel ``ix = w-1-row, iy = col``
        of tile ``npix`` (the HiPS FITS convention).

    Raises
    ------
    ValueError
        If ``plate`` is not the grid's unpadded plate shape.
    """
    if plate.shape != grid.shape(padded=False):
        raise ValueError(f"plate {i},{j} has shape {plate.shape}, expected "
                         f"{grid.shape(padded=False)}")
    w = grid.tile_width
    wanted = None if npix is None else {int(n) for n in npix}
    for n, r0, c0 in zip(*grid.tiles(i, j), strict=True):
        tile = plate[r0:r0 + w, c0:c0 + w]
        if (np.isfinite(tile).any() if wanted is None else int(n) in wanted):
            yield int(n), tile


#: Keywords a tile's own header sets, or that would change how its data or its WCS are read:
#: extra cards may not set them.
RESERVED_KEYS = frozenset({
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BSCALE", "BZERO", "BLANK",
    "WCSAXES", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "RADESYS", "EQUINOX", "CRVAL1", "CRVAL2",
    "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1",
    "PC1_2", "PC2_1", "PC2_2", "PV2_1", "PV2_2", "LONPOLE", "LATPOLE", "ORDER", "NPIX",
    "DATAMIN", "DATAMAX",
})


def check_cards(cards: Sequence[tuple]) -> list[tuple]:
    """Validate extra tile cards.

    Parameters
    ----------
    cards : sequence of tuple
        ``(keyword, value)`` or ``(keyword, value, comment)``; values are strings, numbers or
        booleans (a ``BUNIT`` such as ``"DN"``, a ``MAGZP`` such as ``20.5``).

    Returns
    -------
    list of tuple
        The cards as given.

    Raises
    ------
    ValueError
        For a card of the wrong length, a keyword astropy refuses, a keyword the tile header
        sets itself (:data:`RESERVED_KEYS`), a repeated keyword or a non-finite number.
    """
    seen = set()
    for card in cards:
        if not isinstance(card, tuple) or len(card) not in (2, 3):
            raise ValueError(f"tile card {card!r}: expected (keyword, value[, comment])")
        key = str(card[0]).upper()
        if key in RESERVED_KEYS:
            raise ValueError(f"tile card {card!r}: {key} is set by the tile header itself")
        if key in seen and key not in ("COMMENT", "HISTORY"):
            raise ValueError(f"tile card {card!r}: {key} repeated")
        try:
            fits.Card(*card).verify("exception")
        except (ValueError, TypeError, fits.VerifyError) as err:
            raise ValueError(f"tile card {card!r}: {err}") from None
        seen.add(key)
    return list(cards)


def tile_hdu(tile: np.ndarray, order: int, npix: int, frame: str,
             cards: Sequence[tuple] = ()) -> fits.PrimaryHDU:
    """A FITS tile as astropy makes it (the reference for :class:`TileWriter`).

    Parameters
    ----------
    tile : numpy.ndarray
        ``(w, w)`` tile ``[row, col]``.
    order : int
        HiPS order.
    npix : int
        NESTED tile index.
    frame : str
        The map's celestial frame.
    cards : sequence of tuple, optional
        Extra cards (see :func:`check_cards`), written after NPIX in the order given; none by
        default.

    Returns
    -------
    astropy.io.fits.PrimaryHDU
        BITPIX -32, NaN blanks, the tile's HPX WCS, ORDER and NPIX, the extra cards,
        DATAMIN/DATAMAX when the tile has a finite pixel, and last CHECKSUM and DATASUM (as
        Hipsgen's tiles carry DATASUM; with fixed comments, so that a tile's bytes depend on
        its data only).
    """
    header = tile_header(order, npix, tile.shape[0], frame)
    for card in check_cards(cards):
        header.append(fits.Card(*card))
    finite = tile[np.isfinite(tile)]
    if finite.size:
        header["DATAMIN"] = float(finite.min())
        header["DATAMAX"] = float(finite.max())
    hdu = fits.PrimaryHDU(np.ascontiguousarray(tile, dtype=np.float32), header=header)
    hdu.add_datasum(when=DATASUM_COMMENT)
    hdu.add_checksum(when=CHECKSUM_COMMENT, override_datasum=True)
    return hdu


DATASUM_COMMENT = "data unit checksum"
CHECKSUM_COMMENT = "HDU checksum"


class TileWriter:
    """FITS tile bytes for one order, fast: the header is formatted once by astropy and only
    the cards that differ between tiles (CRVAL1, CRPIX1/2, NPIX, DATAMIN/DATAMAX) are replaced.

    DATASUM and CHECKSUM are computed here for each tile (:mod:`hipsluigi.tiles.checksum`).
    ``tile_bytes(npix, tile)`` is equivalent to ``tile_hdu(tile, order, npix, frame, cards)``
    written out (a test holds them equal), at a fraction of the cost per tile. Not
    thread-safe: one writer a thread.

    Parameters
    ----------
    order : int
        HiPS order of the tiles.
    tile_width : int
        Tile width, pixels.
    frame : str
        The map's celestial frame.
    cards : sequence of tuple, optional
        Extra cards in every tile (see :func:`check_cards`), e.g.
        ``[("BUNIT", "DN", "pixel unit")]``; none by default.
    """

    _VARYING = ("CRVAL1", "CRPIX1", "CRPIX2", "NPIX", "DATAMIN", "DATAMAX")

    def __init__(self, order: int, tile_width: int, frame: str, cards: Sequence[tuple] = ()):
        self.order, self.width = order, tile_width
        template = tile_hdu(np.zeros((tile_width, tile_width), np.float32), order, 0, frame,
                            cards)
        template.header["DATAMIN"] = 0.0
        template.header["DATAMAX"] = 0.0
        text = template.header.tostring()  # padded to a multiple of 2880
        self.header = bytearray(text.encode("ascii"))
        images = [text[k:k + 80] for k in range(0, len(text), 80)]
        self.slots = {}
        for key in self._VARYING:
            slot = next(k for k, image in enumerate(images) if image[:8].rstrip() == key)
            self.slots[key] = (slot * 80, template.header.comments[key])
        self.sum_slots = {key: next(k for k, image in enumerate(images)
                                    if image[:8].rstrip() == key) * 80
                          for key in ("DATASUM", "CHECKSUM")}
        nbytes = tile_width * tile_width * 4
        self.padding = b"\0" * (-nbytes % 2880)
        # One big-endian buffer reused for every tile: a fresh 1 MB array costs more in page
        # faults than the copy and the byte swap together.
        self.buffer = np.empty((tile_width, tile_width), dtype=">f4")

    def _parts(self, npix: int, tile: np.ndarray) -> tuple[bytes, np.ndarray]:
        crval1, crpix1, crpix2 = tile_wcs_reference(self.order, npix, self.width)
        values = {"CRVAL1": crval1, "CRPIX1": crpix1, "CRPIX2": crpix2, "NPIX": int(npix),
                  "DATAMIN": float(np.fmin.reduce(tile, axis=None)),  # NaN-ignoring, no copy
                  "DATAMAX": float(np.fmax.reduce(tile, axis=None))}
        header = bytearray(self.header)
        for key, (offset, comment) in self.slots.items():
            header[offset:offset + 80] = _card(key, values[key], comment)
        np.copyto(self.buffer, tile)
        datasum = ones_complement_sum(self.buffer)  # the zero padding adds nothing
        at = self.sum_slots["DATASUM"]
        header[at:at + 80] = _string_card("DATASUM", str(datasum), DATASUM_COMMENT)
        at = self.sum_slots["CHECKSUM"]
        header[at:at + 80] = _string_card("CHECKSUM", "0" * 16, CHECKSUM_COMMENT)
        total = fold(ones_complement_sum(header) + datasum)
        header[at:at + 80] = _string_card("CHECKSUM", encode_checksum(total), CHECKSUM_COMMENT)
        return bytes(header), self.buffer

    def tile_bytes(self, npix: int, tile: np.ndarray) -> bytes:
        """The FITS file of tile ``npix`` (``tile``: ``(w, w)`` ``[row, col]``), as bytes."""
        header, data = self._parts(npix, tile)
        return header + data.tobytes() + self.padding

    @property
    def file_size(self) -> int:
        """Bytes in every tile file of this writer: header, data and padding to 2880."""
        return len(self.header) + self.width * self.width * 4 + len(self.padding)

    def write(self, path, npix: int, tile: np.ndarray) -> int:
        """Write the FITS file of tile ``npix`` to ``path``, in one system call unless the
        disk takes fewer bytes, and return its size in bytes (:attr:`file_size`).

        Not atomic by itself: give it a temporary path (see :func:`write_plate_tiles`).

        Raises
        ------
        OSError
            Naming ``path`` and how much was written, when the disk refuses the rest (ENOSPC
            after a short write on a full disk).
        """
        header, data = self._parts(npix, tile)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, [header, memoryview(data).cast("B"), self.padding], path)
        finally:
            os.close(fd)
        return self.file_size


def write_all(fd: int, buffers: Sequence, name: object = "") -> int:
    """Write every byte of ``buffers`` to file descriptor ``fd`` with ``os.writev``.

    A short count (the disk took only part: a full disk, a signal) is followed by another call
    for the rest, which then succeeds or raises the real error.

    Parameters
    ----------
    fd : int
        An open file descriptor.
    buffers : sequence of bytes-like
        Written in order, as one stream.
    name : object, optional
        The file, for error messages.

    Returns
    -------
    int
        The bytes written, the total of ``buffers``.

    Raises
    ------
    OSError
        The system's error (``ENOSPC`` ...), with ``name`` and how many bytes were written.
    """
    pending = [view for view in (memoryview(b).cast("B") for b in buffers) if len(view)]
    total = sum(len(view) for view in pending)
    done = 0
    while pending:
        try:
            n = os.writev(fd, pending)
        except OSError as err:
            raise OSError(err.errno, f"{name}: {err.strerror} after {done} of {total} bytes"
                          ) from err
        if n <= 0:  # a regular file never does this; never loop on it
            raise OSError(errno.EIO, f"{name}: write took no byte after {done} of {total}")
        done += n
        while n:
            if n >= len(pending[0]):
                n -= len(pending.pop(0))
            else:
                pending[0] = pending[0][n:]
                n = 0
    return total


def tile_file_size(order: int, tile_width: int, frame: str, cards: Sequence[tuple] = ()
                   ) -> int:
    """Bytes in every FITS tile file of ``order`` (see :class:`TileWriter`), for checking
    tiles on disk."""
    return _tile_file_size(order, tile_width, frame, tuple(tuple(card) for card in cards))


@functools.lru_cache(maxsize=256)
def _tile_file_size(order: int, tile_width: int, frame: str, cards: tuple) -> int:
    # a header formatted by astropy each time: cached, as a map's check asks once a group
    return TileWriter(order, tile_width, frame, cards).file_size


def _string_card(key: str, value: str, comment: str) -> bytes:
    """An 80-byte FITS card for a short string value, as astropy's ``Card`` formats it."""
    quoted = "'" + value.ljust(8) + "'"
    card = f"{key:<8}= {quoted:<20}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80).encode("ascii")


def _card(key: str, value, comment: str) -> bytes:
    """An 80-byte FITS card for a finite number, as astropy's ``Card`` formats it."""
    if isinstance(value, float):
        text = repr(value).upper()
        if "." not in text and "E" not in text:
            text += ".0"
    else:
        text = str(int(value))
    if len(text) > 20:  # astropy knows how to shorten it
        return fits.Card(key, value, comment).image.encode("ascii")
    card = f"{key:<8}= {text:>20}" + (f" / {comment}" if comment else "")
    return card[:80].ljust(80).encode("ascii")


def write_plate_tiles(plate: np.ndarray, grid: PlateGrid, i: int, j: int, frame: str,
                      path_of: Callable[[int], object], *,
                      write_file: Callable[[object, Callable[[object], int]], None],
                      threads: int = 2, cards: Sequence[tuple] = ()) -> list[int]:
    """Write every FITS tile of an unpadded plate that holds a finite pixel.

    Parameters
    ----------
    plate : numpy.ndarray
        The unpadded plate ``[row, col]``.
    grid : PlateGrid
        The plate grid of the plate's order.
    i, j : int
        The plate.
    frame : str
        The map's celestial frame.
    path_of : callable
        ``path_of(npix)`` is the file of tile ``npix``.
    write_file : callable
        ``write_file(path, write)`` must call ``write(tmp)`` on a temporary file, check that
        the file holds the number of bytes ``write`` returns, and move it to ``path``
        (``hipsluigi.storage.atomic.write_atomic``).
    threads : int, optional
        Files are written from this many threads (the copies and the writes release the GIL),
        each with its own :class:`TileWriter`.
    cards : sequence of tuple, optional
        Extra cards in every tile's header (see :func:`check_cards`); none by default.

    Returns
    -------
    list of int
        The tiles written (NESTED indices), in the plate's tile order.

    Raises
    ------
    OSError
        Naming every tile whose write failed (see :func:`_tile_writes_failed`); after the
        first failure no other tile is started.
    """
    cards = check_cards(cards)  # a bad card fails here, before any tile is written
    local = threading.local()

    def write(item):
        npix, tile = item
        if not hasattr(local, "writer"):
            local.writer = TileWriter(grid.order, grid.tile_width, frame, cards)
        writer = local.writer
        write_file(path_of(npix), lambda tmp: writer.write(tmp, npix, tile))
        return npix

    items = plate_tiles(plate, grid, i, j)
    if threads <= 1:
        return [write(item) for item in items]
    failed = threading.Event()

    def write_unless_failed(item):
        # checked by each thread before it starts a tile: cancelling the queued futures
        # would not stop the thread that has just failed from taking the next tile
        if failed.is_set():
            return None
        try:
            return write(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(write_unless_failed, item) for item in items]
    errors = [future.exception() for future in futures if future.exception() is not None]
    if errors:
        raise _tile_writes_failed(errors)
    return [future.result() for future in futures]


def _tile_writes_failed(errors: list[BaseException]) -> BaseException:
    """One exception for the tiles whose writes failed at the same time.

    Tiles are written concurrently, so when the disk fills, the tile it filled in (part
    written) and the ones started beside it (nothing written) all fail, in no set order: each
    is named, with its error, so the tile the disk filled in is never hidden behind another.
    A single error, or one that is not an ``OSError`` (a bug, not the disk), is raised as it is.
    """
    if len(errors) == 1 or not all(isinstance(err, OSError) for err in errors):
        return next((err for err in errors if not isinstance(err, OSError)), errors[0])
    first = errors[0]
    combined = OSError(first.errno, f"{len(errors)} tile writes failed: " + "; ".join(
        err.strerror or str(err) for err in errors))
    combined.__cause__ = first
    return combined


#: Header values of every tile :class:`TileWriter` writes, which :func:`read_fits_tile` reads
#: without astropy's HDU machinery; a file with others is read by ``astropy.io.fits.getdata``.
_PLAIN_TILE = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 2}


def read_fits_tile(path: str | os.PathLike, tile_width: int) -> np.ndarray:
    """The pixels ``[row, col]`` (big-endian float32, NaN blank) of the FITS tile at ``path``.

    A tile as :class:`TileWriter` writes it (BITPIX -32, ``tile_width`` square, no scaling) has
    its header parsed by ``astropy.io.fits.Header`` and its data read straight after it, about
    three times faster than ``fits.getdata``; any other file is read by ``fits.getdata``.

    Raises
    ------
    EOFError
        If the file ends before the tile's data.
    OSError, ValueError
        What ``astropy.io.fits`` raises for a file that is not FITS.
    """
    with open(path, "rb") as f:
        header = fits.Header.fromfile(f)
        plain = (all(header.get(key) == value for key, value in _PLAIN_TILE.items())
                 and header.get("NAXIS1") == header.get("NAXIS2") == tile_width
                 and header.get("BSCALE", 1) == 1 and header.get("BZERO", 0) == 0)
        if plain:
            data = np.fromfile(f, dtype=">f4", count=tile_width * tile_width)
            if data.size < tile_width * tile_width:
                raise EOFError(f"truncated: the file holds {data.size} of the tile's "
                               f"{tile_width * tile_width} pixels")
            return data.reshape(tile_width, tile_width)
    return fits.getdata(path)
