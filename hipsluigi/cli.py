"""The ``hipsluigi`` command: tools around built maps (building is ``luigi --module hipsluigi``).

``hipsluigi serve [MAP] [--port N] [luigi flags]`` serves a map's HiPS folder on 127.0.0.1.
MAP is a map name (``[hips.NAME]`` of ``luigi.cfg``; default ``[hips] name``) or a path to a
HiPS folder; luigi flags such as ``--hips-name`` or ``--hips-storage`` are read as
``luigi --module hipsluigi AllSkyPNGs`` reads them, so the same flags find the same folder.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

#: Options of ``serve`` itself; every other ``--flag`` goes to Luigi's parser.
_SERVE_OPTIONS = {"--port", "-h", "--help"}


class CommandError(Exception):
    """A user error, reported on one line and exit status 2."""


def split_luigi_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``serve``'s arguments into its own and Luigi's flags.

    A Luigi flag ``--name value`` takes the next argument as its value unless written
    ``--name=value`` or followed by another flag (so the value of ``--hips-name x`` is never
    taken for MAP).

    Returns
    -------
    tuple of list of str
        ``(own, luigi)``.
    """
    own: list[str] = []
    luigi: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("-") and arg.split("=", 1)[0] not in _SERVE_OPTIONS and arg != "-":
            luigi.append(arg)
            if "=" not in arg and args and not args[0].startswith("-"):
                luigi.append(args.pop(0))
        else:
            own.append(arg)
            if arg == "--port" and args:
                own.append(args.pop(0))
    return own, luigi


def hips_dir_of(map_or_path: str | None, luigi_flags: list[str]) -> Path:
    """The HiPS folder that ``map_or_path`` (a folder, or a map name) and the flags name.

    Raises
    ------
    CommandError
        For flags Luigi does not take, bad settings, or a map with no HiPS built yet.
    """
    from hipsluigi.viewer.serve import NotAHiPS, check_hips_dir

    if map_or_path and Path(map_or_path).is_dir():
        folder = Path(map_or_path)
        try:
            return check_hips_dir(folder)
        except NotAHiPS:
            if (folder / "HiPS" / "properties").is_file():  # a map folder of a storage unit
                return folder / "HiPS"
            raise
    if map_or_path and ("/" in map_or_path or map_or_path.startswith(".")):
        raise CommandError(f"{map_or_path}: no such folder")
    name, folder = _map_folder(map_or_path, luigi_flags)
    try:
        return check_hips_dir(folder)
    except NotAHiPS as err:
        raise CommandError(f"map {name!r} has no HiPS at {folder} ({err}); build it first: "
                           f"luigi --module hipsluigi AllSkyPNGs --map {name}") from err


def _map_folder(name: str | None, luigi_flags: list[str]) -> tuple[str, Path]:
    # Luigi and the pipeline only here: the viewer itself works on folders.
    from luigi.cmdline_parser import CmdlineParser

    import hipsluigi.pipeline.tasks  # noqa: F401  (registers AllSkyPNGs and its flags)
    from hipsluigi.pipeline.settings import map_spec
    from hipsluigi.pipeline.worktree import layout_of

    argv = ["AllSkyPNGs", *(["--map", name] if name else []), *luigi_flags]
    try:
        with CmdlineParser.global_instance(argv) as parser:
            spec = map_spec(parser.get_task_obj().map)
            return spec.name, layout_of(spec).hips_dir
    except SystemExit as err:  # argparse has printed why (an unknown flag)
        raise CommandError(f"bad flags for the map: {' '.join(luigi_flags)}") from err
    except (ValueError, KeyError) as err:
        raise CommandError(str(err)) from err


def _serve(args: argparse.Namespace, luigi_flags: list[str]) -> None:
    from hipsluigi.viewer.serve import NotAHiPS, serve

    try:
        folder = hips_dir_of(args.map, luigi_flags)
    except NotAHiPS as err:
        raise CommandError(str(err)) from err
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port}: not a TCP port (0 to 65535; 0: a free one)")
    try:
        serve(folder, args.port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise CommandError(f"port {args.port} on 127.0.0.1 is already in use; "
                               "choose another with --port (0: any free port)") from err
        raise CommandError(f"cannot serve on 127.0.0.1:{args.port}: {err}") from err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hipsluigi", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="serve a map's HiPS folder on 127.0.0.1",
        description="Serve a map's HiPS folder on 127.0.0.1 and print its URL. Other "
                    "--flags are Luigi's (e.g. --hips-name NAME, --hips-storage DIRS).")
    serve.add_argument("map", nargs="?", metavar="MAP",
                       help="map name or HiPS folder (default: [hips] name of luigi.cfg)")
    serve.add_argument("--port", type=int, default=8000,
                       help="TCP port (default 8000; 0: any free port, printed)")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``hipsluigi COMMAND ...``; return the exit status (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command, rest = argv[:1], argv[1:]
    own, luigi_flags = (split_luigi_flags(rest) if command == ["serve"] else (rest, []))
    args = _parser().parse_args(command + own)
    try:
        args.run(args, luigi_flags)
    except CommandError as err:
        print(f"hipsluigi {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
