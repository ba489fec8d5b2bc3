"""Reading a map's settings from the Luigi configuration: the only module that does.

A map's settings are, from weakest to strongest: the schema's defaults (``hipsluigi.spec``),
``[hips]``, the map's own ``[hips.NAME]``, then command-line flags (``--hips-order 2``); the
same for ``[synthetic]`` and ``[synthetic.NAME]``. The ``hips`` and ``synthetic``
:class:`luigi.Config` classes below are generated from the schema, so that Luigi knows the
flags and ``luigi --help-all`` lists them.
"""

from __future__ import annotations

import os
import typing

import luigi
from luigi.cmdline_parser import CmdlineParser

from hipsluigi.spec import MapSpec, SyntheticSpec, schema_fields


def _parameter(field, kind) -> luigi.Parameter:
    doc = field.metadata.get("doc", "")
    choices = field.metadata.get("choices")
    args = typing.get_args(kind)
    if choices:
        return luigi.ChoiceParameter(choices=choices, default=field.default, description=doc)
    if kind is int:
        return luigi.IntParameter(default=field.default, description=doc)
    if kind is float:
        return luigi.FloatParameter(default=field.default, description=doc)
    if int in args and type(None) in args:
        return luigi.OptionalIntParameter(default=field.default, description=doc)
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
    return luigi.configuration.get_config().get("hips", "name", MapSpec.name)


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
    ValueError
        Naming the section (or flag) and key of a value that does not parse or is not allowed,
        or the unknown keys of a ``[hips.NAME]``/``[synthetic.NAME]`` section.

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


def _cli_overrides(section: str) -> dict[str, object]:
    """``{key: value}`` of the ``--SECTION-KEY`` flags given on the command line (as typed)."""
    parser = CmdlineParser.get_instance()
    if parser is None:
        return {}
    prefix = f"{section}_"
    return {k[len(prefix):]: v for k, v in vars(parser.known_args).items()
            if k.startswith(prefix) and v is not None}


def _values(config_cls: type, schema: type, sections: tuple[str, str]) -> dict:
    """Parsed values of ``schema``'s keys: file sections overlaid in order, then the CLI."""
    cfg = luigi.configuration.get_config()
    params = dict(config_cls.get_params())
    values = {}
    for f, _ in schema_fields(schema):
        for section in sections:
            if cfg.has_option(section, f.name):
                raw = cfg.get(section, f.name)
                try:
                    values[f.name] = params[f.name].parse(raw)
                except (ValueError, TypeError) as err:
                    raise ValueError(f"[{section}] {f.name} = {raw!r}: {err}") from err
    for key, raw in _cli_overrides(sections[0]).items():
        if key not in params:
            continue
        try:
            values[key] = params[key].parse(raw) if isinstance(raw, str) else raw
        except (ValueError, TypeError) as err:
            flag = f"--{sections[0]}-{key.replace('_', '-')}"
            raise ValueError(f"{flag} {raw!r}: {err}") from err
    return values


def _build(name: str) -> MapSpec:
    cfg = luigi.configuration.get_config()
    for section, schema in ((f"hips.{name}", MapSpec), (f"synthetic.{name}", SyntheticSpec)):
        if cfg.has_section(section):
            known = {f.name for f, _ in schema_fields(schema)}
            unknown = sorted(set(cfg.options(section)) - known - set(cfg.defaults()))
            if unknown:
                raise ValueError(f"[{section}]: unknown keys {', '.join(unknown)}")
    hips_values = _values(hips, MapSpec, ("hips", f"hips.{name}"))
    hips_values["name"] = name
    storage = hips_values.get("storage", ",".join(MapSpec.storage))  # a string, as parsed
    hips_values["storage"] = tuple(os.path.join(os.getcwd(), os.path.expanduser(u.strip()))
                                   for u in storage.split(",") if u.strip())
    synthetic_values = _values(synthetic, SyntheticSpec, ("synthetic", f"synthetic.{name}"))
    return MapSpec(**hips_values, synthetic=SyntheticSpec(**synthetic_values))
