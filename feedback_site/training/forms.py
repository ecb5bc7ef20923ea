"""The training launch form.

The config fields are not written out by hand: they are read from the method's dataclass in
`rlhf.training` (names, types, defaults, and the help text in each field's metadata, see
`rlhf.config.option`), so a field added to a config appears on the page with its default and help.

Fields whose default is the same in every method (seed, schedule, checkpointing, LoRA) are shown
once; fields that exist in one method only, or whose default differs (learning_rate, batch_size),
are shown per method, each method in its own fieldset, and the page shows the chosen method's.
Like every form here it checks types and shapes only: ranges and rules belong to
`validate_training_config` / `training_launch`, whose errors are attached back to the field they
name ("config: learning_rate: must be > 0, got -1" lands under learning_rate).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from django import forms

from feedback_site.core.errors import Invalid, ServiceError
from feedback_site.demonstrations.models import DemonstrationSnapshot
from feedback_site.projects.forms import ServiceErrorForm
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.snapshots.models import Snapshot, SnapshotStatus
from feedback_site.training.models import NEEDS_DEMONSTRATIONS, NEEDS_REWARD_MODEL, TAKES_RATINGS, Method

METHOD_SUMMARIES = {
    Method.SFT: "Supervised fine-tuning on a demonstration snapshot: imitates the answers annotators wrote. "
    "A usual first round; preference training can start from its policy.",
    Method.REWARD: "A scalar scorer trained on the snapshot's chosen/rejected pairs. PPO, RLOO and GRPO optimise against it.",
    Method.DPO: "Optimises the policy directly on the preference pairs, with the parent policy as reference. No reward model.",
    Method.KTO: "Learns from answers marked desirable or undesirable (thumbs up / down), with the parent policy as reference. "
    "On a preference snapshot each pair gives its chosen answer as desirable and its rejected one as undesirable. No reward model.",
    Method.PPO: "On-policy RL against a reward model: value head, GAE, clipped updates and a KL penalty to the parent.",
    Method.RLOO: "REINFORCE leave-one-out: several samples per prompt, each baselined on the others. No value network.",
    Method.GRPO: "Group-relative advantages over several samples per prompt (DeepSeekMath). No value network.",
}

FINE_TUNING_CHOICES = [("full", "Full fine-tune"), ("lora", "LoRA adapter")]
COMMON = "all"  # form-field prefix of the settings shared by every method


# ------------------------------------------------------------------------------------------------
# Reading the config dataclasses
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigField:
    name: str
    kind: str  # "bool", "int", "float", "choice", "list", "text", "json"
    optional: bool
    default: Any
    help: str = ""
    choices: tuple = ()
    item_type: type = str  # of "list" fields

    def signature(self) -> tuple:
        return (self.name, self.kind, self.optional, json.dumps(self.default, sort_keys=True, default=str), self.choices)


@dataclass(frozen=True)
class ConfigSpec:
    common: tuple[ConfigField, ...]
    lora: tuple[ConfigField, ...]
    per_method: dict[str, tuple[ConfigField, ...]]


def _config_classes() -> dict[str, type]:
    from rlhf.training import CONFIG_CLASSES  # imports no torch (checked by tests/web)

    return CONFIG_CLASSES


@cache
def method_defaults(method: str) -> dict:
    """The method's full default config, as the service would store it."""
    from feedback_site.training.services import validate_training_config

    try:
        return validate_training_config(method, {})
    except Invalid:
        # ppo/rloo/grpo configs refuse to validate without a reward model; the defaults are the
        # same either way.
        from rlhf.training import config_from_dict

        return config_from_dict(method, {}, check_reward_model=False).to_dict()


def _field_docs(cls: type) -> dict[str, str]:
    """Each field's help text, from its metadata (`rlhf.config.option`)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _describe(name: str, hint: Any, default: Any, help_text: str) -> ConfigField:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    optional = False
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        rest = tuple(a for a in args if a is not type(None))
        hint = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007 - built at runtime
        args, origin = typing.get_args(hint), typing.get_origin(hint)
    common = dict(name=name, optional=optional, default=default, help=help_text)
    if hint is bool:
        return ConfigField(kind="bool", **common)
    if hint is int:
        return ConfigField(kind="int", **common)
    if hint is float:
        return ConfigField(kind="float", **common)
    if hint is str:
        return ConfigField(kind="text", **common)
    if origin is Literal:
        return ConfigField(kind="choice", choices=tuple(args), **common)
    if origin is list and args and args[0] in (str, int, float):
        return ConfigField(kind="list", item_type=args[0], **common)
    if origin in (typing.Union, types.UnionType) and str in args and any(typing.get_origin(a) is list for a in args):
        return ConfigField(kind="list", item_type=str, **common)  # "all-linear" or ["q_proj", "v_proj"]
    return ConfigField(kind="json", **common)


@cache
def config_spec() -> ConfigSpec:
    classes = _config_classes()
    described: dict[str, list[ConfigField]] = {}
    for method in Method.values:
        cls = classes[method]
        hints = typing.get_type_hints(cls)
        docs = _field_docs(cls)
        defaults = method_defaults(method)
        described[method] = [
            _describe(f.name, hints[f.name], defaults.get(f.name), docs.get(f.name, ""))
            for f in dataclasses.fields(cls)
            if f.init and f.name != "use_lora"
        ]
    first = described[Method.values[0]]
    shared = {
        field.name for field in first if all(any(other.signature() == field.signature() for other in described[m]) for m in Method.values)
    }
    common = tuple(f for f in first if f.name in shared and not f.name.startswith("lora_"))
    lora = tuple(f for f in first if f.name in shared and f.name.startswith("lora_"))
    per_method = {m: tuple(f for f in described[m] if f.name not in shared) for m in Method.values}
    return ConfigSpec(common=common, lora=lora, per_method=per_method)


# ------------------------------------------------------------------------------------------------
# Form fields for config values
# ------------------------------------------------------------------------------------------------


def _display(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if value is None:
        return ""
    return value


class ListField(forms.CharField):
    """Comma-separated values. Keeps the default's shape: "all-linear" stays a string, while a
    default like ["sigmoid"] stays a list even with one item."""

    def __init__(self, *, item_type: type, as_list: bool, **kwargs):
        self.item_type, self.as_list = item_type, as_list
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            items = [self.item_type(item) for item in items]
        except ValueError:
            raise forms.ValidationError(f"Enter {'numbers' if self.item_type is not str else 'values'} separated by commas.") from None
        if not self.as_list and len(items) == 1:
            return items[0]
        return items


class JSONValueField(forms.CharField):
    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError("Enter a JSON value.") from None


def _help_parts(text: str) -> list[dict]:
    """The docstring's `code` spans, for the template to show as <code> (escaped like any text)."""
    return [{"text": part, "code": index % 2 == 1} for index, part in enumerate(text.split("`")) if part]


def _form_field(spec: ConfigField) -> forms.Field:
    field = _make_form_field(spec)
    field.help_parts = _help_parts(spec.help)
    return field


def _make_form_field(spec: ConfigField) -> forms.Field:
    attrs = {"data-config-field": spec.name, "data-default": _default_text(spec)}
    common = dict(required=False, label=spec.name, help_text=spec.help, initial=_display(spec.default))
    if spec.kind == "bool":
        return forms.BooleanField(widget=forms.CheckboxInput(attrs=attrs), **common)
    common["required"] = not spec.optional
    if spec.optional:
        attrs["placeholder"] = "none"
    if spec.kind == "int":
        return forms.IntegerField(widget=forms.NumberInput(attrs=attrs), **common)
    if spec.kind == "float":
        # A text box: number inputs re-format values such as 2e-05 and reject them in some browsers.
        return forms.FloatField(widget=forms.TextInput(attrs={**attrs, "inputmode": "decimal", "spellcheck": "false"}), **common)
    if spec.kind == "choice":
        choices = [(value, str(value)) for value in spec.choices]
        if spec.optional:
            choices = [("", "none"), *choices]
        return forms.TypedChoiceField(
            choices=choices, coerce=_coerce_like(spec.choices), empty_value=None, widget=forms.Select(attrs=attrs), **common
        )
    if spec.kind == "list":
        return ListField(item_type=spec.item_type, as_list=isinstance(spec.default, list), widget=forms.TextInput(attrs=attrs), **common)
    if spec.kind == "text":
        return forms.CharField(widget=forms.TextInput(attrs=attrs), **common)
    common["initial"] = json.dumps(spec.default)
    return JSONValueField(widget=forms.TextInput(attrs={**attrs, "class": "mono"}), **common)


def _default_text(spec: ConfigField) -> str:
    """The default as the input shows it, for the page's "changed" marks and its reset button."""
    if spec.kind == "bool":
        return "true" if spec.default else "false"
    if spec.kind == "json":
        return json.dumps(spec.default)
    return str(_display(spec.default))


def _coerce_like(choices: tuple):
    by_text = {str(value): value for value in choices}
    return lambda text: by_text.get(text, text)


# ------------------------------------------------------------------------------------------------
# The form
# ------------------------------------------------------------------------------------------------


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, version) -> str:
        current = " (current)" if version.pk == getattr(self, "current_id", None) else ""
        return f"v{version.number} · {version.name}{current}"


class SnapshotChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, snapshot) -> str:
        return f"Snapshot {snapshot.number} · {snapshot.preference_count:,} preferences · {snapshot.content_hash[:10]}"


class DemonstrationSnapshotChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, snapshot) -> str:
        return f"Demonstration snapshot {snapshot.number} · {snapshot.demonstration_count:,} demonstrations · {snapshot.content_hash[:10]}"


class RatingSnapshotChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, snapshot) -> str:
        return (
            f"Rating snapshot {snapshot.number} · {snapshot.desirable_count:,} up / {snapshot.undesirable_count:,} down · "
            f"{snapshot.content_hash[:10]}"
        )


class TrainingLaunchForm(ServiceErrorForm):
    method = forms.ChoiceField(choices=Method.choices, widget=forms.RadioSelect, initial=Method.DPO)
    # Both pickers are optional here: which one is needed depends on the method, and the service
    # says which is missing (naming the field), so the rule lives in one place.
    snapshot = SnapshotChoiceField(
        queryset=Snapshot.objects.none(),
        required=False,
        empty_label=None,
        label="Snapshot",
        help_text="The frozen preference data to train on.",
    )
    demonstration_snapshot = DemonstrationSnapshotChoiceField(
        queryset=DemonstrationSnapshot.objects.none(),
        required=False,
        empty_label=None,
        label="Demonstration snapshot",
        help_text="The frozen demonstrations (ideal answers written by annotators) SFT trains on.",
    )
    rating_snapshot = RatingSnapshotChoiceField(
        queryset=RatingSnapshot.objects.none(),
        required=False,
        empty_label="— none: unpair the preference snapshot —",
        label="Rating snapshot",
        help_text="KTO only: thumbs up / down on single answers. Without one, KTO trains on the preference snapshot, "
        "each pair's chosen answer as desirable and its rejected one as undesirable.",
    )
    parent = VersionChoiceField(
        queryset=ModelVersion.objects.none(),
        empty_label=None,
        label="Parent policy",
        help_text="The policy training starts from (and the reference for DPO, PPO, RLOO and GRPO). "
        "A reward model uses it as its backbone.",
    )
    reward_model = VersionChoiceField(
        queryset=ModelVersion.objects.none(),
        required=False,
        empty_label="— choose a reward model —",
        label="Reward model",
        help_text="Scores the policy's samples. Required by PPO, RLOO and GRPO.",
    )
    fine_tuning = forms.ChoiceField(
        choices=FINE_TUNING_CHOICES,
        widget=forms.RadioSelect,
        initial="full",
        label="Weights trained",
        help_text="LoRA trains a small adapter (saved on its own, reference = adapter off); full updates every weight.",
    )
    config_json = forms.CharField(
        required=False,
        label="JSON overrides",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false", "placeholder": '{"max_steps": 200}'}),
        help_text="Optional. A JSON object of config fields applied on top of the values above (the same keys the API takes).",
    )

    service_error_fields = {
        "missing_reward_model": "reward_model",
        "bad_reward_model": "reward_model",
        "missing_snapshot": "snapshot",
        "missing_demonstration_snapshot": "demonstration_snapshot",
        "bad_rating_snapshot": "rating_snapshot",
    }

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.spec = config_spec()
        snapshots = Snapshot.objects.filter(project=project, status=SnapshotStatus.READY).order_by("-number")
        self.fields["snapshot"].queryset = snapshots
        self.fields["snapshot"].initial = snapshots.values_list("pk", flat=True).first()
        demonstrations = DemonstrationSnapshot.objects.filter(project=project).order_by("-number")
        self.fields["demonstration_snapshot"].queryset = demonstrations
        self.fields["demonstration_snapshot"].initial = demonstrations.values_list("pk", flat=True).first()
        ratings = RatingSnapshot.objects.filter(project=project).order_by("-number")
        self.fields["rating_snapshot"].queryset = ratings
        self.fields["rating_snapshot"].initial = ratings.values_list("pk", flat=True).first()
        policies = ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY).order_by("-number")
        self.fields["parent"].queryset = policies
        self.fields["parent"].initial = project.current_policy_id
        self.fields["parent"].current_id = project.current_policy_id
        rewards = ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number")
        self.fields["reward_model"].queryset = rewards
        self.fields["reward_model"].initial = rewards.values_list("pk", flat=True).first()
        self.config_names: dict[str, str] = {}  # form field name -> config field name (for the active method)
        for spec in (*self.spec.common, *self.spec.lora):
            self.fields[f"{COMMON}__{spec.name}"] = _form_field(spec)
        for method, specs in self.spec.per_method.items():
            for spec in specs:
                self.fields[f"{method}__{spec.name}"] = _form_field(spec)

    # -- grouping for the template ---------------------------------------------------------------

    def _bound(self, prefix: str, specs) -> list:
        return [self[f"{prefix}__{spec.name}"] for spec in specs]

    def common_fields(self) -> list:
        return self._bound(COMMON, self.spec.common)

    def lora_fields(self) -> list:
        return self._bound(COMMON, self.spec.lora)

    def method_sections(self) -> list[dict]:
        chosen = self.chosen_method()
        return [
            {
                "method": method,
                "label": Method(method).label,
                "summary": METHOD_SUMMARIES[Method(method)],
                "fields": self._bound(method, self.spec.per_method[method]),
                "active": method == chosen,
                "needs_reward_model": method in NEEDS_REWARD_MODEL,
                "needs_demonstrations": method in NEEDS_DEMONSTRATIONS,
            }
            for method in Method.values
        ]

    def method_choices(self) -> list[dict]:
        chosen = self.chosen_method()
        return [
            {
                "value": value,
                "label": label,
                "summary": METHOD_SUMMARIES[Method(value)],
                "checked": value == chosen,
                "needs_reward_model": value in NEEDS_REWARD_MODEL,
                "needs_demonstrations": value in NEEDS_DEMONSTRATIONS,
            }
            for value, label in Method.choices
        ]

    def chosen_method(self) -> str:
        value = self.data.get("method") if self.is_bound else self.fields["method"].initial
        return value if value in Method.values else Method.DPO

    def uses_demonstrations(self) -> bool:
        return self.chosen_method() in NEEDS_DEMONSTRATIONS

    def takes_ratings(self) -> bool:
        return self.chosen_method() in TAKES_RATINGS

    def uses_lora(self) -> bool:
        value = self.data.get("fine_tuning") if self.is_bound else self.fields["fine_tuning"].initial
        return value == "lora"

    def error_list(self) -> list[tuple[str, str]]:
        """Every error with the name of its field, for the summary at the top of the form."""
        out = []
        for name, errors in self.errors.items():
            label = "" if name == "__all__" else (self.fields[name].label or name)
            out.extend((label, str(message)) for message in errors)
        return out

    # -- cleaning ------------------------------------------------------------------------------

    def _inactive_fields(self, method: str) -> set[str]:
        return {f"{m}__{spec.name}" for m, specs in self.spec.per_method.items() if m != method for spec in specs}

    def full_clean(self):
        super().full_clean()
        # Only the chosen method's fields matter; the others are hidden on the page.
        if self._errors is not None:
            for name in self._inactive_fields(self.chosen_method()):
                self._errors.pop(name, None)

    def clean_config_json(self):
        text = (self.cleaned_data.get("config_json") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Enter a JSON object, e.g. {"max_steps": 200}.')
        return value

    def clean(self):
        cleaned = super().clean()
        method = cleaned.get("method")
        if method not in NEEDS_REWARD_MODEL:
            cleaned["reward_model"] = None
        # The page posts both pickers; only the chosen method's kind of data goes to the service.
        if method in NEEDS_DEMONSTRATIONS:
            cleaned["snapshot"] = None
        else:
            cleaned["demonstration_snapshot"] = None
        if method not in TAKES_RATINGS:
            cleaned["rating_snapshot"] = None
        elif cleaned.get("rating_snapshot") is not None:
            cleaned["snapshot"] = None  # KTO on thumbs: the rating snapshot is the data
        if method:
            config: dict[str, Any] = {}
            for spec in (*self.spec.common, *self.spec.lora):
                config[spec.name] = cleaned.get(f"{COMMON}__{spec.name}")
            for spec in self.spec.per_method[method]:
                config[spec.name] = cleaned.get(f"{method}__{spec.name}")
            config["use_lora"] = cleaned.get("fine_tuning") == "lora"
            config.update(cleaned.get("config_json") or {})
            cleaned["config"] = config
        return cleaned

    def launch_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "method": data["method"],
            "snapshot": data["snapshot"],
            "demonstration_snapshot": data["demonstration_snapshot"],
            "rating_snapshot": data["rating_snapshot"],
            "parent": data["parent"],
            "reward_model": data["reward_model"],
            "config": data["config"],
        }

    # -- service errors back onto fields ---------------------------------------------------------

    def add_service_error(self, error: ServiceError) -> None:
        if error.code == "bad_config":
            message = error.message.removeprefix("config: ")
            name = message.split(":", 1)[0].strip()
            method = self.chosen_method()
            target = None
            if name == "reward_model":
                target = "reward_model"
            elif name == "use_lora":
                target = "fine_tuning"
            elif f"{method}__{name}" in self.fields:
                target = f"{method}__{name}"
            elif f"{COMMON}__{name}" in self.fields:
                target = f"{COMMON}__{name}"
            elif (self.data.get("config_json") or "").strip():
                target = "config_json"
            if target is not None:
                self.add_error(target, message)
                return
        super().add_service_error(error)
