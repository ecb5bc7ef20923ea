"""Django form fields read from a config dataclass (`rlhf.config`): type, default, limits, help.

A form never restates a default, a limit or a help text: a field added to a config, or a limit
changed, shows up on every page that edits it. The forms check types only; limits and cross-field rules are
the dataclass's (one validator), whose `ConfigError` the service raises as `Invalid` and
`ServiceErrorForm` puts under the field it names.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any, Literal

from django import forms

from rlhf.config import Config, FieldSpec

# Field names whose label is not simply the name with spaces.
LABELS = {"top_p": "top_p", "top_k": "top_k", "k": "Responses per prompt (K)"}


def label_for(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def form_field(spec: FieldSpec, *, required: bool | None = None) -> forms.Field:
    annotation = spec.value_type
    help_text = spec.help + (f" ({spec.limits_text()})" if spec.limits_text() else "")
    common: dict[str, Any] = {"label": label_for(spec.name), "help_text": help_text, "initial": spec.default}
    common["required"] = (not spec.optional) if required is None else required
    if annotation is bool:
        return forms.BooleanField(**{**common, "required": False})
    if typing.get_origin(annotation) is Literal:
        choices = [(choice, choice) for choice in typing.get_args(annotation)]
        return forms.ChoiceField(choices=choices, **common)
    # Types only: the limits are the dataclass's to check (one validator), and its message comes
    # back from the service under this field; the help text states them.
    if annotation is int:
        return forms.IntegerField(**common)
    if annotation is float:
        return forms.FloatField(**common)
    return forms.CharField(**common)


def config_form_fields(cls: type[Config], names: Iterable[str] | None = None) -> dict[str, forms.Field]:
    """Form fields for `cls`'s fields (all, or `names` in that order)."""
    specs = {spec.name: spec for spec in cls.field_specs()}
    wanted = list(names) if names is not None else list(specs)
    return {name: form_field(specs[name]) for name in wanted}
