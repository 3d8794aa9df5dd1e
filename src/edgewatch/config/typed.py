"""Strict conversion of parsed TOML into frozen dataclasses.

Each dataclass field declares its documentation and bounds in ``metadata`` (see ``setting``).
Unknown keys, wrong types, values out of bounds or outside the allowed choices raise
ConfigError with a one-line message naming the dotted key and what was expected.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from edgewatch.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; unreadable or invalid files are one-line ConfigErrors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from exc


def setting(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """Declare a configuration field with its documentation and bounds."""
    meta = {"doc": doc, "min": minimum, "max": maximum, "choices": choices}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type[T], doc: str) -> Any:
    """Declare a nested configuration section."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating every key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{_join(path, key)}: unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], _join(path, name), field.metadata)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from exc
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:
            raise ConfigError(f"{path or 'config'}: {exc}") from exc
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(tp: Any, value: Any, path: str, meta: Any) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path, meta)
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: expected one of {_choices(allowed)}, got {value!r}")
        return value
    if origin in (list, tuple):
        return _convert_list(tp, value, path, meta)
    if origin is dict:
        return _convert_dict(tp, value, path, meta)
    return _check_scalar(tp, value, path, meta)


def _convert_union(tp: Any, value: Any, path: str, meta: Any) -> Any:
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, path, meta)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: invalid value {value!r}")


def _convert_list(tp: Any, value: Any, path: str, meta: Any) -> Any:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list, got {_describe(value)}")
    args = get_args(tp)
    item_type = args[0] if args else Any
    items = [_convert(item_type, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]
    return tuple(items) if get_origin(tp) is tuple else items


def _convert_dict(tp: Any, value: Any, path: str, meta: Any) -> Any:
    """A table of string keys (``dict[str, X]``): each value converted as X."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a table, got {_describe(value)}")
    args = get_args(tp)
    item_type = args[1] if len(args) == 2 else Any
    return {str(k): _convert(item_type, v, _join(path, str(k)), meta) for k, v in value.items()}


def _check_scalar(tp: Any, value: Any, path: str, meta: Any) -> Any:
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {_describe(value)}")
    if not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {_describe(value)}")
    choices = meta.get("choices") if meta else None
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: expected one of {_choices(choices)}, got {value!r}")
    lo = meta.get("min") if meta else None
    hi = meta.get("max") if meta else None
    if lo is not None and value < lo:
        raise ConfigError(f"{path}: expected a value >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{path}: expected a value <= {hi}, got {value!r}")
    return value


def _choices(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One documented configuration key, for the reference docs and their tests."""

    key: str
    type: str
    default: Any
    doc: str


def describe(cls: type[Any], prefix: str = "") -> Iterator[FieldDoc]:
    """Every leaf key of a config dataclass with its type, default and documentation."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = _join(prefix, field.name)
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            yield from describe(tp, key)  # type: ignore[arg-type]
            continue
        args = get_args(tp)
        if get_origin(tp) is list and args and dataclasses.is_dataclass(args[0]):
            yield FieldDoc(key, f"list of tables ([[{key}]])", "(see below)",
                           field.metadata.get("doc", ""))
            yield from describe(args[0], f"{key}[]")  # type: ignore[arg-type]
            continue
        default = field.default
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        yield FieldDoc(key, _type_name(tp), default, field.metadata.get("doc", ""))


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(tp) if a is not type(None)]
        optional = " (optional)" if type(None) in get_args(tp) else ""
        return " | ".join(names) + optional
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        args = get_args(tp)
        return f"table of {_type_name(args[1])}" if len(args) == 2 else "table"
    return getattr(tp, "__name__", str(tp))
