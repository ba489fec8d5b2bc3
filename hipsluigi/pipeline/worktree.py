"""A map's work tree and its fingerprint: a work tree belongs to one set of pixel settings.

A second run with the same ``[hips] name`` and storage but, say, another order would otherwise
find old plates at the same paths and take them as done. ``hips.json`` records the settings
that change pixels; a run whose settings differ stops with an error naming the file and the
keys, before any task runs.
"""

from __future__ import annotations

import json
from functools import lru_cache

from hipsluigi.spec import MapSpec
from hipsluigi.storage.atomic import write_text_atomic
from hipsluigi.storage.layout import StorageLayout

_checked: set[MapSpec] = set()


class WorkTreeMismatch(RuntimeError):
    """The work tree was built with other pixel settings."""


@lru_cache(maxsize=64)
def layout_of(spec: MapSpec) -> StorageLayout:
    """Where map ``spec``'s files live."""
    return StorageLayout(spec.storage, spec.name)


def fingerprint_text(spec: MapSpec) -> str:
    return json.dumps(spec.fingerprint(), indent=1, sort_keys=True, default=str)


def check_work_tree(spec: MapSpec) -> None:
    """Raise :class:`WorkTreeMismatch` if ``hips.json`` exists and records other settings."""
    if spec in _checked:
        return
    path = layout_of(spec).fingerprint
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    wanted = json.loads(fingerprint_text(spec))
    if recorded != wanted:
        diff = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
        details = ", ".join(f"{k}: {recorded.get(k)!r} -> {wanted.get(k)!r}" for k in diff)
        raise WorkTreeMismatch(
            f"{path}: the work tree of map {spec.name!r} was built with other settings "
            f"({details}). Use another [hips] name or storage, or delete "
            f"{layout_of(spec).base}."
        )
    _checked.add(spec)


def prepare_work_tree(spec: MapSpec) -> None:
    """Create the work tree on every storage unit and record the fingerprint."""
    check_work_tree(spec)
    layout_of(spec).setup()
    write_text_atomic(layout_of(spec).fingerprint, fingerprint_text(spec))
