"""``python -m hipsluigi.where [luigi flags]``: print the HiPS folder of the map the flags name.

Takes the same flags as ``luigi --module hipsluigi AllSkyPNGs`` (e.g. ``--map W2`` or
``--hips-name W1``).
"""

from __future__ import annotations

import sys

from luigi.cmdline_parser import CmdlineParser

import hipsluigi.pipeline.tasks  # noqa: F401  (registers AllSkyPNGs and its flags)
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.pipeline.worktree import layout_of


def main(argv: list[str]) -> None:
    with CmdlineParser.global_instance(["AllSkyPNGs", *argv]) as parser:
        print(layout_of(map_spec(parser.get_task_obj().map)).hips_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
