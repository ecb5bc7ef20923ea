"""Rating tasks made the way the site makes them: answers of a project queued for thumbs up /
down, rated through the lease queue by annotators, frozen by staff (ratings.services throughout)."""

from __future__ import annotations

from feedback_site.annotation.models import Prompt, Response


def make_answers(project, items: list[tuple[str, str]], system_prompt: str = "") -> list[Response]:
    """One prompt and one answer per (question, answer) item."""
    answers = []
    for index, (question, answer) in enumerate(items):
        prompt = Prompt.objects.create(project=project, text=question, system_prompt=system_prompt)
        answers.append(Response.objects.create(prompt=prompt, text=answer, sample_index=index))
    return answers


def toy_answers(count: int) -> list[tuple[str, str]]:
    """Answers whose rating is known: kind lowercase words are good, numbers are bad."""
    topics = ["cats", "rain", "tea", "maps", "boats", "owls", "bread", "kites"]
    words = ["good", "nice", "kind", "calm"]
    items = []
    for i in range(count):
        topic = topics[i % len(topics)]
        answer = f"{topic} are {words[i % len(words)]}" if i % 2 == 0 else f"{i * 37 % 1000} {i * 11 % 100}"
        items.append((f"Tell me about {topic} ({i}).", answer))
    return items


def is_good(text: str) -> bool:
    return not text[0].isdigit()
