"""Ranking tasks made the way the site makes them: answers of a prompt queued as one answer set,
ranked through the lease queue (rankings.services throughout)."""

from __future__ import annotations

from feedback_site.annotation.models import Prompt, Response
from feedback_site.rankings import services


def make_answer_set(project, question: str, answers: list[str], split: str = "train") -> list[int]:
    prompt = Prompt.objects.create(project=project, text=question, split=split)
    return [Response.objects.create(prompt=prompt, text=text, sample_index=i).pk for i, text in enumerate(answers)]


def ranks_for(order: list[list[int]]) -> list[dict]:
    """The submit body's ranks for tiers of response ids (a tier shares one rank)."""
    return [{"response_id": pk, "rank": rank} for rank, tier in enumerate(order, start=1) for pk in tier]


def rank_next(project, annotator, order_of) -> object:
    """Lease the next answer set and rank it as `order_of(response_ids)` (tiers) says."""
    lease = services.next_task(project=project, annotator=annotator)
    assert lease is not None
    ranking, created = services.submit(assignment_id=lease.pk, annotator=annotator, ranks=ranks_for(order_of(lease.task.response_ids)))
    assert created
    return ranking
