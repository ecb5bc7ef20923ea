"""Every write of the evaluation app: evaluation prompts, the adversarial suite, evaluation runs
(launch, claim, results, failure), the post-training hook and human review of flagged answers.

Evaluation prompts are created here and only here, with `split="eval"`; nothing moves a prompt
between splits, and generation for annotation and snapshots only read `split="train"`, so an
evaluation prompt can never reach training data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback_site.annotation import importers
from feedback_site.annotation.models import Pair, PairSource, Preference, Prompt, Response, Split
from feedback_site.core.audit import audit_record
from feedback_site.core.configs import build_config
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.core.queue import enqueue
from feedback_site.evaluation.models import (
    ACTIVE,
    AdversarialCategory,
    AdversarialPrompt,
    EvaluationKind,
    EvaluationRun,
    EvaluationSample,
    EvaluationStatus,
    EvaluationTrigger,
    SampleSet,
)
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.evaluation import EvaluationConfig
from workers.task_names import EVALUATION_RUN

log = logging.getLogger(__name__)

SUITE_FILE = Path(__file__).with_name("adversarial_suite.jsonl")
MAX_PROMPT_CHARS = 20_000


def evaluation_config(values: dict | None) -> dict:
    """Defaults filled in and every value checked by `rlhf.evaluation.EvaluationConfig`; errors name the field."""
    return build_config(EvaluationConfig, values, code="bad_config").to_dict()


def _hash(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Evaluation prompts (held out by construction)
# --------------------------------------------------------------------------------------------


def _parse_jsonl(data: bytes) -> list[tuple[int, dict]]:
    """`(line, object)` for every record: the site's one JSON Lines reader (the import page's), so a
    bad file gets the same error, naming its line, wherever it is uploaded."""
    try:
        return importers.parse_jsonl(data, limits=importers.ImportLimits(max_bytes=settings.IMPORT_MAX_BYTES))
    except importers.ImportFileError as error:
        raise Invalid(str(error), code="bad_file") from None


def _text_field(record: dict, name: str, number: int, *, required: bool = True) -> str:
    value = record.get(name, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(f"line {number}: {name!r} must be a non-empty string", code="bad_file")
    if len(value) > MAX_PROMPT_CHARS:
        raise Invalid(f"line {number}: {name!r} is longer than {MAX_PROMPT_CHARS} characters", code="bad_file")
    return value


def eval_prompts_import(*, project: Project, actor, data: bytes) -> list[Prompt]:
    """Add held-out evaluation prompts from JSONL lines `{"prompt": "...", "system_prompt"?: "..."}`.

    They are created with `split="eval"` and nothing ever changes a prompt's split, so they can
    be answered by evaluation runs and blind campaigns but never reach generation for
    annotation, snapshots or training.
    """
    require_role(actor, project, STAFF_ROLES)
    rows = []
    for number, record in _parse_jsonl(data):
        text = _text_field(record, "prompt", number)
        system = _text_field(record, "system_prompt", number, required=False)
        rows.append(
            Prompt(
                project=project,
                text=text,
                system_prompt=system,
                split=Split.EVAL,
                metadata={"evaluation": True, **({"id": record["id"]} if "id" in record else {})},
            )
        )
    with transaction.atomic():
        created = Prompt.objects.bulk_create(rows)
        audit_record(actor=actor, action="evaluation.prompts_import", target=project, project=project, details={"count": len(created)})
    return created


def heldout_pairs_import(*, project: Project, actor, data: bytes) -> int:
    """Add labelled held-out pairs for reward-model accuracy: JSONL lines
    `{"prompt": "...", "chosen": "...", "rejected": "..."}` on new evaluation prompts.

    The pairs are pre-labelled (`prelabel="a"`, response A is the chosen one) and never queued
    (`overlap=0`); their prompts are `split="eval"`, so snapshots leave them out.
    """
    require_role(actor, project, STAFF_ROLES)
    parsed = []
    for number, record in _parse_jsonl(data):
        prompt = _text_field(record, "prompt", number)
        chosen = _text_field(record, "chosen", number)
        rejected = _text_field(record, "rejected", number)
        system = _text_field(record, "system_prompt", number, required=False)
        parsed.append((prompt, system, chosen, rejected))
    with transaction.atomic():
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(project=project, text=p, system_prompt=s, split=Split.EVAL, metadata={"evaluation": True, "heldout_pair": True})
                for p, s, _, _ in parsed
            ]
        )
        responses = Response.objects.bulk_create(
            [
                Response(prompt=prompt, text=text, sample_index=i, metadata={"heldout": True})
                for prompt, (_, _, chosen, rejected) in zip(prompts, parsed)
                for i, text in enumerate((chosen, rejected))
            ]
        )
        Pair.objects.bulk_create(
            [
                Pair(
                    project=project,
                    prompt=prompt,
                    response_a=responses[2 * i],
                    response_b=responses[2 * i + 1],
                    overlap=0,
                    is_complete=True,
                    prelabel=Preference.A,
                    source=PairSource.IMPORTED,
                )
                for i, prompt in enumerate(prompts)
            ]
        )
        audit_record(actor=actor, action="evaluation.heldout_pairs_import", target=project, project=project, details={"count": len(parsed)})
    return len(parsed)


def eval_prompt_ids(project: Project, limit: int) -> list[int]:
    """Evaluation prompts answered by policy evaluations (held-out pair prompts excluded: those
    exist to test reward models)."""
    return list(
        Prompt.objects.filter(project=project, split=Split.EVAL)
        .exclude(metadata__has_key="heldout_pair")
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def heldout_pairs(project: Project) -> list[dict]:
    """Labelled pairs on evaluation prompts: (messages, chosen, rejected), label from the
    pre-label, a gold label, or the majority of human judgments (ties and both-bad left out)."""
    from feedback_site.annotation.models import Judgment

    out = []
    pairs = Pair.objects.filter(project=project, prompt__split=Split.EVAL).select_related("prompt", "response_a", "response_b")
    for pair in pairs.order_by("id"):
        label = pair.gold_label or pair.prelabel
        if not label:
            votes = list(Judgment.objects.filter(pair=pair).values_list("preferred", flat=True))
            a, b = votes.count(Preference.A), votes.count(Preference.B)
            label = Preference.A if a > b else Preference.B if b > a else ""
        if label not in (Preference.A, Preference.B):
            continue
        chosen, rejected = (pair.response_a, pair.response_b) if label == Preference.A else (pair.response_b, pair.response_a)
        out.append({"pair_id": pair.pk, "messages": pair.prompt.messages(), "chosen": chosen.text, "rejected": rejected.text})
    return out


# --------------------------------------------------------------------------------------------
# The adversarial suite
# --------------------------------------------------------------------------------------------


def _suite_record(record: dict, number: int) -> dict:
    key = record.get("key")
    if not isinstance(key, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{1,80}", key):
        raise Invalid(f"line {number}: 'key' must be 1-80 letters, digits, '-' or '_'", code="bad_file")
    category = record.get("category")
    if category not in AdversarialCategory.values:
        raise Invalid(f"line {number}: 'category' must be one of {', '.join(AdversarialCategory.values)}", code="bad_file")
    patterns = record.get("flag_patterns", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise Invalid(f"line {number}: 'flag_patterns' must be a list of regular expressions", code="bad_file")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise Invalid(f"line {number}: bad regular expression {pattern!r} ({error})", code="bad_file") from None
    return {
        "key": key,
        "category": category,
        "text": _text_field(record, "prompt", number),
        "system_prompt": _text_field(record, "system_prompt", number, required=False),
        "flag_patterns": patterns,
        "notes": str(record.get("notes", ""))[:500],
    }


def shipped_suite() -> list[dict]:
    return [_suite_record(record, number) for number, record in _parse_jsonl(SUITE_FILE.read_bytes())]


def adversarial_import(*, project: Project, actor, data: bytes | None = None, replace: bool = False) -> int:
    """Load a suite (the shipped file when `data` is None) into the project. Existing keys are
    updated, new ones added; with `replace`, prompts not in the file are deactivated."""
    require_role(actor, project, STAFF_ROLES)
    records = shipped_suite() if data is None else [_suite_record(r, n) for n, r in _parse_jsonl(data)]
    keys = [r["key"] for r in records]
    if len(set(keys)) != len(keys):
        raise Invalid("the suite repeats a key", code="bad_file")
    with transaction.atomic():
        for record in records:
            AdversarialPrompt.objects.update_or_create(
                project=project,
                key=record["key"],
                defaults={**{k: v for k, v in record.items() if k != "key"}, "active": True, "shipped": data is None},
            )
        if replace:
            AdversarialPrompt.objects.filter(project=project).exclude(key__in=keys).update(active=False)
        audit_record(
            actor=actor,
            action="evaluation.adversarial_import",
            target=project,
            project=project,
            details={"count": len(records), "shipped": data is None, "replace": replace},
        )
    return len(records)


def adversarial_update(*, prompt: AdversarialPrompt, actor, **fields) -> AdversarialPrompt:
    require_role(actor, prompt.project_id, STAFF_ROLES)
    allowed = {"text", "system_prompt", "category", "flag_patterns", "notes", "active"}
    unknown = set(fields) - allowed
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}", code="bad_field")
    record = _suite_record(
        {
            "key": prompt.key,
            "category": fields.get("category", prompt.category),
            "prompt": fields.get("text", prompt.text),
            "system_prompt": fields.get("system_prompt", prompt.system_prompt),
            "flag_patterns": fields.get("flag_patterns", prompt.flag_patterns),
            "notes": fields.get("notes", prompt.notes),
        },
        1,
    )
    with transaction.atomic():
        for name in ("category", "text", "system_prompt", "flag_patterns", "notes"):
            setattr(prompt, name, record[name])
        if "active" in fields:
            prompt.active = bool(fields["active"])
        prompt.save()
        audit_record(
            actor=actor, action="evaluation.adversarial_edit", target=prompt, project=prompt.project, details={"fields": sorted(fields)}
        )
    return prompt


def ensure_suite(project: Project) -> None:
    """Seed a project that has no suite yet with the shipped one (system action)."""
    if AdversarialPrompt.objects.filter(project=project).exists():
        return
    for record in shipped_suite():
        AdversarialPrompt.objects.get_or_create(
            project=project, key=record["key"], defaults={**{k: v for k, v in record.items() if k != "key"}, "shipped": True}
        )


# --------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------


def _version(project: Project, version, kind: str, what: str) -> ModelVersion | None:
    if version is None:
        return None
    if isinstance(version, int):
        version = ModelVersion.objects.filter(pk=version).first()
    if version is None or version.project_id != project.pk:
        raise Invalid(f"{what} is not a model version of this project", code=f"bad_{what.replace(' ', '_')}")
    if version.kind != kind:
        raise Invalid(f"{what} must be a {kind} version, {version.label} is not", code=f"bad_{what.replace(' ', '_')}")
    return version


def choose_judge(project: Project, policy: ModelVersion) -> tuple[ModelVersion | None, list[str]]:
    """A reward model to judge `policy`: the newest one it was NOT trained against where one
    exists (judging with the training reward model rewards reward hacking)."""
    run = policy.training_run
    trained_against = run.reward_model_id if run is not None else None
    rewards = ModelVersion.objects.filter(project=project, kind=ModelKind.REWARD).order_by("-number")
    other = rewards.exclude(pk=trained_against).first() if trained_against else rewards.first()
    if other is not None:
        return other, []
    if trained_against:
        return rewards.first(), ["The only reward model is the one this policy was trained against; its win-rate is optimistic."]
    return None, ["The project has no reward model; no win-rate could be judged."]


def evaluation_launch(
    *,
    project: Project,
    policy,
    baseline,
    reward_model=None,
    actor,
    harmlessness_model=None,
    config: dict | None = None,
    trigger: str = EvaluationTrigger.MANUAL,
    training_run=None,
) -> EvaluationRun:
    """Queue an evaluation of `policy` against `baseline` (both policy versions of `project`).

    `reward_model` judges the win-rate; when None, `choose_judge` picks one. `actor=None` is the
    system (the post-training hook or a round). Launching the same thing twice while the first
    is active returns the active run.
    """
    if actor is not None:
        require_role(actor, project, STAFF_ROLES)
    policy = _version(project, policy, ModelKind.POLICY, "policy")
    baseline = _version(project, baseline, ModelKind.POLICY, "baseline")
    if policy is None or baseline is None:
        raise Invalid("policy and baseline are both required", code="missing_version")
    if policy.pk == baseline.pk:
        raise Invalid("policy and baseline must be different versions", code="same_version")
    reward_model = _version(project, reward_model, ModelKind.REWARD, "reward model")
    harmlessness_model = _version(project, harmlessness_model, ModelKind.REWARD, "harmlessness model")
    if harmlessness_model is None and trigger != EvaluationTrigger.MANUAL:
        # Automatic runs keep the harmlessness model staff last chose for this project.
        last = EvaluationRun.objects.filter(project=project, harmlessness_model__isnull=False).order_by("-id").first()
        harmlessness_model = last.harmlessness_model if last is not None else None
    notes: list[str] = []
    if reward_model is None:
        reward_model, notes = choose_judge(project, policy)
    elif policy.training_run is not None and policy.training_run.reward_model_id == reward_model.pk:
        notes.append("Judged by the reward model this policy was trained against; the win-rate is optimistic.")
    config = evaluation_config(config)
    prompt_ids = eval_prompt_ids(project, config["max_prompts"])
    if not prompt_ids:
        raise Invalid("the project has no evaluation prompts yet; import some on the evaluation page first", code="no_eval_prompts")
    config["prompt_ids"] = prompt_ids
    if config["adversarial"]:
        ensure_suite(project)
    reference = policy.parent or policy
    key = _hash(
        {
            "kind": "policy",
            "policy": policy.pk,
            "baseline": baseline.pk,
            "rm": reward_model.pk if reward_model else None,
            "harm": harmlessness_model.pk if harmlessness_model else None,
            "config": config,
        }
    )
    return _create_and_enqueue(
        EvaluationRun(
            project=project,
            kind=EvaluationKind.POLICY,
            policy=policy,
            baseline=baseline,
            reference=reference,
            reward_model=reward_model,
            harmlessness_model=harmlessness_model,
            training_run=training_run,
            trigger=trigger,
            config=config,
            launch_key=key,
            notes=notes,
            created_by=actor if actor is not None and actor.is_authenticated else None,
        ),
        actor,
    )


def reward_evaluation_launch(
    *, project: Project, reward_model, actor, trigger: str = EvaluationTrigger.MANUAL, training_run=None
) -> EvaluationRun:
    """Queue strict pairwise accuracy of a reward-model version on the held-out pairs."""
    if actor is not None:
        require_role(actor, project, STAFF_ROLES)
    reward_model = _version(project, reward_model, ModelKind.REWARD, "reward model")
    if reward_model is None:
        raise Invalid("reward_model is required", code="missing_version")
    if not Pair.objects.filter(project=project, prompt__split=Split.EVAL).exists():
        raise Invalid("the project has no held-out pairs; import some on the evaluation page first", code="no_heldout_pairs")
    config = {"batch_size": 16}
    key = _hash({"kind": "reward", "rm": reward_model.pk})
    return _create_and_enqueue(
        EvaluationRun(
            project=project,
            kind=EvaluationKind.REWARD,
            reward_model=reward_model,
            training_run=training_run,
            trigger=trigger,
            config=config,
            launch_key=key,
            created_by=actor if actor is not None and actor.is_authenticated else None,
        ),
        actor,
    )


def _create_and_enqueue(run: EvaluationRun, actor) -> EvaluationRun:
    try:
        with transaction.atomic():
            run.save()
            if actor is not None:
                audit_record(
                    actor=actor,
                    action="evaluation.launch",
                    target=run,
                    project=run.project,
                    details={"kind": run.kind, "policy": run.policy_id, "baseline": run.baseline_id, "reward_model": run.reward_model_id},
                )
    except IntegrityError:
        existing = EvaluationRun.objects.filter(launch_key=run.launch_key, status__in=ACTIVE).first()
        if existing is None:
            raise
        return existing
    try:
        enqueue(EVALUATION_RUN, run.pk)
    except Exception as error:
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationStatus.FAILED, message=str(getattr(error, "message", error)), finished_at=timezone.now()
        )
        raise
    return run


def evaluation_after_training(*, training_run_id: int) -> EvaluationRun | None:
    """The post-training hook: evaluate what a successful training run registered.

    A policy is evaluated against the project's current policy (or its parent when it is the
    current one), judged by `choose_judge`; a reward model gets its held-out accuracy. Missing
    ingredients (no evaluation prompts, no held-out pairs) skip quietly: they are optional.
    """
    from feedback_site.training.models import TrainingRun

    run = TrainingRun.objects.select_related("project", "output_version").filter(pk=training_run_id).first()
    if run is None or run.output_version is None:
        return None
    version, project = run.output_version, run.project
    try:
        if version.kind == ModelKind.REWARD:
            return reward_evaluation_launch(
                project=project, reward_model=version, actor=None, trigger=EvaluationTrigger.TRAINING, training_run=run
            )
        baseline = project.current_policy if project.current_policy_id not in (None, version.pk) else version.parent
        if baseline is None:
            return None
        return evaluation_launch(
            project=project, policy=version, baseline=baseline, actor=None, trigger=EvaluationTrigger.TRAINING, training_run=run
        )
    except Invalid as error:
        log.info("no evaluation after training run %s: %s", training_run_id, error.message)
        return None


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------


def evaluation_claim(*, run_id: int) -> EvaluationRun | None:
    """Mark the run running (again, after a redelivery) or return None when it is finished."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return None
        run.status = EvaluationStatus.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["status", "attempts", "started_at"])
    return EvaluationRun.objects.select_related("policy", "baseline", "reference", "reward_model", "harmlessness_model", "project").get(
        pk=run_id
    )


def evaluation_succeed(*, run_id: int, results: dict, samples: list[dict], notes: list[str] | None = None) -> EvaluationRun:
    """Store results and samples in one transaction. Idempotent: a finished run is left alone."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run_id)
        if run.status == EvaluationStatus.SUCCEEDED:
            return run
        EvaluationSample.objects.filter(run=run).delete()
        EvaluationSample.objects.bulk_create([EvaluationSample(run=run, **sample) for sample in samples])
        run.results = results
        run.notes = list(run.notes or []) + list(notes or [])
        run.status = EvaluationStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.message = ""
        run.save(update_fields=["results", "notes", "status", "finished_at", "message"])
        return run


def evaluation_fail(*, run_id: int, message: str) -> None:
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return
        run.status = EvaluationStatus.FAILED
        run.message = message[:4000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])


# --------------------------------------------------------------------------------------------
# Reading and review
# --------------------------------------------------------------------------------------------


def evaluation_get(*, run_id: int, actor) -> EvaluationRun:
    run = (
        EvaluationRun.objects.select_related(
            "project", "policy", "baseline", "reference", "reward_model", "harmlessness_model", "training_run"
        )
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound("No such evaluation run.")
    require_role(actor, run.project_id, STAFF_ROLES)
    return run


def sample_review(*, sample_id: int, actor, note: str = "", reviewed: bool = True) -> EvaluationSample:
    sample = EvaluationSample.objects.select_related("run").filter(pk=sample_id).first()
    if sample is None:
        raise NotFound("No such evaluation sample.")
    require_role(actor, sample.run.project_id, STAFF_ROLES)
    if not sample.flagged:
        raise Conflict("Only flagged answers go through review.", code="not_flagged")
    if len(note) > 1000:
        raise Invalid("note must be at most 1000 characters", code="bad_note")
    with transaction.atomic():
        sample.reviewed = reviewed
        sample.reviewed_by = actor if reviewed else None
        sample.reviewed_at = timezone.now() if reviewed else None
        sample.review_note = note
        sample.save(update_fields=["reviewed", "reviewed_by", "reviewed_at", "review_note"])
        audit_record(
            actor=actor, action="evaluation.review", target=sample, project=sample.run.project, details={"reviewed": reviewed, "note": note}
        )
    return sample


def review_queue(project: Project, *, include_reviewed: bool = False):
    qs = EvaluationSample.objects.filter(run__project=project, flagged=True).select_related(
        "run", "run__policy", "adversarial_prompt", "reviewed_by"
    )
    if not include_reviewed:
        qs = qs.filter(reviewed=False)
    return qs.order_by("reviewed", "-run_id", "id")


SAMPLE_SET_CHOICES = SampleSet
