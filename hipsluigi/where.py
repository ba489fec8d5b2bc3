"""``python -m hipsluigi.where [luigi flags]``: print the HiPS folder the configuration names.

Takes the same flags as ``luigi --module hipsluigi AllSkyPNGs`` (e.g. ``--hips-name W1``).
"""

from __future__ import annotations

import sys

from luigi.cmdline_parser import CmdlineParser

import hipsluigi  # noqa: F401  (registers the tasks and the [hips] section)
from hipsluigi.config import current_spec


def main(argv: list[str]) -> None:
    with CmdlineParser.global_instance(["AllSkyPNGs", *argv]):
        print(current_spec().layout.hips_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
