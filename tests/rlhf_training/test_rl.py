"""PPO (ours), RLOO and GRPO (TRL): raise a known reward over the starting policy with bounded KL."""

from __future__ import annotations

import json

import pytest

from rlhf.progress import RecordingControl
from rlhf.training import train

from .helpers import ascii_reward, probe_policy, prompts_of

# Starting policy: ascii_reward ≈ 0.59 (see probe_policy on tiny_base). Each method must gain at
# least this much on fresh samples, while moving less than KL_BOUND nats per 6-token answer.
MIN_GAIN = 0.07
KL_BOUND = 12.0


def check_learned(result, tiny_base, toy_data) -> dict[str, float]:
    prompts = prompts_of(toy_data)
    before = probe_policy(tiny_base, tiny_base, prompts)
    after = probe_policy(result.artifact_dir, tiny_base, prompts)
    assert after["reward"] > before["reward"] + MIN_GAIN, (before, after)
    assert 0.0 < after["kl"] < KL_BOUND, after
    return after


def test_ppo_raises_the_reward_with_bounded_kl(tiny_base, toy_data, tmp_path):
    control = RecordingControl()
    config = {
        "learning_rate": 5e-4,
        "lr_scheduler_type": "constant",
        "max_steps": 12,
        "batch_size": 32,
        "num_mini_batches": 2,
        "num_ppo_epochs": 2,
        "max_completion_length": 6,
        "temperature": 1.0,
        "kl_coef": 0.05,
        "save_steps": 100,
    }
    result = train("ppo", toy_data, tiny_base, tmp_path / "run", config, control=control, reward_fn=ascii_reward)
    check_learned(result, tiny_base, toy_data)

    first, last = control.reports[0][2], control.reports[-1][2]
    assert first["kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout comes from the reference itself
    assert last["kl"] < KL_BOUND
    for key in (
        "reward",
        "kl",
        "entropy",
        "clip_fraction",
        "value_loss",
        "policy_loss",
        "approx_kl",
        "kl_coef",
        "response_length",
        "eos_fraction",
        "learning_rate",
        "tokens_per_s",
    ):
        assert key in last, key
    assert result.final_step == 12 and not result.is_adapter
    assert result.manifest["reward_fn"] == "ascii_reward" and result.manifest["reward_model"] is None


def test_ppo_with_lora_uses_the_base_as_reference_and_saves_an_adapter(tiny_base, toy_data, tmp_path):
    control = RecordingControl()
    config = {
        "learning_rate": 1e-3,
        "max_steps": 3,
        "batch_size": 8,
        "num_mini_batches": 2,
        "max_completion_length": 4,
        "use_lora": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "adaptive_kl": True,
        "missing_eos_penalty": 1.0,
        "save_steps": 100,
    }
    result = train("ppo", toy_data, tiny_base, tmp_path / "run", config, control=control, reward_fn=ascii_reward)
    # LoRA's B matrices start at zero, so with the adapter off (the reference) the first KL is 0.
    assert control.reports[0][2]["kl"] == pytest.approx(0.0, abs=1e-6)
    # Later the adapter has moved the policy (k1 estimates of one small batch may be negative).
    assert control.reports[-1][2]["kl"] != 0
    assert control.reports[-1][2]["kl_coef"] != control.reports[0][2]["kl_coef"]  # the adaptive controller moved
    assert control.reports[0][2]["score"] < control.reports[0][2]["reward"]  # 4-token answers rarely end: penalised
    files = {path.name for path in result.artifact_dir.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files


def test_rloo_raises_the_reward_with_bounded_kl(tiny_base, toy_data, tmp_path):
    config = {
        "learning_rate": 2e-3,
        "lr_scheduler_type": "constant",
        "max_steps": 15,
        "batch_size": 32,
        "num_generations": 8,
        "max_completion_length": 6,
        "save_steps": 100,
    }
    result = train("rloo", toy_data, tiny_base, tmp_path / "run", config, reward_fn=ascii_reward)
    check_learned(result, tiny_base, toy_data)
    assert {"reward", "kl", "entropy", "loss"} <= set(result.metrics)


def test_grpo_raises_the_reward_with_bounded_kl(tiny_base, toy_data, tmp_path):
    config = {
        "learning_rate": 1.5e-3,
        "lr_scheduler_type": "constant",
        "max_steps": 15,
        "batch_size": 32,
        "num_generations": 8,
        "max_completion_length": 6,
        "beta": 0.1,
        "save_steps": 100,
    }
    result = train("grpo", toy_data, tiny_base, tmp_path / "run", config, reward_fn=ascii_reward)
    check_learned(result, tiny_base, toy_data)
    assert {"reward", "kl", "entropy", "loss"} <= set(result.metrics)


@pytest.mark.parametrize("method", ["ppo", "grpo"])
def test_rl_with_a_reward_model_version(method, reward_model, tiny_base, toy_data, tmp_path):
    """The reward-model artifact is the reward function (scored through the same chat template)."""
    extra = {"num_generations": 4} if method == "grpo" else {}
    result = train(
        method,
        toy_data,
        tiny_base,
        tmp_path / "run",
        {"learning_rate": 1e-3, "max_steps": 2, "batch_size": 8, "max_completion_length": 4, "save_steps": 100, **extra},
        reward_model_path=reward_model.artifact_dir,
    )
    assert result.final_step == 2
    assert result.manifest["reward_model"] == str(reward_model.artifact_dir)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["reward_model"] == str(reward_model.artifact_dir)


def test_a_policy_is_refused_as_reward_model(tiny_base, toy_data, tmp_path):
    policy = train("dpo", toy_data, tiny_base, tmp_path / "dpo", {"max_steps": 1, "batch_size": 4, "save_steps": 100})
    with pytest.raises(ValueError, match="is a policy model, not a reward model"):
        train("rloo", toy_data, tiny_base, tmp_path / "run", {"max_steps": 1}, reward_model_path=policy.artifact_dir)
