"""Lower orders: each parent pixel is the NaN-ignoring mean of its 2 x 2 children.

In the HPX plane an aligned 2 x 2 block of pixels is exactly the four NESTED children of one
parent pixel, so shrinking a plate by 2 is the HiPS rule "parent = mean of the 4 children"
(``docs/design.md``, "Plates and orders"). Unlike Montage's mShrink, every output row is written
(mShrink leaves the last row at zero). :func:`block_nanmean` is the one block-mean kernel: the
pyramid uses it with blocks of 2 in float32, the ``Allsky`` previews
(:mod:`hipsluigi.metadata.allsky`) with larger blocks in float64.

Arrays are indexed ``[row, col]``; row 0 is the first FITS row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike


def block_nanmean(data: np.ndarray, factor: int, dtype: DTypeLike = np.float32) -> np.ndarray:
    """NaN-ignoring mean of the aligned ``factor x factor`` blocks of a 2-D array, or of each
    2-D array of a stack.

    Parameters
    ----------
    data : numpy.ndarray
        ``[..., row, col]``: a 2-D array, or a stack of them along the leading axes (each
        reduced as if alone, to the same bits), whose sides are multiples of ``factor``. A stack
        shares every pass's call overhead, which dominates for small arrays such as 64 x 64
        blocks of tiles. Floats of the width of
        ``dtype`` are used as they are, in either byte order (a memory-mapped big-endian FITS
        image is read block part by block part, never swapped whole); anything else is
        converted to ``dtype`` first.
    factor : int
        Side of the blocks, in pixels (>= 1). Block ``(r, c)`` covers rows
        ``r*factor .. (r+1)*factor - 1`` and columns ``c*factor .. (c+1)*factor - 1``.
    dtype : data-type, optional
        Float type of the sums, of the count and of the result.

    Returns
    -------
    numpy.ndarray
        ``(..., rows / factor, cols / factor)`` array of ``dtype``, native byte order: the mean of
        each block's finite values, NaN (the NaN of ``0 / 0``) where the block has none.

    Raises
    ------
    ValueError
        If ``factor < 1`` or a side of ``data`` is not a multiple of ``factor``.

    Notes
    -----
    The sums run in ``dtype`` over the strided views ``data[..., r::factor, c::factor]``, added one
    after the other with ``r`` then ``c`` increasing (row-major order within a block), and each
    sum is divided once by its count. That order is part of the contract: it fixes every bit of
    the result.
    """
    rows, cols = data.shape[-2:]
    if factor < 1 or rows % factor or cols % factor:
        raise ValueError(f"cannot take {factor} x {factor} block means of an array of shape "
                         f"{data.shape}: odd shape or factor")
    dtype = np.dtype(dtype)
    if data.ndim > 2:
        return _stack_block_nanmean(data, factor, dtype)
    total, count = _block_sums(data, factor, dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count  # 0/0 is NaN: a blank block


def _block_sums(data: np.ndarray, factor: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The sums of the finite values of a 2-D array's blocks and their counts, in ``dtype``,
    in :func:`block_nanmean`'s order."""
    rows, cols = data.shape
    if data.dtype.kind != "f" or data.dtype.itemsize != dtype.itemsize:
        data = np.asarray(data, dtype=dtype)
    total = np.zeros((rows // factor, cols // factor), dtype=dtype)
    count = np.zeros_like(total)
    zero = dtype.type(0.0)
    for r in range(factor):
        for c in range(factor):
            part = data[r::factor, c::factor]
            finite = np.isfinite(part)
            total += np.where(finite, part, zero)
            count += finite
    return total, count


def _stack_block_nanmean(data: np.ndarray, factor: int, dtype: np.dtype) -> np.ndarray:
    """:func:`block_nanmean` of a stack of small arrays (tiles), to the same bits: the stack
    is first copied in ``dtype`` into block-major order ``[r, c, ..., row, col]``, so that
    each of the ``factor**2`` additions runs over one contiguous array for the whole stack.
    The copy holds the stack once more, which a stack of tiles can afford and a plate
    should not."""
    *lead, rows, cols = data.shape
    nr, nc = rows // factor, cols // factor
    blocks = np.empty((factor, factor, *lead, nr, nc), dtype=dtype)
    view = data.reshape(*lead, nr, factor, nc, factor)
    k = len(lead)
    # axes of the view: lead..., block row, r, block col, c -> r, c, lead..., row, col
    blocks[...] = view.transpose(k + 1, k + 3, *range(k), k, k + 2)
    finite = np.isfinite(blocks)
    np.copyto(blocks, dtype.type(0.0), where=~finite)
    total = np.zeros(blocks.shape[2:], dtype=dtype)
    for r in range(factor):
        for c in range(factor):
            total += blocks[r, c]
    count = finite.sum(axis=(0, 1), dtype=dtype)  # whole numbers: exact in any order
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def shrink2(plate: np.ndarray) -> np.ndarray:
    """The plate one order lower: the NaN-ignoring mean of its aligned 2 x 2 blocks.

    Parameters
    ----------
    plate : numpy.ndarray
        Unpadded plate ``[row, col]`` with even sides; float32 of either byte order is read as
        it is (see :func:`block_nanmean`).

    Returns
    -------
    numpy.ndarray
        float32 ``(rows / 2, cols / 2)``; NaN only where all four children are NaN. Sums are
        taken in float32 (a sum of four values loses nothing that matters).

    Raises
    ------
    ValueError
        If a side of ``plate`` is odd.
    """
    return block_nanmean(plate, 2, np.float32)


class HalfPlate(NamedTuple):
    """A plate shrunk by 2 (:func:`shrink2`), with what its blocks' blank pixels were.

    Attributes
    ----------
    data : numpy.ndarray
        float32 ``(rows / 2, cols / 2)``: the NaN-ignoring 2 x 2 means.
    partial : numpy.ndarray
        int64: the flat indices (row-major, into ``data``) of the blocks with 1 to 3 finite
        pixels.
    members : numpy.ndarray
        uint8, one per ``partial`` block: which of its pixels are finite, bit ``2 r + c`` for
        the pixel at row ``r``, column ``c`` of the block.
    """

    data: np.ndarray
    partial: np.ndarray
    members: np.ndarray


def shrink2_with_members(plate: np.ndarray) -> HalfPlate:
    """:func:`shrink2` of ``plate``, and the finite pixels of its partly blank blocks: what a
    correction field subtracted later needs to be averaged over the same pixels
    (:func:`hipsluigi.background.seams.block_mean_correction`).

    Parameters
    ----------
    plate : numpy.ndarray
        Plate ``[row, col]`` with even sides (float32 of either byte order).

    Returns
    -------
    HalfPlate
    """
    rows, cols = plate.shape
    if rows % 2 or cols % 2:
        raise ValueError(f"cannot shrink a plate of shape {plate.shape} by 2: odd shape")
    total, count = _block_sums(plate, 2, np.dtype(np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        data = total / count  # shrink2's bits
    partial = np.flatnonzero((count > 0) & (count < 4))
    r, c = np.divmod(partial, cols // 2)
    members = np.zeros(partial.size, dtype=np.uint8)
    for dr in range(2):
        for dc in range(2):
            finite = np.isfinite(plate[2 * r + dr, 2 * c + dc]).astype(np.uint8)
            members |= finite << np.uint8(2 * dr + dc)
    return HalfPlate(data, partial.astype(np.int64), members)


def assemble_quad(children: Mapping[tuple[int, int], np.ndarray | None], side: int) -> np.ndarray:
    """Place four child plates into one ``2*side`` square plate.

    Parameters
    ----------
    children : mapping
        ``{(a, b): plate}`` with ``a, b`` in ``{0, 1}``: child ``(a, b)`` is plate
        ``(2i + a, 2j + b)`` of the upper order; ``a`` steps along columns, ``b`` along rows.
        Missing children (None or absent, e.g. outside a region) stay NaN.
    side : int
        Side of each child plate, in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(2*side, 2*side)``; child ``(a, b)`` fills rows ``b*side ..`` and columns
        ``a*side ..``.

    Raises
    ------
    ValueError
        If a child is not ``(side, side)``.
    """
    out = np.full((2 * side, 2 * side), np.nan, dtype=np.float32)
    for (a, b), child in children.items():
        if child is None:
            continue
        if child.shape != (side, side):
            raise ValueError(f"child plate {(a, b)} has shape {child.shape}, expected "
                             f"{(side, side)}")
        out[b * side:(b + 1) * side, a * side:(a + 1) * side] = child
    return out


def crop_padding(plate: np.ndarray, pad: int) -> np.ndarray:
    """The unpadded interior of a padded plate.

    Parameters
    ----------
    plate : numpy.ndarray
        Padded plate ``[row, col]``.
    pad : int
        Padding on each side, in pixels.

    Returns
    -------
    numpy.ndarray
        A view ``plate[pad:-pad, pad:-pad]`` (``plate`` itself when ``pad`` is 0).
    """
    if pad == 0:
        return plate
    return plate[pad:-pad, pad:-pad]


def crop_read_bytes(shape: tuple[int, int], pad: int, itemsize: int, page: int = 4096) -> int:
    """Bytes of the memory pages that :func:`crop_padding`'s view of a memory-mapped padded
    plate touches: what reading the unpadded interior pulls from the disk (read-ahead aside).

    Parameters
    ----------
    shape : (int, int)
        The padded plate's ``(rows, cols)``, stored row-major from a page boundary.
    pad : int
        Padding on each side, in pixels.
    itemsize : int
        Bytes per pixel.
    page : int, optional
        The page size, in bytes.
    """
    nrows, ncols = shape
    rows = np.arange(pad, nrows - pad, dtype=np.int64)
    if rows.size == 0 or ncols <= 2 * pad:
        return 0
    first = (rows * ncols + pad) * itemsize // page
    last = ((rows + 1) * ncols - pad) * itemsize - 1
    last //= page
    # rows in file order: a page shared with the row before counts once
    seen = np.concatenate(([-1], np.maximum.accumulate(last[:-1])))
    return int(np.maximum(last - np.maximum(first, seen + 1) + 1, 0).sum()) * page
