"""Config validation: what the site relies on before it queues a run (no torch needed)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from rlhf.training import CONFIG_CLASSES, METHODS, config_from_dict
from rlhf.training.cli import cli
from rlhf.training.dpo import DPO_LOSS_TYPES, DPOConfig
from rlhf.training.grpo import GRPO_LOSS_TYPES


def test_every_method_has_a_config_with_documented_defaults():
    assert set(CONFIG_CLASSES) == set(METHODS)
    for method, cls in CONFIG_CLASSES.items():
        config = config_from_dict(method, {}, check_reward_model=False)
        assert config.method == method
        for field in dataclasses.fields(cls):
            # The help lives in the field's metadata (as in TRL's configs); forms read it there.
            assert field.metadata.get("help", "").strip(), f"{method}.{field.name} is not documented"


@pytest.mark.parametrize(
    ("method", "data", "message"),
    [
        ("orpo", {}, r"method: unknown training method 'orpo'"),
        ("dpo", {"betta": 0.1}, r"unknown field 'betta' for the dpo config"),
        ("dpo", {"beta": 0}, r"^beta: must be > 0"),
        ("dpo", {"beta": "0.1"}, r"^beta: expected a number"),
        ("dpo", {"loss_type": "kto"}, r"^loss_type: unknown loss 'kto'"),
        ("dpo", {"loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0]}, r"^loss_weights: needs one weight per loss"),
        ("dpo", {"loss_type": "exo_pair"}, r"^label_smoothing: must be > 0 for the 'exo_pair' loss"),
        ("dpo", {"loss_type": "bco_pair", "f_divergence_type": "js_divergence"}, r"^f_divergence_type: "),
        ("reward", {"learning_rate": -1}, r"^learning_rate: must be > 0, got -1"),
        ("reward", {"use_lora": "yes"}, r"^use_lora: expected true/false"),
        ("reward", {"batch_size": 2.5}, r"^batch_size: expected an integer"),
        ("reward", {"batch_size": True}, r"^batch_size: expected an integer"),
        ("reward", {"lr_scheduler_type": "step"}, r"^lr_scheduler_type: expected one of"),
        ("reward", {"eval_fraction": 1.0}, r"^eval_fraction: must be >= 0 and < 1, got 1.0"),
        ("reward", {"lora_target_modules": []}, r"^lora_target_modules: "),
        ("grpo", {"num_generations": 1}, r"^num_generations: must be >= 2"),
        ("grpo", {"batch_size": 6, "num_generations": 4}, r"^batch_size: .* multiple of num_generations"),
        ("grpo", {"loss_type": "luspo"}, r"^importance_sampling_level: must be 'sequence'"),
        ("rloo", {"reward_clip_range": [1.0, 0.0]}, r"^reward_clip_range: "),
        ("ppo", {"batch_size": 6, "num_mini_batches": 4}, r"^batch_size: must be divisible"),
        ("ppo", {"max_completion_length": 600, "max_length": 512}, r"^max_completion_length: must be < max_length"),
        ("ppo", {"missing_eos_penalty": -1.0}, r"^missing_eos_penalty: "),
    ],
)
def test_bad_configs_raise_value_error_naming_the_problem(method, data, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(method, data, check_reward_model=False)


@pytest.mark.parametrize("method", ["ppo", "rloo", "grpo"])
def test_rl_methods_need_a_reward_model(method):
    with pytest.raises(ValueError, match=rf"reward_model: method '{method}' needs a reward model"):
        config_from_dict(method, {})
    assert config_from_dict(method, {}, reward_model="runs/7/final").method == method


def test_config_is_canonical_and_hashable():
    a = config_from_dict("dpo", {"loss_type": "ipo", "learning_rate": 1})
    b = DPOConfig(loss_type=["ipo"], learning_rate=1.0)
    assert a == b and a.to_dict() == b.to_dict() and a.config_hash() == b.config_hash()
    assert a.to_dict()["learning_rate"] == 1.0 and isinstance(a.to_dict()["learning_rate"], float)
    assert DPOConfig.from_dict(a.to_dict()) == a  # a stored config round-trips
    assert DPOConfig(beta=0.2).config_hash() != a.config_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", a.config_hash())


def test_loss_type_lists_match_the_installed_trl():
    from trl import DPOConfig as TRLDPOConfig
    from trl import GRPOConfig as TRLGRPOConfig

    dpo_help = TRLDPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    dpo_listed = dpo_help.split("Possible values are:")[1].split("If multiple")[0]
    assert set(re.findall(r"'([a-z_]+)'", dpo_listed)) == set(DPO_LOSS_TYPES)
    grpo_help = TRLGRPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    grpo_listed = grpo_help.split("Supported values are")[1].split(".")[0]
    assert set(re.findall(r"'([a-z_]+)'", grpo_listed)) == set(GRPO_LOSS_TYPES)


def test_importing_the_package_and_validating_needs_no_torch():
    code = (
        "import sys; from rlhf.training import config_from_dict; "
        "config_from_dict('dpo', {'beta': 0.2}); "
        "assert not {'torch', 'transformers', 'trl', 'peft'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_bad_config_exits_2_with_a_message(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text('{"beta": -1}')
    code = cli(["dpo", "--data", "x.jsonl", "--base", "m", "--out", str(tmp_path / "o"), "--config", str(config)])
    assert code == 2
    assert "bad config: beta: must be > 0" in capsys.readouterr().err

    assert cli(["ppo", "--data", "x.jsonl", "--base", "m", "--out", str(tmp_path / "o")]) == 2
    assert "needs a reward model" in capsys.readouterr().err

    assert cli(["dpo", "--data", "x.jsonl", "--base", "m", "--out", str(tmp_path / "o"), "--set", "nope=1"]) == 2
    assert "unknown field 'nope'" in capsys.readouterr().err
