"""Every write to generation runs: launch, progress, completion, failure, cancel.

The worker calls these; it never writes rows itself. Completion writes all responses and pairs
of a run in one transaction, so a run produces its whole output or none.
"""

from __future__ import annotations

import itertools
import random

from django.db import transaction
from django.utils import timezone

from feedback_site.annotation.models import Pair, PairSource, Prompt, Response, Split
from feedback_site.core.configs import build_config
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.core.queue import enqueue
from feedback_site.generation.config import PairingConfig
from feedback_site.generation.models import GenerationRun, Pairing, RunStatus
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.rankings.services import queue_answer_sets
from feedback_site.ratings.services import queue_for_rating
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.config import canonical_hash
from rlhf.generation import SamplingConfig
from workers.task_names import GENERATION_RUN

LOG_TAIL_CHARS = 8000


def validate_generation_settings(**values) -> dict:
    """Sampling (`rlhf.generation.SamplingConfig`) and pairing (`PairingConfig`) settings, each
    checked by its dataclass before anything is queued; `Invalid` names the field (`bad_<field>`)."""
    pairing_names = {spec.name for spec in PairingConfig.field_specs()}
    pairing = build_config(PairingConfig, {key: value for key, value in values.items() if key in pairing_names})
    sampling = build_config(SamplingConfig, {key: value for key, value in values.items() if key not in pairing_names})
    return {**sampling.to_dict(), **pairing.to_dict()}


def generation_launch(
    *,
    project: Project,
    actor,
    policy: ModelVersion | None = None,
    prompt_selection: str = "unanswered",
    k: int = 2,
    pairing: str = Pairing.ALL,
    pairs_per_prompt: int | None = None,
    rate_answers: bool = False,
    **sampling,
) -> GenerationRun:
    """Freeze the prompts and settings of a run, then queue it after the transaction commits.

    prompt_selection: "unanswered" (training prompts with no response from this policy yet) or
    "all" (every training prompt). Evaluation prompts are never used for annotation pairs.
    """
    require_role(actor, project, STAFF_ROLES)
    values = validate_generation_settings(k=k, pairing=pairing, pairs_per_prompt=pairs_per_prompt, rate_answers=rate_answers, **sampling)
    policy = policy or project.current_policy
    if policy is None or policy.project_id != project.pk or policy.kind != ModelKind.POLICY:
        raise Invalid("choose a policy version of this project", code="bad_policy")
    if prompt_selection not in ("unanswered", "all"):
        raise Invalid("prompt_selection must be 'unanswered' or 'all'", code="bad_selection")

    prompts = Prompt.objects.filter(project=project, split=Split.TRAIN)
    if prompt_selection == "unanswered":
        prompts = prompts.exclude(responses__model_version=policy)
    prompt_ids = list(prompts.order_by("id").values_list("id", flat=True))
    if not prompt_ids:
        raise Invalid("there are no prompts to answer; import prompts first", code="no_prompts")

    config = {"policy": policy.pk, "prompt_ids": prompt_ids, **values}
    with transaction.atomic():
        run = GenerationRun.objects.create(
            project=project,
            policy=policy,
            created_by=actor,
            prompt_ids=prompt_ids,
            config_hash=canonical_hash(config),
            progress_total=len(prompt_ids),
            **values,
        )
    _enqueue_run(run)
    return run


def _enqueue_run(run: GenerationRun) -> None:
    try:
        enqueue(GENERATION_RUN, run.pk)
    except Exception as error:
        GenerationRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, message=str(getattr(error, "message", error)), finished_at=timezone.now()
        )
        raise


def generation_mark_running(*, run_id: int) -> GenerationRun | None:
    """Called by the worker when it (re)starts a run; None means there is nothing to do."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return None
        if run.cancel_requested:
            run.status, run.finished_at, run.message = RunStatus.CANCELLED, timezone.now(), "Cancelled before it started."
            run.save(update_fields=["status", "finished_at", "message"])
            return None
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["status", "started_at", "updated_at"])
        return run


def generation_report(*, run_id: int, done: int, total: int, tokens_per_second: float | None = None) -> None:
    GenerationRun.objects.filter(pk=run_id).update(
        progress_done=done, progress_total=total, tokens_per_second=tokens_per_second, updated_at=timezone.now()
    )


def generation_log(*, run_id: int, line: str) -> None:
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().only("log_tail").get(pk=run_id)
        stamp = timezone.now().strftime("%H:%M:%S")
        run.log_tail = (run.log_tail + f"{stamp} {line}\n")[-LOG_TAIL_CHARS:]
        run.save(update_fields=["log_tail"])


def generation_cancel_requested(*, run_id: int) -> bool:
    return GenerationRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def storable_text(text: str) -> str:
    """Model output as PostgreSQL can store it: a sampled NUL byte (possible with any byte-level
    tokenizer) becomes U+FFFD instead of failing the whole run."""
    return text.replace("\x00", "\ufffd")


def _pairs_for_prompt(k: int, pairing: str, pairs_per_prompt: int | None, rng: random.Random) -> list[tuple[int, int]]:
    all_pairs = list(itertools.combinations(range(k), 2))
    if pairing == Pairing.SAMPLE and pairs_per_prompt is not None and pairs_per_prompt < len(all_pairs):
        return sorted(rng.sample(all_pairs, pairs_per_prompt))
    return all_pairs


def generation_complete(
    *, run_id: int, responses_by_prompt: dict[int, list[str]], safety_scores: dict[int, list[float]] | None = None
) -> GenerationRun:
    """Write every response and pair of the run in one transaction (idempotent: a run that is
    already finished is returned unchanged). The safety screen runs in the same transaction, so
    no pair is served before its responses are screened; `safety_scores` are the classifier's
    scores per prompt id (one per sample), computed by the worker when the project has one."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().select_related("project").get(pk=run_id)
        if run.is_terminal:
            return run
        # Prompts deleted while the run was going have nothing to attach to and are left out.
        existing_prompts = set(Prompt.objects.filter(pk__in=run.prompt_ids).values_list("pk", flat=True))
        missing = [pid for pid in run.prompt_ids if pid in existing_prompts and pid not in responses_by_prompt]
        if missing:
            raise Invalid(f"{len(missing)} prompt(s) have no responses (first: {missing[0]})", code="incomplete")
        rows: list[Response] = []
        for prompt_id in run.prompt_ids:
            if prompt_id not in existing_prompts:
                continue
            texts = responses_by_prompt[prompt_id]
            if len(texts) != run.k:
                raise Invalid(f"prompt {prompt_id} has {len(texts)} responses, expected {run.k}", code="incomplete")
            rows.extend(
                Response(prompt_id=prompt_id, text=storable_text(text), model_version_id=run.policy_id, generation_run=run, sample_index=i)
                for i, text in enumerate(texts)
            )
        created = Response.objects.bulk_create(rows, batch_size=2000)
        by_prompt: dict[int, list[Response]] = {}
        for response in created:
            by_prompt.setdefault(response.prompt_id, []).append(response)
        pairs: list[Pair] = []
        overlap = run.project.overlap
        for prompt_id, responses in by_prompt.items() if run.pairing != Pairing.RANKING else ():
            rng = random.Random(f"{run.seed}:{prompt_id}")
            for i, j in _pairs_for_prompt(run.k, run.pairing, run.pairs_per_prompt, rng):
                if responses[i].text == responses[j].text:
                    continue  # two identical samples are not a comparison
                pairs.append(
                    Pair(
                        project=run.project,
                        prompt_id=prompt_id,
                        response_a=responses[i],
                        response_b=responses[j],
                        overlap=overlap,
                        source=PairSource.GENERATED,
                        generation_run=run,
                    )
                )
        Pair.objects.bulk_create(pairs, batch_size=4000)
        # After commit: render the new responses' HTML once and refresh the queue's planner statistics.
        from feedback_site.annotation.rendered import pairs_created

        pairs_created(run.project_id)
        from feedback_site.safety.services import screen_responses

        scores = {
            r.pk: safety_scores[r.prompt_id][r.sample_index]
            for r in created
            if safety_scores and r.prompt_id in safety_scores and r.sample_index < len(safety_scores[r.prompt_id])
        }
        screen_responses(project=run.project, responses=created, scores=scores, pairs=pairs)
        ranking_tasks = 0
        if run.pairing == Pairing.RANKING:
            # After the screen, in the same transaction: a hidden answer is never shown.
            answer_sets = [[r.pk for r in responses] for responses in by_prompt.values()]
            ranking_tasks = queue_answer_sets(project=run.project, answer_sets=answer_sets, overlap=overlap, generation_run=run)
        rating_tasks = 0
        if run.rate_answers:
            # After the screen, in the same transaction: a hidden answer is never queued.
            rating_tasks = queue_for_rating(project=run.project, response_ids=[r.pk for r in created], overlap=overlap)
        run.status = RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.progress_done = run.progress_total
        run.response_count = len(created)
        run.pair_count = len(pairs)
        made = f"{ranking_tasks} ranking tasks" if run.pairing == Pairing.RANKING else f"{len(pairs)} pairs"
        run.message = f"{len(created)} responses and {made} created" + (
            f"; {rating_tasks} answers queued for rating." if run.rate_answers else "."
        )
        # In the same write as the status, so a reader never sees a finished run without its last line.
        run.log_tail = (run.log_tail + f"{run.finished_at.strftime('%H:%M:%S')} finished\n")[-LOG_TAIL_CHARS:]
        run.save(
            update_fields=["status", "finished_at", "progress_done", "response_count", "pair_count", "message", "log_tail", "updated_at"]
        )
        return run


def generation_fail(*, run_id: int, message: str, cancelled: bool = False) -> None:
    GenerationRun.objects.filter(pk=run_id).exclude(status__in=[RunStatus.SUCCEEDED]).update(
        status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
        message=message[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def generation_cancel(*, run: GenerationRun, actor) -> GenerationRun:
    require_role(actor, run.project_id, STAFF_ROLES)
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run.pk)
        if run.is_terminal:
            raise Conflict(f"This run already {run.status}.", code="finished")
        run.cancel_requested = True
        fields = ["cancel_requested", "updated_at"]
        if run.status == RunStatus.QUEUED:
            run.status, run.finished_at, run.message = RunStatus.CANCELLED, timezone.now(), "Cancelled before it started."
            fields += ["status", "finished_at", "message"]
        run.save(update_fields=fields)
        return run


def generation_get(*, run_id: int, actor) -> GenerationRun:
    run = GenerationRun.objects.select_related("policy", "project").filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such generation run.")
    require_role(actor, run.project_id, STAFF_ROLES)
    return run
