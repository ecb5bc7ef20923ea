"""Every write of the closed loop: simulated annotators and their runs, blind A/B campaigns, rounds.

Simulated annotators judge through the same services as people (`assignment_next`,
`judgment_submit`): they take the same queue, leases and overlap rules, and their judgments are
ordinary rows. Only `Membership.is_simulated` tells them apart, and statistics (snapshots by
default, the human leaderboard, campaign results) leave them out.

Rounds are advanced by `round_advance`, called by a Celery task that re-schedules itself while
the round is active (and by hand from the round page). Advancing is idempotent: a caller first
claims the round with a conditional UPDATE on `claimed_at`, so two concurrent callers never both
launch the next stage; each stage's launch is recorded on the round before the next call looks
at it, and a stage whose launched job is still running leaves the round where it is. A claim
older than `CLAIM_SECONDS` (a worker died mid-advance) may be taken over.
"""

from __future__ import annotations

import logging
import math
import random
import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from feedback_site.annotation.models import DisplayChoice, Judgment, Pair, PairSource, Prompt, Response, Split
from feedback_site.core.audit import audit_record
from feedback_site.core.configs import build_config
from feedback_site.core.errors import Conflict, Invalid, NotFound, ServiceError
from feedback_site.core.queue import enqueue
from feedback_site.loop.config import RoundConfig
from feedback_site.loop.models import (
    Campaign,
    CampaignPair,
    CampaignStatus,
    JobStatus,
    Round,
    SimulatedAnnotator,
    SimulatedRule,
    SimulationRun,
    Stage,
)
from feedback_site.projects.models import Membership, Project, Role
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.generation import SamplingConfig
from rlhf.training import METHODS_NEEDING_REWARD
from workers.task_names import LOOP_ADVANCE_ROUND, LOOP_CAMPAIGN_RESPONSES, LOOP_SIMULATE_JUDGMENTS, LOOP_SIMULATE_WITH_REWARD_MODEL

log = logging.getLogger(__name__)

CLAIM_SECONDS = 600


def _actor_or_system(actor, project) -> None:
    # actor=None is the system itself (a round's driver); people must be staff.
    if actor is not None:
        require_role(actor, project, STAFF_ROLES)


def _user_or_none(actor):
    return actor if (actor is not None and actor.is_authenticated) else None


# ---------------------------------------------------------------------------------------------
# Simulated annotators
# ---------------------------------------------------------------------------------------------


def simulated_annotator_create(
    *,
    project: Project,
    actor,
    name: str,
    rule: str,
    noise: float = 0.1,
    seed: int = 0,
    keyword: str = "",
    tie_policy: str = "random",
    reward_model: ModelVersion | int | None = None,
) -> SimulatedAnnotator:
    """A simulated annotator: a user with an annotator membership marked `is_simulated`."""
    from rlhf.simulated import SimulatedAnnotator as Rule  # stdlib only: safe in the web process

    require_role(actor, project, STAFF_ROLES)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("name must be 1 to 100 characters", code="bad_name")
    build_config(Rule, {"rule": rule, "noise": noise, "seed": seed, "keyword": keyword, "tie_policy": tie_policy})
    if rule == SimulatedRule.REWARD_MODEL:
        if isinstance(reward_model, int):
            reward_model = ModelVersion.objects.filter(pk=reward_model).first()
        if reward_model is None or reward_model.project_id != project.pk or reward_model.kind != ModelKind.REWARD:
            raise Invalid("the reward_model rule needs a reward-model version of this project", code="bad_reward_model")
    else:
        reward_model = None
    User = get_user_model()
    base = "sim-p%d-%s" % (project.pk, re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "annotator")
    with transaction.atomic():
        if SimulatedAnnotator.objects.filter(project=project, name=name).exists():
            raise Conflict(f"this project already has a simulated annotator named {name!r}", code="duplicate_name")
        username, n = base, 1
        while User.objects.filter(username=username).exists():
            n += 1
            username = f"{base}-{n}"
        user = User(username=username, first_name=f"[simulated] {name}"[:150])
        user.set_unusable_password()
        user.save()
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR, is_simulated=True)
        annotator = SimulatedAnnotator.objects.create(
            project=project,
            user=user,
            name=name,
            rule=rule,
            noise=float(noise),
            seed=seed,
            keyword=keyword,
            tie_policy=tie_policy,
            reward_model=reward_model,
            created_by=_user_or_none(actor),
        )
        audit_record(
            actor=actor,
            action="simulated_annotator.create",
            target=annotator,
            project=project,
            details={"rule": rule, "noise": noise, "seed": seed, "keyword": keyword, "user_id": user.pk},
        )
    return annotator


def simulation_launch(*, annotator: SimulatedAnnotator, target: int, actor) -> SimulationRun:
    """Queue "judge up to `target` pairs of the project" for a simulated annotator."""
    _actor_or_system(actor, annotator.project)
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= 100_000:
        raise Invalid("target must be an integer between 1 and 100000", code="bad_target")
    run = SimulationRun.objects.create(annotator=annotator, target=target, created_by=_user_or_none(actor))
    task = LOOP_SIMULATE_WITH_REWARD_MODEL if annotator.rule == SimulatedRule.REWARD_MODEL else LOOP_SIMULATE_JUDGMENTS
    try:
        enqueue(task, run.pk)
    except ServiceError as error:
        simulation_finish(run_id=run.pk, status=JobStatus.FAILED, message=error.message)
        raise
    return run


def simulation_claim(*, run_id: int) -> SimulationRun | None:
    with transaction.atomic():
        run = (
            SimulationRun.objects.select_for_update(of=("self",))
            .select_related("annotator", "annotator__user", "annotator__reward_model")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return None
        run.status = JobStatus.RUNNING
        run.save(update_fields=["status"])
        return run


def simulation_finish(*, run_id: int, status: str, message: str = "") -> None:
    SimulationRun.objects.filter(pk=run_id).exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).update(
        status=status, message=message[:2000], finished_at=timezone.now()
    )


def display_choice(preferred: str, swapped: bool) -> str:
    """The click that records canonical `preferred` ("a", "b", "tie") on a page shown `swapped`."""
    if preferred == "tie":
        return DisplayChoice.TIE
    a_on_left = not swapped
    return DisplayChoice.LEFT if (preferred == "a") == a_on_left else DisplayChoice.RIGHT


def simulation_execute(*, run_id: int, scorer=None) -> SimulationRun | None:
    """Worker side: lease pairs and judge them until `target` judgments or an empty queue.

    `scorer(prompt_messages, text_a, text_b) -> (score_a, score_b)` is given by the worker for
    reward-model annotators; rule annotators score with `rlhf.simulated`. Each judgment and the
    run's counter are written in one transaction, so a redelivered task continues where the
    first stopped and never judges more than `target` pairs in total.
    """
    from feedback_site.annotation.services import assignment_next, judgment_submit
    from rlhf.simulated import SimulatedAnnotator as Rule

    run = simulation_claim(run_id=run_id)
    if run is None:
        return None
    annotator = run.annotator
    rule = Rule(**annotator.annotator_config())
    user, project_id = annotator.user, annotator.project_id
    done = run.done
    try:
        while done < run.target:
            leased = assignment_next(project=project_id, annotator=user)
            if leased is None:
                break
            assignment = leased.assignment
            pair = Pair.objects.select_related("prompt", "response_a", "response_b").get(pk=assignment.pair_id)
            if annotator.rule == SimulatedRule.REWARD_MODEL:
                if scorer is None:
                    raise RuntimeError("a reward-model annotator needs a scorer (run it on the gpu queue)")
                score_a, score_b = scorer(pair.prompt.messages(), pair.response_a.text, pair.response_b.text)
                preferred = rule.judge_scores(score_a, score_b, key=pair.pk)
            else:
                preferred = rule.judge(pair.prompt.text, pair.response_a.text, pair.response_b.text, key=pair.pk)
            with transaction.atomic():
                _, created = judgment_submit(
                    assignment_id=assignment.pk,
                    annotator=user,
                    choice=display_choice(preferred, assignment.swapped),
                    rationale=f"simulated: {rule.description}",
                )
                if created:
                    SimulationRun.objects.filter(pk=run.pk).update(done=F("done") + 1)
                    done += 1
    except Exception as error:
        simulation_finish(run_id=run.pk, status=JobStatus.FAILED, message=f"{error.__class__.__name__}: {error}")
        raise
    note = "" if done >= run.target else f"the queue had no more pairs for this annotator after {done} judgments"
    simulation_finish(run_id=run.pk, status=JobStatus.SUCCEEDED, message=note)
    return SimulationRun.objects.get(pk=run.pk)


# ---------------------------------------------------------------------------------------------
# Blind A/B campaigns
# ---------------------------------------------------------------------------------------------


def _policy(project: Project, version, what: str) -> ModelVersion:
    if isinstance(version, int):
        version = ModelVersion.objects.filter(pk=version).first()
    if version is None or version.project_id != project.pk or version.kind != ModelKind.POLICY:
        raise Invalid(f"{what} must be a policy version of this project", code=f"bad_{what}")
    return version


def campaign_launch(
    *,
    project: Project,
    actor,
    version_x,
    version_y,
    name: str = "",
    max_prompts: int = 100,
    overlap: int = 1,
    prompt_ids: list[int] | None = None,
    **sampling,
) -> Campaign:
    """Freeze the prompt set (the project's evaluation prompts, or `prompt_ids` among them) and
    queue the generation of one answer per prompt from each version."""
    require_role(actor, project, STAFF_ROLES)
    x, y = _policy(project, version_x, "version_x"), _policy(project, version_y, "version_y")
    if x.pk == y.pk:
        raise Invalid("pick two different policy versions", code="same_version")
    sampling = build_config(SamplingConfig, sampling).to_dict()
    for label, value, high in (("max_prompts", max_prompts, 10_000), ("overlap", overlap, 20)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise Invalid(f"{label} must be an integer between 1 and {high}", code=f"bad_{label}")
    prompts = Prompt.objects.filter(project=project, split=Split.EVAL)
    if prompt_ids is not None:
        if not isinstance(prompt_ids, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in prompt_ids):
            raise Invalid("prompt_ids must be a list of prompt ids", code="bad_prompt_ids")
        prompts = prompts.filter(pk__in=prompt_ids)
        found = set(prompts.values_list("pk", flat=True))
        missing = [p for p in prompt_ids if p not in found]
        if missing:
            raise Invalid(f"prompt {missing[0]} is not an evaluation prompt of this project", code="bad_prompt_ids")
    ids = list(prompts.order_by("id").values_list("pk", flat=True)[:max_prompts])
    if not ids:
        raise Invalid("the project has no evaluation prompts; import some on the evaluation page first", code="no_eval_prompts")
    name = (name or "").strip()[:200] or f"{x.label} vs {y.label}"
    with transaction.atomic():
        campaign = Campaign.objects.create(
            project=project,
            name=name,
            version_x=x,
            version_y=y,
            prompt_ids=ids,
            sampling=sampling,
            overlap=overlap,
            created_by=_user_or_none(actor),
        )
        audit_record(
            actor=actor,
            action="campaign.launch",
            target=campaign,
            project=project,
            details={"version_x": x.pk, "version_y": y.pk, "prompts": len(ids)},
        )
    try:
        enqueue(LOOP_CAMPAIGN_RESPONSES, campaign.pk)
    except ServiceError as error:
        campaign_fail(campaign_id=campaign.pk, message=error.message)
        raise
    return campaign


def campaign_complete(*, campaign_id: int, responses: dict[int, dict[int, str]]) -> Campaign:
    """Worker side: store both versions' answers and queue one pair per prompt, A/B at random.

    `responses` maps version id -> prompt id -> text. All or nothing; a campaign that already
    has its pairs is returned unchanged (idempotent on redelivery)."""
    from feedback_site.generation.services import storable_text

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().select_related("project").get(pk=campaign_id)
        if campaign.status != CampaignStatus.GENERATING:
            return campaign
        x_id, y_id = campaign.version_x_id, campaign.version_y_id
        existing = set(Prompt.objects.filter(pk__in=campaign.prompt_ids).values_list("pk", flat=True))
        made: list[tuple[Pair, bool]] = []
        for prompt_id in campaign.prompt_ids:
            if prompt_id not in existing:
                continue
            try:
                tx, ty = responses[x_id][prompt_id], responses[y_id][prompt_id]
            except KeyError:
                raise Invalid(f"prompt {prompt_id} lacks an answer from one of the versions", code="incomplete") from None
            if tx == ty:
                continue  # identical answers compare nothing
            rx = Response.objects.create(prompt_id=prompt_id, text=storable_text(tx), model_version_id=x_id)
            ry = Response.objects.create(prompt_id=prompt_id, text=storable_text(ty), model_version_id=y_id)
            x_is_a = random.Random(f"{campaign.sampling.get('seed', 0)}:{campaign.pk}:{prompt_id}").random() < 0.5
            a, b = (rx, ry) if x_is_a else (ry, rx)
            pair = Pair.objects.create(
                project=campaign.project,
                prompt_id=prompt_id,
                response_a=a,
                response_b=b,
                overlap=campaign.overlap,
                source=PairSource.GENERATED,
            )
            made.append((pair, x_is_a))
        CampaignPair.objects.bulk_create([CampaignPair(campaign=campaign, pair=p, x_is_a=x) for p, x in made])
        campaign.status = CampaignStatus.ANNOTATING
        campaign.pair_count = len(made)
        campaign.message = f"{len(made)} pairs queued for annotators."
        campaign.save(update_fields=["status", "pair_count", "message"])
        return campaign


def campaign_fail(*, campaign_id: int, message: str) -> None:
    Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.GENERATING).update(status=CampaignStatus.FAILED, message=message[:2000])


def campaign_get(*, campaign_id: int, actor) -> Campaign:
    campaign = Campaign.objects.select_related("project", "version_x", "version_y").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("No such campaign.")
    require_role(actor, campaign.project_id, STAFF_ROLES)
    return campaign


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (95% by default); (None, None) when n is 0."""
    if n == 0:
        return None, None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 (or n) successes the bound is exactly 0 (or 1); centre - half leaves a rounding
    # residue (2.8e-17 for 0 of 7) that would put the interval's low end above the share.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def campaign_results(campaign: Campaign, *, include_simulated: bool = False) -> dict:
    """Win / tie / loss of version X against version Y over the campaign's judgments.

    Each judgment counts once (pairs with overlap > 1 contribute several). "Both bad" answers
    are counted apart and left out of the rates. Each share has a 95% Wilson interval; the
    win-rate (ties count half) has a 95% percentile-bootstrap interval (`rlhf.stats.win_rate`,
    resampling judgments). Simulated annotators are left out unless `include_simulated`.
    """
    from rlhf.stats import win_rate

    simulated = Membership.objects.filter(project_id=campaign.project_id, is_simulated=True).values("user_id")
    judgments = Judgment.objects.filter(pair__campaign_link__campaign=campaign)
    if not include_simulated:
        judgments = judgments.exclude(annotator_id__in=simulated)
    rows = list(judgments.values_list("preferred", "pair__campaign_link__x_is_a"))
    outcomes: list[float] = []
    both_bad = 0
    for preferred, x_is_a in rows:
        if preferred == "both_bad":
            both_bad += 1
        elif preferred == "tie":
            outcomes.append(0.5)
        else:
            outcomes.append(1.0 if (preferred == "a") == x_is_a else 0.0)
    n = len(outcomes)
    wins, ties = outcomes.count(1.0), outcomes.count(0.5)
    losses = n - wins - ties
    shares = {}
    for label, count in (("win", wins), ("tie", ties), ("loss", losses)):
        low, high = wilson_interval(count, n)
        shares[label] = {"count": count, "share": count / n if n else None, "low": low, "high": high}
    rate = win_rate(outcomes, n_resamples=2000, seed=0)
    judged_pairs = Pair.objects.filter(campaign_link__campaign=campaign, judgment_count__gt=0).count()
    return {
        "judgments": n,
        "both_bad": both_bad,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "shares": shares,
        "win_rate": rate["win_rate"],
        "win_rate_low": rate["low"],
        "win_rate_high": rate["high"],
        "pairs": campaign.pair_count,
        "pairs_judged": judged_pairs,
        "include_simulated": include_simulated,
    }


# ---------------------------------------------------------------------------------------------
# Rounds
# ---------------------------------------------------------------------------------------------


def round_config(values: dict | None) -> dict:
    """A round's settings, defaults filled in and checked by `RoundConfig`; errors name the field."""
    return build_config(RoundConfig, values).to_dict()


def round_start(
    *, project: Project, actor, simulated_annotator: SimulatedAnnotator | int | None = None, config: dict | None = None
) -> Round:
    """Start the next round from the project's current policy and queue its driver."""
    require_role(actor, project, STAFF_ROLES)
    config = round_config(config)
    if isinstance(simulated_annotator, int):
        simulated_annotator = SimulatedAnnotator.objects.filter(pk=simulated_annotator).first()
        if simulated_annotator is None:
            raise Invalid("no such simulated annotator", code="bad_simulated_annotator")
    if simulated_annotator is not None and simulated_annotator.project_id != project.pk:
        raise Invalid("the simulated annotator belongs to another project", code="bad_simulated_annotator")
    project = Project.objects.select_related("current_policy").get(pk=project.pk)
    if project.current_policy is None:
        raise Invalid("the project has no current policy to start from", code="no_policy")
    try:
        with transaction.atomic():
            number = (Round.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            rnd = Round.objects.create(
                project=project,
                number=number,
                config=config,
                policy=project.current_policy,
                simulated_annotator=simulated_annotator,
                created_by=actor,
                history=[{"stage": Stage.GENERATE, "at": timezone.now().isoformat(), "note": "round started"}],
            )
            audit_record(
                actor=actor,
                action="round.start",
                target=rnd,
                project=project,
                details={"number": number, "policy": project.current_policy_id, "method": config["method"]},
            )
    except IntegrityError:
        raise Conflict("this project already has an active round; finish it first", code="round_active") from None
    _schedule(rnd.pk)
    return rnd


def _schedule(round_id: int) -> None:
    try:
        enqueue(LOOP_ADVANCE_ROUND, round_id)
    except ServiceError as error:
        # The round exists; the periodic driver (or the Advance button) picks it up later.
        Round.objects.filter(pk=round_id).update(message=f"driver not queued: {error.message}")


def _note(rnd: Round, stage: str, note: str) -> None:
    rnd.history = [*rnd.history, {"stage": stage, "at": timezone.now().isoformat(), "note": note}][-100:]


def _move(rnd: Round, stage: str, note: str, **fields) -> None:
    for name, value in fields.items():
        setattr(rnd, name, value)
    rnd.stage = stage
    if stage != Stage.FAILED:
        rnd.message = ""
    _note(rnd, stage, note)
    rnd.save(update_fields=["stage", "history", "message", "updated_at", *fields])


def _set(rnd: Round, **fields) -> None:
    for name, value in fields.items():
        setattr(rnd, name, value)
    rnd.save(update_fields=[*fields, "updated_at"])


def _fail(rnd: Round, message: str) -> None:
    rnd.message = message[:2000]
    _move(rnd, Stage.FAILED, message[:500])


def round_advance(*, round_id: int, now=None) -> Round | None:
    """Move a round through every stage that is ready; launch what the next stage needs.

    Safe to call any number of times from anywhere: only the caller holding the claim acts.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=CLAIM_SECONDS)
    claimed = (
        Round.objects.filter(pk=round_id)
        .exclude(stage__in=[Stage.DONE, Stage.FAILED])
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
        .update(claimed_at=now)
    )
    if not claimed:
        return Round.objects.filter(pk=round_id).first()
    rnd = Round.objects.select_related("project", "policy", "simulated_annotator").get(pk=round_id)
    try:
        for _ in range(len(Stage.values)):
            if rnd.is_terminal or not _step(rnd):
                break
    except ServiceError as error:
        _fail(rnd, f"{rnd.get_stage_display()} failed: {error.message}")
    finally:
        Round.objects.filter(pk=round_id, claimed_at=now).update(claimed_at=None)
    rnd.refresh_from_db()
    return rnd


def _step(rnd: Round) -> bool:
    """One stage: True when the round moved on (so the next stage may be looked at now)."""
    return {
        Stage.GENERATE: _stage_generate,
        Stage.ANNOTATE: _stage_annotate,
        Stage.SNAPSHOT: _stage_snapshot,
        Stage.TRAIN: _stage_train,
        Stage.EVALUATE: _stage_evaluate,
        Stage.PROMOTE: _stage_promote,
    }[rnd.stage](rnd)


def _stage_generate(rnd: Round) -> bool:
    from feedback_site.generation.models import RunStatus
    from feedback_site.generation.services import generation_launch

    cfg = rnd.config
    if rnd.generation_run_id is None:
        run = generation_launch(
            project=rnd.project,
            actor=rnd.created_by,
            policy=rnd.policy,
            prompt_selection="unanswered",
            k=cfg["k"],
            temperature=cfg["temperature"],
            max_new_tokens=cfg["max_new_tokens"],
            seed=cfg["seed"] + rnd.number,
            batch_size=cfg["batch_size"],
        )
        _set(rnd, generation_run=run)
        _note(rnd, Stage.GENERATE, f"generation run {run.pk} launched")
        rnd.save(update_fields=["history"])
        return False
    run = rnd.generation_run
    run.refresh_from_db()
    if run.status == RunStatus.SUCCEEDED:
        if run.pair_count == 0:
            _fail(rnd, f"generation run {run.pk} produced no pairs to annotate")
            return False
        _move(rnd, Stage.ANNOTATE, f"{run.response_count} responses, {run.pair_count} pairs")
        return True
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        _fail(rnd, f"generation run {run.pk} {run.status}: {run.message}")
    return False


def _round_pairs(rnd: Round):
    return Pair.objects.filter(generation_run_id=rnd.generation_run_id, is_gold=False)


def _stage_annotate(rnd: Round) -> bool:
    pairs = _round_pairs(rnd)
    sim = rnd.simulated_annotator
    if sim is None:
        remaining = pairs.filter(is_complete=False, overlap__gt=0).count()
        if remaining:
            return False
        _move(rnd, Stage.SNAPSHOT, "every pair has its judgments")
        return True
    unjudged = pairs.exclude(Exists(Judgment.objects.filter(pair=OuterRef("pk"), annotator_id=sim.user_id))).count()
    if unjudged == 0:
        _move(rnd, Stage.SNAPSHOT, f"simulated annotator {sim.name} judged every pair")
        return True
    run = rnd.simulation_run
    if run is not None:
        run.refresh_from_db()
        if run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            return False
        if run.status == JobStatus.FAILED:
            _fail(rnd, f"simulation run {run.pk} failed: {run.message}")
            return False
    # None yet, or the last one ran out of its target (it may have judged other pairs first).
    run = simulation_launch(annotator=sim, target=unjudged, actor=None)
    _set(rnd, simulation_run=run)
    return False


def _stage_snapshot(rnd: Round) -> bool:
    from feedback_site.snapshots.services import snapshot_create

    options = {"include_simulated": True} if rnd.simulated_annotator_id else None
    snapshot, _ = snapshot_create(project=rnd.project, actor=rnd.created_by, note=f"round {rnd.number}", options=options)
    _move(rnd, Stage.TRAIN, f"snapshot {snapshot.pk}", snapshot=snapshot)
    return True


def _stage_train(rnd: Round) -> bool:
    from feedback_site.training.models import TrainingStatus
    from feedback_site.training.services import training_launch

    cfg = rnd.config
    method = cfg["method"]
    reward_version = None
    if method in METHODS_NEEDING_REWARD:
        if rnd.reward_run_id is None:
            run, _ = training_launch(
                project=rnd.project,
                actor=rnd.created_by,
                method="reward",
                snapshot=rnd.snapshot,
                parent=rnd.policy,
                config=cfg["reward_training"],
            )
            _set(rnd, reward_run=run)
            return False
        reward = rnd.reward_run
        reward.refresh_from_db()
        if reward.status in (TrainingStatus.FAILED, TrainingStatus.CANCELLED):
            _fail(rnd, f"reward-model training run {reward.pk} {reward.status}: {reward.message}")
            return False
        if reward.status != TrainingStatus.SUCCEEDED:
            return False
        reward_version = reward.output_version
    if rnd.training_run_id is None:
        run, _ = training_launch(
            project=rnd.project,
            actor=rnd.created_by,
            method=method,
            snapshot=rnd.snapshot,
            parent=rnd.policy,
            reward_model=reward_version,
            config=cfg["training"],
        )
        _set(rnd, training_run=run)
        return False
    run = rnd.training_run
    run.refresh_from_db()
    if run.status in (TrainingStatus.FAILED, TrainingStatus.CANCELLED):
        _fail(rnd, f"training run {run.pk} {run.status}: {run.message}")
        return False
    if run.status != TrainingStatus.SUCCEEDED or run.output_version_id is None:
        return False
    _move(rnd, Stage.EVALUATE, f"{run.output_version.label} registered", output_version=run.output_version)
    return True


def _stage_evaluate(rnd: Round) -> bool:
    from feedback_site.evaluation.models import EvaluationKind, EvaluationRun, EvaluationStatus, EvaluationTrigger
    from feedback_site.evaluation.services import evaluation_launch

    if rnd.evaluation_run_id is None:
        # The post-training hook may already have launched the same comparison; reuse it.
        run = (
            EvaluationRun.objects.filter(kind=EvaluationKind.POLICY, policy=rnd.output_version, baseline=rnd.policy)
            .exclude(status=EvaluationStatus.FAILED)
            .order_by("-id")
            .first()
        )
        if run is None:
            try:
                run = evaluation_launch(
                    project=rnd.project,
                    policy=rnd.output_version,
                    baseline=rnd.policy,
                    actor=None,
                    config=rnd.config["evaluation"],
                    trigger=EvaluationTrigger.ROUND,
                    training_run=rnd.training_run,
                )
            except Invalid as error:
                _move(rnd, Stage.PROMOTE, f"no automated evaluation ({error.message}); promotion is by hand")
                return True
        _set(rnd, evaluation_run=run)
        return False
    run = rnd.evaluation_run
    run.refresh_from_db()
    if run.status in (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING):
        return False
    if run.status == EvaluationStatus.FAILED:
        _move(rnd, Stage.PROMOTE, f"evaluation {run.pk} failed ({run.message[:200]}); promotion is by hand")
        return True
    rate = run.win_rate or {}
    _move(rnd, Stage.PROMOTE, f"evaluation {run.pk}: win-rate {rate.get('win_rate')} [{rate.get('low')}, {rate.get('high')}]")
    return True


def auto_promotion_decision(rnd: Round) -> bool | None:
    """The automatic rule: True (promote) when the lower bound of the win-rate CI of the new
    policy over the round's starting policy is above 50%, False when an evaluation judged it and
    the bound is not, None when there is no judged win-rate (a person decides)."""
    run = rnd.evaluation_run
    if run is None or run.status != "succeeded":
        return None
    rate = run.win_rate or {}
    if rate.get("low") is None:
        return None
    return float(rate["low"]) > 0.5


def _stage_promote(rnd: Round) -> bool:
    from feedback_site.registry.services import version_promote

    if rnd.promoted is None and rnd.config["promotion"] == "auto":
        decision = auto_promotion_decision(rnd)
        if decision is True:
            low = rnd.evaluation_run.win_rate["low"]
            version_promote(rnd.project, rnd.output_version, None, reason=f"round {rnd.number}: win-rate lower bound {low:.3f} > 0.5")
            _set(rnd, promoted=True)
        elif decision is False:
            _set(rnd, promoted=False)
            _note(rnd, Stage.PROMOTE, "kept the current policy: the win-rate lower bound is not above 50%")
    if rnd.promoted is None:
        return False  # waiting for a person (round_decide)
    _move(rnd, Stage.DONE, "promoted" if rnd.promoted else "not promoted")
    remaining = rnd.config.get("rounds", 1) - 1
    if remaining >= 1 and rnd.created_by is not None:
        nxt = round_start(
            project=rnd.project,
            actor=rnd.created_by,
            simulated_annotator=rnd.simulated_annotator,
            config={**rnd.config, "rounds": remaining},
        )
        _note(rnd, Stage.DONE, f"round {nxt.number} started")
        rnd.save(update_fields=["history"])
    return False


def round_decide(*, round: Round, actor, promote: bool, reason: str = "") -> Round:
    """A person's promotion decision for a round waiting in the promote stage."""
    from feedback_site.registry.services import version_promote

    require_role(actor, round.project_id, STAFF_ROLES)
    with transaction.atomic():
        rnd = Round.objects.select_for_update().select_related("project").get(pk=round.pk)
        if rnd.stage != Stage.PROMOTE or rnd.output_version_id is None:
            raise Conflict(f"round {rnd.number} is not waiting for a promotion decision (stage {rnd.stage})", code="not_promotable")
        if rnd.promoted is not None:
            return rnd
        if promote:
            version_promote(rnd.project, rnd.output_version, actor, reason=reason or f"round {rnd.number}")
        rnd.promoted = bool(promote)
        _note(rnd, Stage.PROMOTE, ("promoted by " if promote else "kept the current policy, decided by ") + actor.get_username())
        rnd.save(update_fields=["promoted", "history", "updated_at"])
    return round_advance(round_id=rnd.pk)


def round_get(*, round_id: int, actor) -> Round:
    rnd = (
        Round.objects.select_related(
            "project",
            "policy",
            "simulated_annotator",
            "generation_run",
            "simulation_run",
            "snapshot",
            "reward_run",
            "training_run",
            "evaluation_run",
            "output_version",
        )
        .filter(pk=round_id)
        .first()
    )
    if rnd is None:
        raise NotFound("No such round.")
    require_role(actor, rnd.project_id, STAFF_ROLES)
    return rnd


def active_round_ids() -> list[int]:
    return list(Round.objects.exclude(stage__in=[Stage.DONE, Stage.FAILED]).values_list("pk", flat=True))
