"""Worker side of the safety screen: classifier scores, computed where the text was generated.

The site decides (rules, threshold, policy) in `feedback_site.safety.services`; what needs torch
(running the classifier, a reward-model version) happens here, in the worker that already has
the text. Models are cached per process (`rlhf.safety.classifier_for`).
"""

from __future__ import annotations

import logging

from feedback_site.safety.services import classifier_target

log = logging.getLogger(__name__)


def classifier_scores(project_id: int, conversations: list[list[dict]], texts: list[str]) -> list[float] | None:
    """Scores of (conversation, response) pairs by the project's classifier, or None without one."""
    target = classifier_target(project_id)
    if target is None or not texts:
        return None
    from feedback_site.registry.models import ModelVersion
    from feedback_site.registry.services import version_model_dir
    from rlhf.safety import classifier_for

    path = version_model_dir(ModelVersion.objects.get(pk=target["version_id"]))
    return classifier_for(path).score(conversations, texts)


def generation_safety_scores(project_id: int, prompts: dict, responses_by_prompt: dict[int, list[str]]) -> dict[int, list[float]] | None:
    """Per prompt id, one classifier score per sampled response (None when the project has no classifier)."""
    if classifier_target(project_id) is None:
        return None
    order = [(pid, texts) for pid, texts in responses_by_prompt.items() if pid in prompts]
    conversations = [prompts[pid].messages() for pid, texts in order for _ in texts]
    flat = [text for _, texts in order for text in texts]
    scores = classifier_scores(project_id, conversations, flat) or []
    out: dict[int, list[float]] = {}
    position = 0
    for pid, texts in order:
        out[pid] = scores[position : position + len(texts)]
        position += len(texts)
    return out
