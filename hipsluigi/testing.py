"""Helpers for tests of code that reads the Luigi configuration."""

from __future__ import annotations

import contextlib

import luigi


@contextlib.contextmanager
def luigi_options(options: dict[str, dict[str, object]]):
    """Set Luigi configuration options for the duration of a block, then restore them.

    ``options`` is ``{section: {key: value}}``; values are written as strings.
    """
    cfg = luigi.configuration.get_config()
    saved = []
    for section, values in options.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            old = cfg.get(section, key, raw=True) if cfg.has_option(section, key) else None
            saved.append((section, key, old))
            cfg.set(section, key, str(value))
    try:
        yield cfg
    finally:
        for section, key, old in reversed(saved):
            if old is None:
                cfg.remove_option(section, key)
            else:
                cfg.set(section, key, old)
