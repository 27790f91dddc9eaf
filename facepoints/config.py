"""Dataclass configs from YAML, with ``base:`` inheritance and ``key.sub=value`` overrides from the command line.

A config may name a ``base:`` config (relative to itself) and keep only what
differs: sections merge key by key, every other value (lists, plain mappings)
replaces the base's. Fields marked ``path_field()`` are input files: they may
start with ``${data_root}`` (see ``data_root``) and otherwise resolve relative
to the config file that wrote them, so a config works from any folder.
Overrides given on the command line resolve relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from facepoints.errors import UserError

T = TypeVar("T")
DATA_ROOT_ENV = "FACEPOINTS_DATA"
DATA_ROOT_VAR = "${data_root}"
BASE_KEY = "base"


class ConfigError(UserError):
    pass


def project_root() -> Path:
    """The folder that holds the ``facepoints`` package: the checkout, when run from one."""
    return Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Where the annotated datasets live: ``$FACEPOINTS_DATA``, else ``../shared/data`` beside the project checkout."""
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return project_root().parent / "shared" / "data"


def path_field(default: Any = "", *, maybe_name: bool = False) -> Any:
    """A dataclass field holding an input path; ``maybe_name``: a built-in name unless it looks like a file."""
    kind = "name-or-file" if maybe_name else "file"
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"path": kind})
    if callable(default):
        return dataclasses.field(default_factory=default, metadata={"path": kind})
    return dataclasses.field(default=default, metadata={"path": kind})


def resolve_path(value: str, base_dir: Path | None, maybe_name: bool = False) -> str:
    """``${data_root}/x`` -> data root / x; a relative path -> ``base_dir`` / path; absolute paths and '' as they
    are."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(DATA_ROOT_VAR):
        return os.path.normpath(data_root() / value[len(DATA_ROOT_VAR):].lstrip("/\\"))
    if maybe_name and Path(value).suffix.lower() not in (".yaml", ".yml"):
        return value
    p = Path(value).expanduser()
    if p.is_absolute() or base_dir is None:
        return str(p)
    return os.path.normpath(base_dir / p)


def display_path(path: str) -> str:
    """A path for records people read (model cards): under the data root it is written ``${data_root}/...``."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(data_root()))
    except ValueError:
        return path
    return f"{DATA_ROOT_VAR}/{rel.as_posix()}"


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build a (nested) dataclass, refusing unknown keys so typos do not pass silently."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: cannot read {value!r} as {tp}")
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, where) for v in value] if args else list(value)
    if origin is tuple:
        return tuple(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is Any:
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        if tp in (int, str) and not isinstance(value, (bool, dict, list)):
            try:
                return tp(value)
            except ValueError:
                raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings; values are parsed as YAML (so 3e-4, true, [1, 2] work), and ``a.b=`` is the
    empty string (``-o teacher=`` turns distillation off), not YAML's null."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _resolve_paths(cls: Any, data: Any, base_dir: Path | None) -> Any:
    """``data`` (raw YAML for dataclass ``cls``) with every ``path_field`` resolved against ``base_dir``."""
    if not (dataclasses.is_dataclass(cls) and isinstance(data, dict)):
        return data
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        kind = f.metadata.get("path")
        if kind:
            out[f.name] = resolve_path(out[f.name], base_dir, maybe_name=kind == "name-or-file")
            continue
        tp = hints[f.name]
        inner = typing.get_args(tp)[0] if typing.get_origin(tp) is list and typing.get_args(tp) else tp
        if typing.get_origin(tp) is list and isinstance(out[f.name], list):
            out[f.name] = [_resolve_paths(inner, v, base_dir) for v in out[f.name]]
        else:
            out[f.name] = _resolve_paths(tp, out[f.name], base_dir)
    return out


def _merge(cls: Any, base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: dataclass sections merge key by key, other values replace."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    out = dict(base)
    for key, value in over.items():
        tp = hints.get(key)
        if (tp is not None and dataclasses.is_dataclass(tp) and isinstance(value, dict)
                and isinstance(out.get(key), dict)):
            out[key] = _merge(tp, out[key], value)
        else:
            out[key] = value
    return out


def read_config(cls: type[T], path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML at ``path`` merged onto its ``base:`` chain, with input paths resolved against each file's folder."""
    p = Path(path).resolve()
    if p in _seen:
        raise ConfigError(f"{path}: 'base:' configs form a loop ({' -> '.join(str(s) for s in (*_seen, p))})")
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    data = _resolve_paths(cls, data, p.parent)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base:' must name one config file, not {base!r}")
    return _merge(cls, read_config(cls, p.parent / base, (*_seen, p)), data)


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """The config at ``path`` (with its ``base:`` chain) and the command line's ``key.sub=value`` overrides."""
    data = read_config(cls, path) if path is not None else {}
    # the file's paths are absolute by now, so this resolves only the overrides' paths, against the working directory
    return from_dict(cls, _resolve_paths(cls, apply_overrides(data, overrides or []), Path.cwd()))


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def save_config(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False), encoding="utf-8")
