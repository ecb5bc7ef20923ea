"""Site-side use of `rlhf.config`: build a config from request values, or answer 400 naming the field.

Services validate every user-given setting by building the concept's dataclass (the one
validator); this turns its `ConfigError` into the `Invalid` the API and the forms show, with the
field in the code (`bad_temperature`) unless the caller groups them (`bad_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from feedback_site.core.errors import Invalid
from rlhf.config import Config, ConfigError

C = TypeVar("C", bound=Config)


def build_config(cls: type[C], values: Mapping[str, Any] | None, *, code: str | None = None, prefix: str = "") -> C:
    """`cls.from_dict(values)`, or `Invalid("<prefix>field: what is wrong", code=code or "bad_<field>")`."""
    try:
        return cls.from_dict(values)
    except ConfigError as error:
        raise Invalid(f"{prefix}{error}", code=code or ("bad_field" if error.unknown else f"bad_{error.field}")) from None
    except TypeError as error:  # a required field is missing
        raise Invalid(f"{prefix}{error}", code=code or "bad_config") from None
