"""Evaluation: the task (`evaluation.run`, on the `gpu` queue by its spec in workers/task_names.py)
and the job behind it.

The job loads the run, resolves and verifies every model artifact (a changed artifact fails the
run), calls `rlhf.evaluation`, and records results through `feedback_site.evaluation.services`.
It is idempotent: a finished run is skipped, and a redelivered running one is simply redone
(evaluation is deterministic for a fixed seed) and its results stored once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from workers.celery_app import task
from workers.task_names import EVALUATION_RUN

log = logging.getLogger(__name__)


@task(EVALUATION_RUN)
def evaluate(run_id: int) -> None:
    run_evaluation(run_id)


def _model_path(version) -> Path:
    from feedback_site.registry.services import version_model_dir

    return version_model_dir(version)


def run_evaluation(run_id: int) -> None:
    from feedback_site.annotation.models import Prompt, Split
    from feedback_site.core.errors import ServiceError
    from feedback_site.evaluation import services
    from feedback_site.evaluation.models import AdversarialPrompt, EvaluationKind, SampleSet

    run = services.evaluation_claim(run_id=run_id)
    if run is None:
        log.info("evaluation %s: nothing to do (finished or missing)", run_id)
        return
    try:
        from rlhf import evaluation as rlhf_evaluation

        config = run.config
        if run.kind == EvaluationKind.REWARD:
            pairs = services.heldout_pairs(run.project)
            result = rlhf_evaluation.evaluate_reward_model(
                reward_path=_model_path(run.reward_model), pairs=pairs, batch_size=config.get("batch_size", 16)
            )
            services.evaluation_succeed(run_id=run_id, results={"reward_accuracy": result["summary"], "rows": result["rows"]}, samples=[])
            return

        by_id = {p.pk: p for p in Prompt.objects.filter(pk__in=config["prompt_ids"], project=run.project, split=Split.EVAL)}
        prompts = [(pid, by_id[pid].messages()) for pid in config["prompt_ids"] if pid in by_id]
        if not prompts:
            raise ValueError("the evaluation prompts of this run no longer exist")
        adversarial_rows = (
            list(AdversarialPrompt.objects.filter(project=run.project, active=True).order_by("category", "key"))
            if config.get("adversarial")
            else []
        )
        adversarial = [
            rlhf_evaluation.AdversarialItem(
                key=row.pk, category=row.category, messages=row.messages(), flag_patterns=list(row.flag_patterns)
            )
            for row in adversarial_rows
        ]
        # The stored config is EvaluationConfig.to_dict() plus the frozen prompt ids.
        settings_ = rlhf_evaluation.EvaluationConfig.from_dict({k: v for k, v in config.items() if k != "prompt_ids"})
        result = rlhf_evaluation.evaluate_policy(
            policy_path=_model_path(run.policy),
            baseline_path=_model_path(run.baseline),
            reference_path=_model_path(run.reference) if run.reference_id and run.reference_id != run.policy_id else None,
            prompts=prompts,
            settings=settings_,
            reward_path=_model_path(run.reward_model) if run.reward_model_id else None,
            harmlessness_path=_model_path(run.harmlessness_model) if run.harmlessness_model_id else None,
            adversarial=adversarial,
            log_fn=lambda message: log.info("evaluation %s: %s", run_id, message),
        )
        samples = [
            {
                "sample_set": SampleSet.EVAL,
                "prompt_id": row["prompt_id"],
                "prompt_messages": row["messages"],
                "policy_response": row["policy_response"],
                "baseline_response": row["baseline_response"],
                "policy_tokens": row["policy_tokens"],
                "baseline_tokens": row["baseline_tokens"],
                "policy_score": row["policy_score"],
                "baseline_score": row["baseline_score"],
                "outcome": row["outcome"],
                "kl": row["kl"],
            }
            for row in result["samples"]
        ] + [
            {
                "sample_set": SampleSet.ADVERSARIAL,
                "adversarial_prompt_id": row["key"],
                "prompt_messages": row["messages"],
                "policy_response": row["response"],
                "policy_tokens": row["tokens"],
                "harmlessness_score": row["harmlessness"],
                "flagged": bool(row["flag_reasons"]),
                "flag_reasons": row["flag_reasons"],
            }
            for row in result["adversarial"]
        ]
        notes = []
        length_bias = result["summary"].get("length_bias") or {}
        if length_bias.get("warning"):
            notes.append(
                f"Length bias: the longer answer won {length_bias['longer_won']} of {length_bias['decisive']} decisive comparisons; "
                "the judge may reward verbosity."
            )
        services.evaluation_succeed(run_id=run_id, results=result["summary"], samples=samples, notes=notes)
    except ServiceError as error:
        services.evaluation_fail(run_id=run_id, message=error.message)
    except Exception as error:
        log.exception("evaluation %s failed", run_id)
        services.evaluation_fail(run_id=run_id, message=f"{error.__class__.__name__}: {error}")
