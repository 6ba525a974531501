"""Coercion and checks shared by every section.

Each section's ``__post_init__`` calls ``normalise(self)`` first: every field is coerced to its
annotated type (``"2e-5"`` -> 2e-05, ``"1,3,9"`` -> (1, 3, 9), a mapping -> a section), so a
YAML file, a ``--set`` override and a direct ``TrainConfig(lr="2e-5")`` go through the same
path. The ``check_*`` helpers then raise ``ConfigError`` naming the field (``train.lr``), the
value found and the values allowed. ``from_mapping`` builds a section from a mapping after
checking its keys (unknown ones get a close match; moved ones their new name).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import yaml

from dgqa_ray.user_input import URI_SCHEMES, carries_credentials, credentials_message

from .choices import BACKBONES, NUM_KADID_TYPES


class ConfigError(ValueError):
    """A config value (or key) that cannot be used; the message names the field."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"null", "none", "~", ""}


def _where(obj: Any, name: str) -> str:
    section = type(obj)._section
    return f"{section}.{name}" if section else name


def fail(obj: Any, name: str, value: Any, expected: str) -> typing.NoReturn:
    raise ConfigError(f"{_where(obj, name)}: invalid value {value!r}; expected {expected}")


def normalise(obj: Any) -> None:
    """Coerce every field of a frozen dataclass to its annotated type, in place."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        coerced = _coerce(value, hints[f.name], _where(obj, f.name))
        if coerced is not value:
            object.__setattr__(obj, f.name, coerced)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "true/false",
        }.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in _NULL):
            return None
        assert len(non_null) == 1, annotation
        return _coerce(value, non_null[0], where)
    if origin is tuple:
        return _coerce_tuple(value, args, where)
    if origin is dict:
        return _coerce_mapping(value, where)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, Mapping):
            return from_mapping(annotation, value, where)
        if value is None:
            return annotation()
        raise ConfigError(
            f"{where}: expected a mapping of {annotation._section} keys, got {value!r}"
        )
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this function was not taught
        raise TypeError(f"{where}: unsupported field type {annotation!r}")
    hint = " (quote it in YAML)" if annotation is str else ""
    raise ConfigError(
        f"{where}: expected {_type_name(annotation)}, got {value!r} ({type(value).__name__}){hint}"
    )


def _coerce_mapping(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: couldn't parse mapping {text!r}: {e}") from e
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"{where}: expected a mapping of option names to values (e.g. {{score_column: mos}}),"
            f" got {value!r}"
        )
    return dict(value)


def _coerce_tuple(value: Any, args: tuple, where: str) -> tuple:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConfigError(f"{where}: couldn't parse list {text!r}: {e}") from e
        else:
            value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)!r}")
        item_types = list(args)
    return tuple(
        _coerce(v, t, f"{where}[{i}]")
        for i, (v, t) in enumerate(zip(value, item_types, strict=True))
    )


def _refuse_moved_keys(names: Iterable[str], cls: type, where: str) -> None:
    """ConfigError naming every key of ``names`` that ``cls`` lists as moved, and its new name
    (``data.embedded_tile: moved to demo.tile``)."""
    moved: Mapping[str, str] = getattr(cls, "_moved", {})
    old = [name for name in names if name in moved]
    if old:
        raise ConfigError(
            "; ".join(f"{where}.{name}: moved to {moved[name]}" for name in old)
            + " (the embedded demo's settings have a section of their own, demo)"
        )


def known_key(name: str, cls: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    if name in known:
        return
    _refuse_moved_keys([name], cls, where)
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown key {name!r}{suggestion}; known keys: {', '.join(known)}")


def from_mapping(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    context = cls._section or where
    _refuse_moved_keys([str(key) for key in values], cls, context)
    for key in values:
        known_key(str(key), cls, context)
    return cls(**{str(k): v for k, v in values.items()})


def check_choice(obj: Any, name: str, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    value = getattr(obj, name)
    if value not in allowed:
        raise ConfigError(
            f"{_where(obj, name)}: invalid value {value!r}; allowed: "
            + ", ".join(str(a) for a in allowed)
        )


def check_range(
    obj: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    hint: str = "",
) -> None:
    value = getattr(obj, name)
    ok = True
    if low is not None:
        ok &= value >= low if low_inclusive else value > low
    if high is not None:
        ok &= value <= high if high_inclusive else value < high
    if ok:
        return
    lo = "" if low is None else f"{'>=' if low_inclusive else '>'} {low}"
    hi = "" if high is None else f"{'<=' if high_inclusive else '<'} {high}"
    expected = " and ".join(p for p in (lo, hi) if p)
    raise ConfigError(
        f"{_where(obj, name)}: invalid value {value!r}; expected {expected}"
        + (f" ({hint})" if hint else "")
    )


@lru_cache(maxsize=1)
def _torchvision_classifiers() -> frozenset[str]:
    import torchvision.models  # lazy: only a backbone outside the ResNets needs the list

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def check_backbone(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if value in BACKBONES:
        return
    known = _torchvision_classifiers()
    if value not in known:
        close = difflib.get_close_matches(str(value), sorted(known), n=3)
        raise ConfigError(
            f"{_where(obj, name)}: invalid value {value!r}; expected a torchvision "
            "classification model name (torchvision.models.list_models(module=torchvision.models))"
            + (f"; did you mean {', '.join(close)}?" if close else "")
        )


def check_adapter_options(obj: Any, role: str) -> None:
    """``<role>_options`` must be options the role's adapter takes (the embedded default's
    pools set their own)."""
    name = f"{role}_options"
    options = getattr(obj, name)
    if not options:
        return
    dataset = getattr(obj, f"{role}_dataset")
    if dataset == "embedded":
        raise ConfigError(
            f"{_where(obj, name)}: the embedded default sets its adapters' options itself; "
            f"expected no options, got {sorted(options)}"
        )
    from dgqa_ray.data.adapters import adapter_options  # lazy: pandas and pyarrow

    allowed = adapter_options(dataset)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise ConfigError(
            f"{_where(obj, name)}: {dataset} takes no option {', '.join(unknown)}; "
            f"options it takes: {listed}"
        )


def check_type_ids(obj: Any, name: str) -> None:
    ids = getattr(obj, name)
    bad = [i for i in ids if not 1 <= i <= NUM_KADID_TYPES]
    if bad or len(set(ids)) != len(ids):
        fail(obj, name, list(ids), f"distinct KADID ids in 1..{NUM_KADID_TYPES}")


def check_uri(obj: Any, name: str, allow_none: bool) -> None:
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if value is None or not str(value).strip():
        fail(obj, name, value, "a local path or an s3:// URI")
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in URI_SCHEMES:
            fail(obj, name, value, "a local path, file:// or s3:// URI")
    check_no_credentials(obj, name)


def check_no_credentials(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if carries_credentials(value):
        # Never echo the value: it holds a secret.
        raise ConfigError(credentials_message(_where(obj, name)))


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
