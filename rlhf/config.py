"""The one config system: a documented dataclass per concept, one validator, one canonical hash.

Every setting a user can give (each training method, sampling, evaluation, a round, a simulated
annotator) is a field of a `Config` dataclass declared with `option(default, help=..., min=...,
max=...)`, as TRL declares its configs: the help text and the limits live in the field's
metadata, so the site's forms, the API's validation and the docs are all read from the class,
and nothing restates a default or a limit.

    @dataclass
    class SamplingConfig(Config):
        temperature: float = option(0.7, help="Softmax temperature; 0 is greedy.", min=0.0, max=5.0)

`Config.__post_init__` validates: the value's type against the annotation (JSON arrives untyped;
a bool is never a number), the limits in the metadata, then the class's own cross-field rules
(`check()`). Every failure is a `ConfigError` that names the field, so a form can put the message
under it. `to_dict()` is canonical (every field, floats as floats) and `config_hash()` hashes it
with the config's kind, so equal configs hash equal in every process that builds them.

No torch, no Django: the web process imports this.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, Literal, TypeVar

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config value is wrong. `field` names it; the message reads "field: what is wrong".

    `unknown` marks a field the config does not have (a typo, or a setting of another concept).
    """

    def __init__(self, field: str, message: str, *, unknown: bool = False) -> None:
        self.field = field
        self.reason = message
        self.unknown = unknown
        super().__init__(f"{field}: {message}")


def option(
    default: Any = MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A config field with its help text and limits in the metadata (read by forms and validation)."""
    metadata = {"help": help, "min": min, "max": max, "min_exclusive": min_exclusive, "max_exclusive": max_exclusive}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def override(cls: type[Config], name: str, default: Any = MISSING, *, help: str | None = None) -> Any:
    """Another concept's field, with its limits, and optionally another default and help text:
    a round samples like a generation run, but warmer and shorter by default; DPO learns at
    another rate than reward training, within the same limits."""
    original = next(f for f in dataclasses.fields(cls) if f.name == name)
    metadata = dict(original.metadata)
    if help is not None:
        metadata["help"] = help
    value = original.default if default is MISSING else default
    return option(value, **metadata)


def check(condition: bool, field_name: str, message: str) -> None:
    """Raise the ConfigError of a cross-field rule; it names the field so a form can point at it."""
    if not condition:
        raise ConfigError(field_name, message)


@dataclass(frozen=True)
class FieldSpec:
    """What a form or an API schema needs to know about one field."""

    name: str
    annotation: Any
    default: Any
    help: str
    min: float | None
    max: float | None
    min_exclusive: bool
    max_exclusive: bool

    @property
    def optional(self) -> bool:
        return typing.get_origin(self.annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(self.annotation)

    @property
    def value_type(self) -> Any:
        """The annotation without its `| None` (what a form field edits)."""
        if not self.optional:
            return self.annotation
        rest = [arm for arm in typing.get_args(self.annotation) if arm is not type(None)]
        return rest[0] if len(rest) == 1 else self.annotation

    def limits_text(self) -> str:
        """The limits in words, e.g. "between 0 and 5" or "> 0", for help texts and errors."""
        if self.min is not None and self.min == self.max and not (self.min_exclusive or self.max_exclusive):
            return _number(self.min)
        low = None if self.min is None else (">" if self.min_exclusive else ">=") + f" {_number(self.min)}"
        high = None if self.max is None else ("<" if self.max_exclusive else "<=") + f" {_number(self.max)}"
        if low and high and not self.min_exclusive and not self.max_exclusive:
            return f"between {_number(self.min)} and {_number(self.max)}"
        return " and ".join(part for part in (low, high) if part)


@dataclass
class Config:
    """Base of every config dataclass. Subclasses declare fields with `option(...)`."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_field_types(self)
        check_limits(self)
        self.check()

    def check(self) -> None:
        """Cross-field rules of the concept (limits of single fields belong in `option`)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, every field included (defaults too), so the hash pins the config."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def config_hash(self) -> str:
        """sha256 of the kind and the canonical JSON of `to_dict()`; equal configs hash equal."""
        return canonical_hash({"method": self.kind, "config": self.to_dict()})

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None) -> C:
        """Build from JSON values; an unknown field is a ConfigError naming it and the known ones."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(cls.kind or cls.__name__, "must be a JSON object")
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                unknown[0],
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for the "
                f"{cls.kind or cls.__name__} config; known fields: {', '.join(sorted(known))}",
                unknown=True,
            )
        return cls(**data)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default value of every field that has one (what a form starts from)."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not MISSING:
                out[f.name] = f.default
            elif f.default_factory is not MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def field_specs(cls) -> list[FieldSpec]:
        hints = typing.get_type_hints(cls)
        specs = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            meta = f.metadata
            default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
            specs.append(
                FieldSpec(
                    name=f.name,
                    annotation=hints[f.name],
                    default=default,
                    help=meta.get("help", ""),
                    min=meta.get("min"),
                    max=meta.get("max"),
                    min_exclusive=bool(meta.get("min_exclusive")),
                    max_exclusive=bool(meta.get("max_exclusive")),
                )
            )
        return specs


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def check_limits(config: Any) -> None:
    for f in dataclasses.fields(config):
        low, high = f.metadata.get("min"), f.metadata.get("max")
        value = getattr(config, f.name)
        if (low is None and high is None) or value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        too_low = low is not None and (value <= low if f.metadata.get("min_exclusive") else value < low)
        too_high = high is not None and (value >= high if f.metadata.get("max_exclusive") else value > high)
        if too_low or too_high:
            spec = next(s for s in type(config).field_specs() if s.name == f.name)
            raise ConfigError(f.name, f"must be {spec.limits_text()}, got {value!r}")


def check_field_types(config: Any) -> None:
    """Check every field's value against its annotation (JSON configs arrive untyped).

    Supports the annotations configs use: bool, int, float (ints accepted), str, None, Literal,
    unions, list[...] and dict. A bool is never accepted as a number, and a list for a str field
    is not silently joined: a wrong type is a user error worth naming.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        expected = hints[f.name]
        if not _matches(value, expected):
            raise ConfigError(f.name, f"expected {_describe(expected)}, got {value!r}")
        # Store floats as floats (JSON "1" for a float field) so to_dict/hash are canonical.
        if _is_float_field(expected) and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(config, f.name, float(value))  # object.__setattr__: frozen configs too
        elif isinstance(value, str) and type(value) is not str:  # an enum member: store the plain string
            object.__setattr__(config, f.name, str(value))


def _is_float_field(expected: Any) -> bool:
    if expected is float:
        return True
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(expected) if arm is not type(None)]
        return arms == [float]
    return False


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if expected is str:
        return isinstance(value, str)
    if origin is Literal:
        # A str enum member (Django's TextChoices) is its string; 1 is not True, though.
        return any(
            value == choice and (type(value) is type(choice) or (isinstance(choice, str) and isinstance(value, str)))
            for choice in typing.get_args(expected)
        )
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(expected))
    if origin is list:
        (item_type,) = typing.get_args(expected)
        return isinstance(value, list) and all(_matches(item, item_type) for item in value)
    if origin is dict or expected is dict:
        return isinstance(value, dict)
    raise TypeError(f"unsupported config annotation {expected!r}")  # a programming error, not user input


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if expected is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(expected))
    if origin is list:
        return f"a list of {_describe(typing.get_args(expected)[0])}"
    if origin is dict or expected is dict:
        return "a JSON object"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(expected, str(expected))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
