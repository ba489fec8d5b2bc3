"""The work tree: where every output lives, per storage unit (DESIGN section 4).

For map NAME on units ``u0, u1, ...`` (``u0`` is the base)::

    u0/NAME/platelist.tbl, hips.json (the map's fingerprint)
    u0/NAME/mosaics/subset1/                 plates of bin 0 (a real folder)
    u0/NAME/mosaics/subsetK -> uK-1/NAME/mosaics   (links, as mHiPSSetup makes)
    uB/NAME/mosaics/plate_II_JJ.fits         padded plate mosaics of bin B > 0
    u0/NAME/mosaics/images.tbl, fitcombo.tbl, corrections.tbl   (global background model)
    uB/NAME/diffs/fit_II_JJ_KK_LL.json       overlap fits, on the plus plate's bin B
    uB/NAME/plates/order{k}/plate_II_JJ.fits plates at each order, on the plate's bin B
    uB/NAME/manifests/order{k}/plate_II_JJ.{fits,png}.json   tiles written by a tile group
    u0/NAME/HiPS/...                         the HiPS itself (properties, Norder*/...)
    u0/NAME/stretch/                         histogram, stretch, metadata markers
    u0/NAME/scripts/jobs/*.sh, scripts/logs/ SLURM job scripts and logs
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hipsluigi.geometry.hpx import tile_relpath
from hipsluigi.geometry.platelist import plate_name


@dataclass(frozen=True)
class StorageLayout:
    """Paths of a map's work tree. ``units`` are absolute paths; ``name`` is the map name."""

    units: tuple[str, ...]
    name: str

    def unit(self, b: int) -> Path:
        """``<unit b>/NAME``."""
        if not 0 <= b < len(self.units):
            raise ValueError(f"storage bin {b} outside 0..{len(self.units) - 1}")
        return Path(self.units[b]) / self.name

    @property
    def base(self) -> Path:
        return self.unit(0)

    @property
    def nunits(self) -> int:
        return len(self.units)

    @property
    def fingerprint(self) -> Path:
        return self.base / "hips.json"

    @property
    def platelist(self) -> Path:
        return self.base / "platelist.tbl"

    def mosaics_dir(self, b: int) -> Path:
        """Physical folder of bin ``b``'s plate mosaics."""
        return self.base / "mosaics" / "subset1" if b == 0 else self.unit(b) / "mosaics"

    def subset_link(self, b: int) -> Path:
        """``u0/NAME/mosaics/subset{b+1}``: bin ``b``'s mosaics seen from the base."""
        return self.base / "mosaics" / f"subset{b + 1}"

    def mosaic(self, i: int, j: int, b: int) -> Path:
        return self.mosaics_dir(b) / f"{plate_name(i, j)}.fits"

    @property
    def survey_index(self) -> Path:
        """The input images of a ``fits`` survey, usable or not (IPAC table)."""
        return self.base / "survey" / "index.tbl"

    @property
    def images_table(self) -> Path:
        """``images.tbl`` of the plate mosaics (Montage's mImgtbl columns)."""
        return self.base / "mosaics" / "images.tbl"

    @property
    def fits_table(self) -> Path:
        """``fitcombo.tbl``: every overlap fit."""
        return self.base / "mosaics" / "fitcombo.tbl"

    @property
    def corrections_table(self) -> Path:
        return self.base / "mosaics" / "corrections.tbl"

    @property
    def seams(self) -> Path:
        """Edge corrections of every plate (see ``hipsluigi.background.seams``)."""
        return self.base / "mosaics" / "seams.npz"

    def overlap_fit(self, plus: tuple[int, int], minus: tuple[int, int], b: int) -> Path:
        """The fit of ``plus - minus``, on the plus plate's unit."""
        return (self.unit(b) / "diffs"
                / f"fit_{plus[0]:02d}_{plus[1]:02d}_{minus[0]:02d}_{minus[1]:02d}.json")

    def plate(self, order: int, i: int, j: int, b: int) -> Path:
        return self.unit(b) / "plates" / f"order{order}" / f"{plate_name(i, j)}.fits"

    def plate_histogram(self, order: int, i: int, j: int, b: int) -> Path:
        return self.unit(b) / "plates" / f"order{order}" / f"{plate_name(i, j)}.hist.npz"

    def manifest(self, order: int, i: int, j: int, b: int, ext: str) -> Path:
        return self.unit(b) / "manifests" / f"order{order}" / f"{plate_name(i, j)}.{ext}.json"

    @property
    def hips_dir(self) -> Path:
        return self.base / "HiPS"

    def tile(self, order: int, npix: int, ext: str) -> Path:
        return self.hips_dir / tile_relpath(order, npix, ext)

    def stretch(self, sid: str) -> Path:
        """The stretch (JSON) of stretch settings ``sid``; the merged histogram sits beside it."""
        return self.base / "stretch" / f"stretch-{sid}.json"

    def metadata_marker(self, key: str) -> Path:
        """Marker that ``properties``, Allsky, MOC and index.html were written for ``key``."""
        return self.base / "stretch" / f"metadata-{key}.done"

    @property
    def scripts(self) -> Path:
        return self.base / "scripts"

    def setup(self) -> None:
        """Create the work tree on every unit and the ``subsetK`` links (idempotent)."""
        for b in range(self.nunits):
            for sub in ("plates", "manifests", "diffs"):
                (self.unit(b) / sub).mkdir(parents=True, exist_ok=True)
            self.mosaics_dir(b).mkdir(parents=True, exist_ok=True)
        for b in range(1, self.nunits):
            link = self.subset_link(b)
            target = self.mosaics_dir(b)
            if link.is_symlink() and Path(os.readlink(link)) != target:
                link.unlink()
            if not link.is_symlink():
                if link.exists():
                    raise FileExistsError(f"{link}: exists and is not a link to {target}")
                link.symlink_to(target, target_is_directory=True)
        for sub in (self.hips_dir, self.base / "stretch", self.scripts / "jobs",
                    self.scripts / "logs"):
            sub.mkdir(parents=True, exist_ok=True)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write(tmp)`` and a rename, so a reader never sees half a file.

    The temporary name starts with a dot and does not end in the final extension, so a crash
    leaves nothing that looks like a tile or a plate.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_fits_atomic(path: Path, hdu) -> None:
    """Write an HDU or HDUList atomically."""
    write_atomic(path, lambda tmp: hdu.writeto(tmp, output_verify="exception"))


def link_or_copy_atomic(source: Path, path: Path) -> None:
    """Make ``path`` a hard link to ``source`` (a copy where links are impossible), atomically.

    Outputs are replaced by rename, never rewritten in place, so the link keeps ``source``'s
    content even if ``source`` is rebuilt later, exactly as a copy would.
    """
    def link(tmp: Path) -> None:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)

    write_atomic(path, link)


def check_fits_image(path: Path, shape: tuple[int, int]) -> None:
    """Raise ``OSError`` naming ``path`` unless it is a whole FITS image of array ``shape``
    (header and data present; the pixels are not read)."""
    from astropy.io import fits
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


def read_fits_image(path: Path, memmap: bool = False):
    """``(data, header)`` of a FITS image's primary HDU: read fully, or with ``memmap`` a
    read-only big-endian view of the file (pages read as touched, no copy, no byte swap)."""
    from astropy.io import fits

    with fits.open(path, memmap=memmap, mode="readonly") as hdul:
        return hdul[0].data, hdul[0].header
