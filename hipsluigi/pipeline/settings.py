"""Reading a map's settings from the Luigi configuration: the only module that does.

A map's settings are, from weakest to strongest: the schema's defaults (``hipsluigi.spec``),
``[hips]``, the map's own ``[hips.NAME]``, then command-line flags (``--hips-order 2``); the
same for ``[synthetic]`` and ``[synthetic.NAME]``. The ``hips`` and ``synthetic``
:class:`luigi.Config` classes below are generated from the schema, so that Luigi knows the
flags and ``luigi --help-all`` lists them.

A value is read as Luigi reads it (``%%`` is ``%``, ``%(key)s`` and ``${VAR}`` interpolate),
except that a value whose interpolation fails is taken as written: ``stretch_max = 99.5%``,
the documented syntax, is 99.5%, not ConfigParser's ``'%' must be followed by '%'``.

Before any task runs, the ``luigi`` command checks the maps its task names
(:func:`install_command_line_checks`): a bad name or setting stops it with one line on stderr
and exit status 1.
"""

from __future__ import annotations

import configparser
import functools
import math
import os
import shutil
import sys
import typing
from pathlib import Path

import luigi
from luigi.cmdline_parser import CmdlineParser

from hipsluigi.spec import (
    MapSpec,
    SettingsError,
    SyntheticSpec,
    check_map_name,
    fits_tile_bytes,
    schema_fields,
)
from hipsluigi.storage.layout import StorageLayout


def _parameter(field, kind) -> luigi.Parameter:
    doc = field.metadata.get("doc", "")
    choices = field.metadata.get("choices")
    args = typing.get_args(kind)
    if choices:
        return luigi.ChoiceParameter(choices=choices, default=field.default, description=doc)
    if kind is bool:
        # explicit: --hips-keep-intermediate false, as in the configuration file
        return luigi.BoolParameter(default=field.default, description=doc,
                                   parsing=luigi.BoolParameter.EXPLICIT_PARSING)
    if kind is int:
        return luigi.IntParameter(default=field.default, description=doc)
    if kind is float:
        return luigi.FloatParameter(default=field.default, description=doc)
    if int in args and type(None) in args:
        return luigi.OptionalIntParameter(default=field.default, description=doc)
    if float in args and type(None) in args:
        return luigi.OptionalFloatParameter(default=field.default, description=doc)
    if typing.get_origin(kind) is tuple:
        return luigi.Parameter(default=",".join(field.default), description=doc)
    return luigi.Parameter(default=field.default, description=doc)


def _config_class(section: str, schema: type) -> type:
    attrs = {f.name: _parameter(f, kind) for f, kind in schema_fields(schema)}
    attrs["__doc__"] = f"``[{section}]``: {schema.__doc__.splitlines()[0]}"
    attrs["__module__"] = __name__
    return type(luigi.Config)(section, (luigi.Config,), attrs)


hips = _config_class("hips", MapSpec)
synthetic = _config_class("synthetic", SyntheticSpec)


def default_map_name() -> str:
    """``--hips-name`` if given, else ``[hips] name``, else the schema's default."""
    cli = _cli_overrides("hips")
    if "name" in cli:
        return str(cli["name"])
    cfg = luigi.configuration.get_config()
    return _config_text(cfg, "hips", "name") if cfg.has_option("hips", "name") else MapSpec.name


def map_spec(name: str | None = None) -> MapSpec:
    """The settings of map ``name``: schema defaults, ``[hips]``, ``[hips.NAME]``, then flags.

    Parameters
    ----------
    name : str, optional
        The map; by default :func:`default_map_name`.

    Returns
    -------
    MapSpec
        With ``storage`` resolved to absolute paths against the working directory.

    Raises
    ------
    SettingsError
        Naming the section (or flag) and key of a value that does not parse or is not allowed,
        or the unknown keys of a section.

    Notes
    -----
    Cached on the configuration's raw values, the command-line overrides and the working
    directory: tasks ask for their map's spec many thousands of times while a large graph is
    built.
    """
    name = name or default_map_name()
    key = _settings_key(name)
    spec = _cache.get(key)
    if spec is None:
        spec = _build(name)
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = spec
    return spec


_cache: dict = {}


def _sections(name: str) -> tuple[str, ...]:
    return ("hips", f"hips.{name}", "synthetic", f"synthetic.{name}")


def _settings_key(name: str) -> tuple:
    cfg = luigi.configuration.get_config()
    files = tuple((s, tuple(cfg.items(s, raw=True))) for s in _sections(name)
                  if cfg.has_section(s))
    cli = tuple(sorted((s, tuple(sorted((k, str(v)) for k, v in _cli_overrides(s).items())))
                       for s in ("hips", "synthetic")))
    return name, files, cli, os.getcwd()


#: The current command line's parsed flags and, by section, its overrides: read once, since
#: every task asks for its map's spec (:func:`_settings_key`) and the namespace has hundreds
#: of flags.
_cli_memo: dict = {}


def _cli_overrides(section: str) -> dict[str, object]:
    """``{key: value}`` of the ``--SECTION-KEY`` flags given on the command line (as typed);
    not to be modified."""
    parser = CmdlineParser.get_instance()
    if parser is None:
        return {}
    args = parser.known_args
    if _cli_memo.get("args") is not args:
        _cli_memo.clear()
        _cli_memo["args"] = args
    found = _cli_memo.get(section)
    if found is None:
        prefix = f"{section}_"
        found = _cli_memo[section] = {k[len(prefix):]: v for k, v in vars(args).items()
                                      if k.startswith(prefix) and v is not None}
    return found


def _config_text(cfg, section: str, key: str) -> str:
    """``[section] key`` as Luigi's ``get`` returns it, or as written if its interpolation
    fails (a lone ``%``, as in ``99.5%``; an unknown ``%(name)s``)."""
    try:
        return cfg.get(section, key)
    except configparser.Error:
        return cfg.get(section, key, raw=True)


def _values(config_cls: type, schema: type, sections: tuple[str, str]) -> dict:
    """Parsed values of ``schema``'s keys: file sections overlaid in order, then the CLI."""
    cfg = luigi.configuration.get_config()
    params = dict(config_cls.get_params())
    values = {}
    for f, _ in schema_fields(schema):
        for section in sections:
            if cfg.has_option(section, f.name):
                raw = _config_text(cfg, section, f.name)
                try:
                    values[f.name] = params[f.name].parse(raw)
                except (ValueError, TypeError) as err:
                    raise SettingsError(f"[{section}] {f.name} = {raw!r}: {err}") from None
    for key, raw in _cli_overrides(sections[0]).items():
        if key not in params:
            continue
        try:
            values[key] = params[key].parse(raw) if isinstance(raw, str) else raw
        except (ValueError, TypeError) as err:
            flag = f"--{sections[0]}-{key.replace('_', '-')}"
            raise SettingsError(f"{flag} {raw!r}: {err}") from None
    return values


def _build(name: str) -> MapSpec:
    cfg = luigi.configuration.get_config()
    for section, schema in (("hips", MapSpec), (f"hips.{name}", MapSpec),
                            ("synthetic", SyntheticSpec), (f"synthetic.{name}", SyntheticSpec)):
        if cfg.has_section(section):
            known = {f.name for f, _ in schema_fields(schema)}
            unknown = sorted(set(cfg.options(section)) - known - set(cfg.defaults()))
            if unknown:
                raise SettingsError(f"[{section}]: unknown keys {', '.join(unknown)} (the keys "
                                    f"are {', '.join(sorted(known))})")
    hips_values = _values(hips, MapSpec, ("hips", f"hips.{name}"))
    hips_values["name"] = name
    storage = hips_values.get("storage", ",".join(MapSpec.storage))  # a string, as parsed
    hips_values["storage"] = tuple(os.path.join(os.getcwd(), os.path.expanduser(u.strip()))
                                   for u in storage.split(",") if u.strip())
    synthetic_values = _values(synthetic, SyntheticSpec, ("synthetic", f"synthetic.{name}"))
    return MapSpec(**hips_values, synthetic=SyntheticSpec(**synthetic_values))


# -- checks before the first task --------------------------------------------------------------

#: Deepest-order pixels that one core turns into a map per second, everything included: the
#: README's default map (768 tiles of 512 x 512 pixels, 2.0e8 pixels) takes 90 s on 2 cores.
#: Only for the order of magnitude of :func:`check_resources`' warning.
PIXELS_PER_CORE_SECOND = 1.0e6

#: Estimated pixel work beyond this, on this machine's cores, is warned about.
WARN_SECONDS = 86400.0


def check_resources(spec: MapSpec) -> list[str]:
    """Refuse a map whose tiles cannot fit on its base unit; warn of a run beyond a day.

    Parameters
    ----------
    spec : MapSpec

    Returns
    -------
    list of str
        Warnings, one line each: the estimated pixel work, if it exceeds :data:`WARN_SECONDS`
        on this machine's cores at :data:`PIXELS_PER_CORE_SECOND` per core.

    Raises
    ------
    SettingsError
        If a storage unit is an existing file, or if the deepest order's FITS tiles alone
        (:attr:`MapSpec.deepest_tiles` x :func:`~hipsluigi.spec.fits_tile_bytes`, a lower
        bound of the work tree) exceed the free space of the file system that will hold the
        base unit (``shutil.disk_usage`` of its nearest existing folder).

    Notes
    -----
    Nothing is checked under ``executor = dryrun`` (placeholders, no pixels), nor for a work
    tree that exists already (``hips.json``): a run being resumed passed when it began, and
    the disk now holds part of its output.
    """
    for unit in spec.storage:
        if os.path.exists(unit) and not os.path.isdir(unit):
            raise SettingsError(f"[hips] storage unit {unit!r} is a file, not a folder")
    if spec.executor == "dryrun" or StorageLayout(spec.storage, spec.name).fingerprint.exists():
        return []
    tiles = spec.deepest_tiles
    need = tiles * fits_tile_bytes(spec.tile_width)
    where = _nearest_existing(Path(spec.storage[0]))
    free = shutil.disk_usage(where).free
    what = f"[hips] order = {spec.order}, tile_width = {spec.tile_width}"
    if need > free:
        raise SettingsError(f"{what}: the deepest order's {tiles:,} FITS tiles alone need "
                            f"{_size(need)}, and {where} (storage unit {spec.storage[0]}) has "
                            f"{_size(free)} free; lower order or tile_width, or free space")
    cores = os.cpu_count() or 1
    work = tiles * spec.tile_width**2 / PIXELS_PER_CORE_SECOND
    if work / cores > WARN_SECONDS:
        return [f"{what}: about {work / 3600:,.0f} core-hours of pixel work, "
                f"{work / cores / 86400:,.1f} days on this machine's {cores} cores at the "
                f"default map's speed (a SLURM cluster spreads it over its nodes)"]
    return []


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(nbytes: float) -> str:
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    exp = min(int(math.log(nbytes, 1024)), 6)
    return f"{nbytes / 1024**exp:.1f} {'BKMGTPE'[exp]}iB"


def map_names(text: str, key: str = "--maps") -> list[str]:
    """The map names of a comma-separated list (``AllMaps --maps W1,W2``), each checked,
    duplicates dropped.

    Raises
    ------
    SettingsError
        For a list that names no map, or a name that is not allowed.
    """
    names = [m.strip() for m in str(text).split(",") if m.strip()]
    if not names:
        raise SettingsError(f"{key} = {text!r}: names no map (comma-separated map names)")
    return [check_map_name(name, key) for name in dict.fromkeys(names)]


def check_command_line_task(task: luigi.Task) -> list[str]:
    """Build and check every map the root task of a ``luigi`` command names.

    The maps are the task's ``map`` parameter, or its ``maps`` list (``AllMaps``). Also checks
    that every ``[hips.NAME]`` and ``[synthetic.NAME]`` section has a valid name.

    Parameters
    ----------
    task : luigi.Task
        The command's root task; tasks that are not hipsluigi's are left alone.

    Returns
    -------
    list of str
        Warnings (:func:`check_resources`).

    Raises
    ------
    SettingsError
        For the first name or setting that is not allowed, or a map that does not fit.
    """
    if not any(cls.__module__.startswith("hipsluigi.") for cls in type(task).__mro__):
        return []
    cfg = luigi.configuration.get_config()
    for section in cfg.sections():
        for prefix in ("hips.", "synthetic."):
            if section.startswith(prefix):
                check_map_name(section[len(prefix):], f"[{section}] section name")
    params = task.param_kwargs
    if "map" in params:
        name = params["map"]
        check_map_name(name, "[hips] name" if name == default_map_name() else "--map")
        names = [name]
    elif "maps" in params:
        names = map_names(params["maps"])
    else:
        return []
    warnings = []
    for name in names:
        warnings.extend(check_resources(map_spec(name)))
    return warnings


def _settings_error(err: BaseException) -> SettingsError | None:
    """``err`` or the exception it was raised from, if one is a :class:`SettingsError` (Luigi
    wraps errors of parameter defaults in its own ``ValueError``)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SettingsError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def install_command_line_checks() -> None:
    """Check the maps of the ``luigi`` command's task before any task runs.

    Luigi has no hook between parsing its command line and scheduling, so this wraps
    ``luigi.cmdline_parser.CmdlineParser.get_task_obj``, which makes the root task (once per
    ``luigi`` command; ``python -m hipsluigi.where`` too): after it, the task's maps are built
    and checked (:func:`check_command_line_task`). A :class:`SettingsError` ends the process
    with its one line on stderr and exit status 1 (``SystemExit``, as Luigi's own "No task
    specified", so that no traceback is logged); warnings go to stderr and the run goes on.
    ``luigi.build`` in a program is not affected: there the errors are raised as they are.
    """
    original = CmdlineParser.get_task_obj
    if getattr(original, "_hipsluigi_checks", False):
        return

    @functools.wraps(original)
    def get_task_obj(self):
        try:
            task = original(self)
            warnings = check_command_line_task(task)
        except Exception as err:
            found = _settings_error(err)
            if found is None:
                raise
            raise SystemExit(f"hipsluigi: error: {found}") from None
        for warning in warnings:
            print(f"hipsluigi: warning: {warning}", file=sys.stderr)
        return task

    get_task_obj._hipsluigi_checks = True
    CmdlineParser.get_task_obj = get_task_obj
