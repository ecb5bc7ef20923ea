"""Celery tasks of the quality app. `quality.score_pairs` is model work: its spec
(workers/task_names.py) puts it on the `gpu` queue."""

from __future__ import annotations

import logging

from workers.celery_app import task
from workers.task_names import QUALITY_SCORE_PAIRS

log = logging.getLogger(__name__)


def run_score_pairs(project_id: int, reward_model_id: int) -> int:
    """Score every incomplete pair of the project with the reward-model version and set the
    queue priorities (closest scores first). Idempotent: a rerun recomputes the same priorities."""

    from feedback_site.quality import services
    from feedback_site.registry.models import ModelVersion
    from rlhf.scoring import score_pairs

    version = ModelVersion.objects.filter(pk=reward_model_id, project_id=project_id).first()
    if version is None:
        log.warning("score_pairs: reward model %s of project %s is gone; nothing to do", reward_model_id, project_id)
        return 0
    items = services.pairs_to_score(project_id)
    if not items:
        return 0
    from feedback_site.registry.services import version_model_dir

    model_dir = version_model_dir(version)
    scores = score_pairs(model_dir, [(item["messages"], item["a"], item["b"]) for item in items])
    updated = services.uncertainty_apply(
        project_id=project_id,
        reward_model_id=reward_model_id,
        scores={item["pair_id"]: score for item, score in zip(items, scores)},
    )
    log.info("score_pairs: project %s, reward model %s: %s pairs reprioritised", project_id, reward_model_id, updated)
    return updated


@task(QUALITY_SCORE_PAIRS)
def score_pairs_task(project_id: int, reward_model_id: int) -> int:
    return run_score_pairs(project_id, reward_model_id)
