"""Failures a person must be able to act on: divergence, bad inputs. None of them leaves an artifact."""

from __future__ import annotations

import pytest

from rlhf.training import TrainingDiverged, train

from .helpers import ascii_reward


def test_nan_loss_in_a_trl_method_fails_clearly_without_an_artifact(tiny_base, small_data, tmp_path):
    out = tmp_path / "run"
    config = {"learning_rate": 1e38, "max_steps": 10, "batch_size": 4, "max_grad_norm": 0.0, "save_steps": 1}
    with pytest.raises(TrainingDiverged, match=r"^loss became NaN at step \d+; lower the learning rate$"):
        train("reward", small_data, tiny_base, out, config)
    assert not (out / "final").exists()
    # The step whose loss was NaN was not checkpointed, so a checkpoint never holds NaN weights
    # that a restart would resume from silently.
    saved = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert all(step < 10 for step in saved)


def test_nan_loss_in_ppo_fails_clearly_without_an_artifact(tiny_base, small_data, tmp_path):
    out = tmp_path / "run"
    config = {"learning_rate": 1e6, "max_steps": 10, "batch_size": 8, "max_completion_length": 4, "max_grad_norm": 0.0}
    with pytest.raises(TrainingDiverged, match=r"^loss became NaN at step \d+; lower the learning rate$"):
        train("ppo", small_data, tiny_base, out, config, reward_fn=ascii_reward)
    assert not (out / "final").exists()


def test_missing_inputs_are_reported(tiny_base, small_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="data file"):
        train("dpo", tmp_path / "nope.jsonl", tiny_base, tmp_path / "a", {})
    with pytest.raises(FileNotFoundError, match="base model folder"):
        train("dpo", small_data, tmp_path / "no-model", tmp_path / "b", {})
    with pytest.raises(ValueError, match="needs a reward model"):
        train("grpo", small_data, tiny_base, tmp_path / "c", {})
    with pytest.raises(ValueError, match="does not use a reward model"):
        train("dpo", small_data, tiny_base, tmp_path / "d", {}, reward_fn=ascii_reward)
    with pytest.raises(FileNotFoundError, match="reward model folder"):
        train("ppo", small_data, tiny_base, tmp_path / "e", {}, reward_model_path=tmp_path / "no-rm")


def test_a_run_that_failed_before_any_checkpoint_can_be_retried_with_fixed_inputs(tiny_base, small_data, tmp_path):
    """A bad snapshot line fails at once; the corrected snapshot may then reuse the same run folder."""
    broken = tmp_path / "broken.jsonl"
    broken.write_text(small_data.read_text() + '{"prompt": []}\n')
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"broken.jsonl, line 49: missing key 'chosen'"):
        train("dpo", broken, tiny_base, out, {"max_steps": 1, "batch_size": 4})
    # Nothing was trained, so the folder accepts the corrected snapshot instead of refusing it.
    result = train("dpo", small_data, tiny_base, out, {"max_steps": 1, "batch_size": 4})
    assert result.final_step == 1
