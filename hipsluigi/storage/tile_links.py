"""One HiPS tree from tiles spread over the storage units, by links (no byte moved twice).

A plate's tiles are written on the plate's own storage unit (``uU/NAME/tiles/Norder{k}/
Dir{d}/``, or the HiPS folder itself on unit 0); the published HiPS is the base unit's
``u0/NAME/HiPS``, which a web server, Aladin, Hipsgen and hipsluigi read as one tree:

* a ``Dir`` folder whose tiles all come from one unit ``U > 0`` is a link,
  ``HiPS/Norder{k}/Dir{d} -> <unit U>/NAME/tiles/Norder{k}/Dir{d}``;
* a ``Dir`` shared by plates of several units is a real folder on the base unit: unit 0's
  tiles are in it, each other unit's tile is a link to its file.

Links are relative, so that a work tree moved or mounted elsewhere as a whole keeps them; a
copy for publishing follows them (``cp -rL``, ``rsync -L``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class LinkConflict(FileExistsError):
    """A ``Dir`` of the published tree links to another folder than the plan says (the plate
    list's units were changed after tiles were written)."""


def link_dir(public: Path, target: Path) -> bool:
    """Make folder ``public`` a relative link to folder ``target`` unless it exists.

    Returns
    -------
    bool
        True if ``public`` now is (or already was) a link to ``target``; False if it is a
        real folder, whose tiles must then be linked one by one (:func:`link_file`).

    Raises
    ------
    LinkConflict
        If ``public`` is a link to another folder.
    """
    target.mkdir(parents=True, exist_ok=True)
    public.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(target, public.parent)
    try:
        os.symlink(relative, public, target_is_directory=True)
        return True
    except FileExistsError:
        pass
    if public.is_symlink():
        if os.path.realpath(public) == os.path.realpath(target):
            return True
        raise LinkConflict(f"{public}: links to {os.readlink(public)}, but its tiles are now "
                           f"written to {target} (were the plate list's units changed? "
                           "remove the link and rerun)")
    return False


def real_dir(public: Path) -> None:
    """Make ``public`` a real folder (a ``Dir`` shared by units).

    Raises
    ------
    LinkConflict
        If ``public`` is a link (the plan said one unit held all its tiles).
    """
    if public.is_symlink():
        raise LinkConflict(f"{public}: a link to {os.readlink(public)}, but tiles of several "
                           "storage units go in it (were the plate list's units changed? "
                           "remove the link and rerun)")
    public.mkdir(parents=True, exist_ok=True)


def link_file(public: Path, target: Path) -> None:
    """Make ``public`` a relative link to file ``target``, atomically, replacing any file or
    link there (a reader sees the old entry or the new one, never none)."""
    relative = os.path.relpath(target, public.parent)
    try:
        if os.readlink(public) == relative:
            return
    except OSError:
        pass  # none, or a file: replaced
    tmp = public.with_name(f".{public.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.lnk")
    os.symlink(relative, tmp)
    try:
        os.replace(tmp, public)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["LinkConflict", "link_dir", "link_file", "real_dir"]
