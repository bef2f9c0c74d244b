"""Typed configuration: dataclasses, YAML presets and `--set key=value` overrides.

Any dataclass can be a config. `load_config(Cls, yaml_path, ["optim.lr=0.1", ...])` reads the YAML
(a file, or a bundled preset by name) with `safe_load`, applies the overrides (values parsed as
YAML scalars or lists, nested keys with dots), and builds the dataclass with type checking: an
unknown key or a wrong type raises `ConfigError` whose one-line message names the key and where it
came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from orl.presets import bundled_preset

T = TypeVar("T")


class ConfigError(ValueError):
    """Invalid configuration; the message is one line naming the key or the file."""


def _check(value: Any, tp: Any, key: str, origin: str) -> Any:
    """Return `value` converted to `tp`, or raise ConfigError naming `key`."""
    o = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if o is typing.Union or o is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, key, origin)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{origin}: '{key}' may not be null")
    if o is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{origin}: '{key}' must be one of {choices}, got {value!r}")
        return value
    if o in (list, tuple) or tp in (list, tuple):
        elem = args[0] if args else Any
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # a single data path may stand for a list of one
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{origin}: '{key}' must be a list, got {value!r}")
        items = [_check(v, elem, f"{key}[{i}]", origin) for i, v in enumerate(value)]
        return tuple(items) if (o is tuple or tp is tuple) else items
    if o is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{origin}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{origin}: '{key}' must be a mapping of settings, got {value!r}")
        return _build(tp, value, origin, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{origin}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{origin}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{origin}: '{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{origin}: '{key}' has an unsupported type {tp!r}")


def _build(cls: type[T], data: Mapping[str, Any], origin: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{origin}: unknown key '{prefix}{unknown[0]}'")
    kwargs = {name: _check(data[name], hints[name], prefix + name, origin) for name in data}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{origin}: missing required key '{prefix}{missing[0]}'")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], parsed value); the value is read as a YAML scalar or list."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    """The `--set KEY=VALUE` option of every command that takes settings (`args.overrides`)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting, e.g. {example} (repeatable; values are YAML)",
    )


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `key=value` applied (nested keys with dots)."""
    return set_nested(data, [parse_override(item) for item in overrides])


def set_nested(data: Mapping[str, Any], items: Sequence[tuple[list[str], Any]]) -> dict[str, Any]:
    """Return a copy of `data` with each (key path, value) set, creating sections as needed."""
    out: dict[str, Any] = _deep_copy(data)
    for keys, value in items:
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(keys)}: '{k}' is not a section")
            node = child
        node[keys[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def config_path(path: Path) -> Path:
    """`path` if it is a file, else the bundled preset it names (`orl.presets`)."""
    if path.is_file():
        return path
    bundled = bundled_preset(path)
    if bundled is None:
        raise ConfigError(
            f"{path}: config file not found (`orl presets` lists the bundled presets)"
        )
    return bundled


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping (a file or a bundled preset) read with `safe_load`; errors name the file."""
    path = config_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def load_config(
    cls: type[T],
    path: Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Build `cls` from a YAML file (or `base`), then `--set` overrides, with type checks."""
    data = dict(base or {})
    origin = "config"
    if path is not None:
        data.update(read_yaml(path))
        origin = str(path)
    if overrides:
        data = apply_overrides(data, overrides)
        origin = f"{origin} (with --set)"
    return _build(cls, data, origin)


def override(cfg: T, overrides: Sequence[str]) -> T:
    """`cfg` with `--set key=value` overrides applied, checked like a preset's keys."""
    return load_config(type(cfg), None, overrides, base=to_dict(cfg))


def config_from_dict(cls: type[T], data: Mapping[str, Any], origin: str = "config") -> T:
    """Rebuild a config from its `to_dict` form (e.g. the one stored in a checkpoint)."""
    return _build(cls, data, origin)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-serialisable dict of a config dataclass (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    out = conv(cfg)
    assert isinstance(out, dict)
    return out


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def settings_key(*parts: Any, length: int = 64) -> str:
    """SHA-256 (hex, first `length` digits) of the JSON of everything an output depends on:
    names `orl run` stages and stage-2 shard folders, so a changed setting recomputes them."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
