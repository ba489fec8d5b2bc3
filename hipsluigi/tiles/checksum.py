"""FITS ``DATASUM`` and ``CHECKSUM`` (the FITS checksum convention, Seaman, Pence & Rots 2012;
FITS standard 4.0, appendix J), for tiles written without astropy.

``DATASUM`` is the 32-bit ones' complement sum of the data unit read as big-endian unsigned
32-bit words, written as a decimal string. ``CHECKSUM`` is 16 characters chosen so that the
ones' complement sum of the whole HDU (header and data) is -0; it is computed with the card
holding ``'0000000000000000'`` and then encoded from the complement of that sum.
"""

from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
#: ASCII punctuation between the digits and the letters, which the encoding avoids.
_EXCLUDED = frozenset(range(0x3A, 0x41)) | frozenset(range(0x5B, 0x61))


def fold(total: int) -> int:
    """Fold the carries of a non-negative integer into 32 bits (ones' complement addition)."""
    while total > _MASK32:
        total = (total & _MASK32) + (total >> 32)
    return total


def ones_complement_sum(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """The 32-bit ones' complement sum of ``data`` read as big-endian unsigned 32-bit words.

    Parameters
    ----------
    data : bytes-like or numpy.ndarray
        A length in bytes that is a multiple of 4 (FITS blocks always are); an array is read
        as the bytes it holds in memory (give ``>f4`` for FITS data).

    Returns
    -------
    int
        0 to 2**32 - 1.
    """
    raw = data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else \
        np.frombuffer(data, dtype=np.uint8)
    if raw.size % 4:
        raise ValueError(f"{raw.size} bytes is not a whole number of 32-bit words")
    # Below 2**32 words of at most 2**32 - 1 each, the uint64 total cannot overflow.
    return fold(int(raw.view(">u4").sum(dtype=np.uint64)))


def encode_checksum(total: int) -> str:
    """The 16-character ``CHECKSUM`` value for an HDU whose sum (with the card zeroed) is
    ``total``: the encoding of its complement, rotated one character right."""
    value = _MASK32 - total
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient, remainder = byte // 4 + 0x30, byte % 4
        group = [quotient + remainder, quotient, quotient, quotient]
        moved = True
        while moved:  # keep each pair's sum, step both off the excluded characters
            moved = False
            for j in (0, 2):
                if group[j] in _EXCLUDED or group[j + 1] in _EXCLUDED:
                    group[j] += 1
                    group[j + 1] -= 1
                    moved = True
        for j in range(4):
            chars[4 * j + i] = group[j]
    return bytes(chars[15:] + chars[:15]).decode("ascii")
