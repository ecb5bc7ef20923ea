"""The one config system (rlhf.config): every config class of the service passes the same suite."""

from __future__ import annotations

import dataclasses
import math

import pytest

from feedback_site.generation.config import PairingConfig
from feedback_site.loop.config import RoundConfig
from rlhf.config import Config, ConfigError
from rlhf.evaluation import EvaluationConfig
from rlhf.generation import SamplingConfig
from rlhf.simulated import SimulatedAnnotator
from rlhf.training import CONFIG_CLASSES

ALL = [*CONFIG_CLASSES.values(), SamplingConfig, EvaluationConfig, SimulatedAnnotator, PairingConfig, RoundConfig]


@pytest.fixture(params=ALL, ids=lambda cls: cls.__name__)
def config_class(request) -> type[Config]:
    return request.param


def _defaults(cls: type[Config]) -> Config:
    return cls()


def test_every_field_has_help(config_class) -> None:
    for spec in config_class.field_specs():
        assert spec.help.strip(), f"{config_class.__name__}.{spec.name} has no help text"


def test_defaults_round_trip_and_hash_stably(config_class) -> None:
    config = _defaults(config_class)
    again = config_class.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert again.config_hash() == config.config_hash() and len(config.config_hash()) == 64


def test_unknown_fields_are_named(config_class) -> None:
    with pytest.raises(ConfigError) as raised:
        config_class.from_dict({"no_such_setting": 1})
    assert raised.value.unknown and raised.value.field == "no_such_setting"
    assert "no_such_setting" in str(raised.value)


def test_every_limit_is_enforced_at_its_boundary(config_class) -> None:
    base = _defaults(config_class).to_dict()
    for spec in config_class.field_specs():
        for bound, exclusive, outward in ((spec.min, spec.min_exclusive, -1), (spec.max, spec.max_exclusive, +1)):
            if bound is None:
                continue
            is_int = isinstance(spec.default, int) and not isinstance(spec.default, bool)
            step = 1 if is_int else max(abs(bound) * 1e-9, 1e-9)
            outside = bound + outward * step if not exclusive else bound
            with pytest.raises(ConfigError) as raised:
                config_class.from_dict({**base, spec.name: outside})
            assert raised.value.field == spec.name
            inside = bound if not exclusive else bound - outward * step
            try:
                config_class.from_dict({**base, spec.name: inside})
            except ConfigError as error:  # only a cross-field rule may refuse it, never its own limit
                assert not str(error).startswith(f"{spec.name}: must be {spec.limits_text()}"), error


def test_types_are_checked_and_floats_are_canonical() -> None:
    with pytest.raises(ConfigError, match=r"^temperature: expected a number"):
        SamplingConfig(temperature=True)
    with pytest.raises(ConfigError, match=r"^top_k: expected an integer"):
        SamplingConfig(top_k=2.5)
    assert SamplingConfig(temperature=1).to_dict()["temperature"] == 1.0
    assert SamplingConfig(temperature=1).config_hash() == SamplingConfig(temperature=1.0).config_hash()
    with pytest.raises(ConfigError, match="temperature"):
        SamplingConfig(temperature=math.nan)


def test_the_limits_read_as_words() -> None:
    specs = {spec.name: spec for spec in SamplingConfig.field_specs()}
    assert specs["temperature"].limits_text() == "between 0 and 5"
    assert specs["top_p"].limits_text() == "> 0 and <= 1"
    with pytest.raises(ConfigError, match=r"^top_p: must be > 0 and <= 1, got 0"):
        SamplingConfig(top_p=0)


def test_cross_field_rules_name_their_field() -> None:
    with pytest.raises(ConfigError) as raised:
        SimulatedAnnotator(rule="keyword", keyword=" ")
    assert raised.value.field == "keyword"
    with pytest.raises(ConfigError) as raised:
        CONFIG_CLASSES["grpo"](batch_size=6, num_generations=4)
    assert raised.value.field == "batch_size"


def test_a_concept_has_one_class_with_the_hash_of_its_kind() -> None:
    # Two concepts with equal field values never share a hash: the kind is hashed too.
    assert SamplingConfig().config_hash() != EvaluationConfig().config_hash()
    kinds = [cls.kind for cls in ALL]
    assert len(kinds) == len(set(kinds)) and all(kinds)
    assert all(dataclasses.is_dataclass(cls) and issubclass(cls, Config) for cls in ALL)


# Numbers that may take any finite value; every other number field states its limits in its
# `option(...)`, so forms show them and `check_limits` is the one place they are enforced.
UNBOUNDED_NUMBERS = {("EvaluationConfig", "harm_threshold")}


def test_every_number_states_its_limits_in_its_metadata(config_class) -> None:
    for spec in config_class.field_specs():
        if spec.value_type not in (int, float) or (config_class.__name__, spec.name) in UNBOUNDED_NUMBERS:
            continue
        assert spec.min is not None or spec.max is not None, (
            f"{config_class.__name__}.{spec.name} has no limits in its option(); declare min/max there "
            "(a check() is for rules across fields)"
        )


def test_an_overridden_field_keeps_the_limits_of_the_field_it_overrides() -> None:
    # DPO learns at another default rate than the base config, within the same limits.
    base = {spec.name: spec for spec in CONFIG_CLASSES["dpo"].__mro__[1].field_specs()}
    dpo = {spec.name: spec for spec in CONFIG_CLASSES["dpo"].field_specs()}
    assert dpo["learning_rate"].default != base["learning_rate"].default
    assert (dpo["learning_rate"].min, dpo["learning_rate"].min_exclusive) == (base["learning_rate"].min, True)
    with pytest.raises(ConfigError, match=r"^learning_rate: must be > 0, got 0"):
        CONFIG_CLASSES["dpo"](learning_rate=0)
