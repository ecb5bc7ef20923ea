"""Demonstration snapshots made the way the site makes them: staff queue tasks, an annotator
leases and submits each one, staff freeze them (demonstrations.services throughout)."""

from __future__ import annotations

from feedback_site.annotation.models import Prompt
from feedback_site.demonstrations import services
from feedback_site.demonstrations.models import DemonstrationSnapshot


def make_demonstration_snapshot(project, *, staff, annotator, items: list[tuple[str, str]]) -> DemonstrationSnapshot:
    """`items` are (question, ideal answer) pairs; `annotator` must be a member of `project`."""
    prompts = [Prompt.objects.create(project=project, text=question, system_prompt="Be brief.") for question, _ in items]
    answers = {prompt.pk: answer for prompt, (_, answer) in zip(prompts, items)}
    services.tasks_create(project=project, actor=staff, mode="write", prompt_ids=list(answers), overlap=1)
    while (lease := services.next_task(project=project, annotator=annotator)) is not None:
        services.submit(assignment_id=lease.pk, annotator=annotator, text=answers[lease.task.prompt_id])
    snapshot, _ = services.snapshot_create(project=project, actor=staff)
    assert snapshot.demonstration_count >= len(items)
    return snapshot


def toy_items(count: int, offset: int = 0) -> list[tuple[str, str]]:
    """Questions whose answers follow one pattern (the topic, then a nice word), so a tiny model
    can learn something from a few steps."""
    topics = [
        "cats",
        "dogs",
        "tea",
        "rain",
        "maps",
        "jazz",
        "code",
        "bread",
        "snow",
        "boats",
        "chess",
        "bees",
        "owls",
        "kites",
        "figs",
        "moss",
    ]
    words = ["lovely", "great", "wonderful", "splendid"]
    return [
        (
            f"Tell me about {topics[(i + offset) % len(topics)]} ({i + offset}).",
            f"{topics[(i + offset) % len(topics)]} are {words[(i + offset) % len(words)]}.",
        )
        for i in range(count)
    ]
