"""`manage.py seed_load_test`: a project full of ready pairs and annotator accounts, for load tests.

    python manage.py seed_load_test --pairs 2000 --annotators 200 --overlap 3 --out var/load.json

Writes `{"project_id", "tokens", "annotators", "pairs", "overlap"}` to --out; `tokens[i]` is the
DRF token of `annotators[i]` (send it as `Authorization: Token <key>`). Every run makes a new
project and new annotators (their usernames carry the project id), so it can be run repeatedly
against the same database.

Why rows are bulk-inserted rather than created through services: the project itself goes through
`project_create` (validation, the owner's admin membership, base policy version 0), but the rows
under it have no business rules that a load test could miss: a prompt, two responses and a queued
pair are exactly what `import_file` writes (with `bulk_create` too), and an annotator is a user, a
token and one membership row. Going through `membership_set` (update_or_create, a role check and
a savepoint per row) and `create_user` (a PBKDF2 hash per user, ~0.3 s of CPU each at Django's
default iterations) would make 10,000 annotators take an hour; instead every password is the same
precomputed hash of one random, never-printed secret: load-test accounts log in by token only.

Everything happens in one transaction, so a failure leaves nothing behind. Rows are built and
inserted `--batch-size` pairs at a time so memory stays flat at a million pairs.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction
from rest_framework.authtoken.models import Token

from feedback_site.annotation.models import Pair, PairSource, Prompt, Response
from feedback_site.core.errors import ServiceError
from feedback_site.core.rendering import render_markdown
from feedback_site.projects.models import Membership, Role
from feedback_site.registry.services import project_create

OWNER_USERNAME = "loadtest-owner"
_ANSWER_POOL = 5000

# Material for prompts and answers of realistic length (a few hundred characters) with the
# markdown the annotator page has to render: emphasis, lists, inline code and code blocks.
_TOPICS = [
    "a binary search over a sorted list",
    "the difference between TCP and UDP",
    "how vaccines train the immune system",
    "a budget for a two-week trip to Portugal",
    "why the sky is blue",
    "a polite reply declining a meeting",
    "how to reverse a linked list",
    "the causes of the French Revolution",
    "a vegetarian lasagna recipe",
    "what a p-value means",
    "how compound interest works",
    "a haiku about autumn rain",
    "how to center a div with CSS",
    "the rules of chess castling",
    "how photosynthesis stores energy",
    "a cover letter for a junior data analyst",
    "how HTTPS certificates are verified",
    "the plot of Hamlet",
    "how to train for a first 10k run",
    "what a database index is for",
]
_ASKS = [
    "Can you explain {t} to a beginner?",
    "Write a short guide to {t}.",
    "I keep getting confused about {t}. Help?",
    "Give me three key points about {t}, with an example.",
    "Summarise {t} in a few sentences.",
    "My teacher asked about {t}; what should I say?",
]
_CONTEXT = [
    "I have about ten minutes and no background in this.",
    "Please keep it concrete and avoid jargon.",
    "Use a list if it helps.",
    "I am preparing for an interview tomorrow.",
    "Assume I know the basics already.",
    "",
]
_SENTENCES = [
    "The short answer is that it depends on what you optimise for, but there is a sensible default.",
    "Start with the simplest version that works, then measure before you change anything.",
    "A common mistake is to skip the edge cases, which is where most of the bugs live.",
    "Think of it as a trade-off between speed and safety; you rarely get both for free.",
    "In practice, most people get **90% of the benefit** from the first two steps.",
    "This is well documented, and the official guide is worth reading once end to end.",
    "If you remember one thing, remember that the order of operations matters here.",
    "Historians still debate the details, but the broad picture is not controversial.",
    "You can check your understanding by explaining it to someone else in one minute.",
    "Be careful with the *units*: mixing them up is the usual source of wrong results.",
    "None of this is hard once you see it written down step by step.",
    "I would not recommend the shortcut you may find online; it breaks in subtle ways.",
]
_BULLETS = [
    "Read the problem twice",
    "Write down what you know",
    "Try the smallest example",
    "Check the result",
    "Keep notes for next time",
    "Ask for feedback early",
    "Prefer clear names",
    "Measure, do not guess",
]
_CODE = [
    "```python\ndef search(xs, target):\n    lo, hi = 0, len(xs)\n    while lo < hi:\n        mid = (lo + hi) // 2\n"
    "        if xs[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid\n    return lo\n```",
    "```css\n.parent {\n  display: flex;\n  justify-content: center;\n  align-items: center;\n}\n```",
    "```sql\nCREATE INDEX orders_by_customer ON orders (customer_id, created_at);\n```",
    "Use `git log --oneline` to see the history at a glance.",
]


def _prompt_text(rng: random.Random, i: int) -> str:
    topic = rng.choice(_TOPICS)
    return f"{rng.choice(_ASKS).format(t=topic)} {rng.choice(_CONTEXT)} (item {i})".replace("  ", " ")


def _response_text(rng: random.Random) -> str:
    parts = [" ".join(rng.sample(_SENTENCES, rng.randint(1, 3)))]
    shape = rng.random()
    if shape < 0.4:
        parts.append("\n".join(f"{n}. {b}" for n, b in enumerate(rng.sample(_BULLETS, rng.randint(2, 4)), start=1)))
    elif shape < 0.7:
        parts.append(rng.choice(_CODE))
    elif shape < 0.85:
        parts.append("| step | why |\n|---|---|\n" + "\n".join(f"| {b} | it saves time |" for b in rng.sample(_BULLETS, 2)))
    parts.append(" ".join(rng.sample(_SENTENCES, rng.randint(1, 3))))
    return "\n\n".join(parts)


class Command(BaseCommand):
    help = "Create a project with N ready pairs and M annotators with API tokens; write the tokens as JSON (load tests)."

    def add_arguments(self, parser):
        parser.add_argument("--pairs", type=int, required=True, help="Ready pairs to queue (prompt + two responses each).")
        parser.add_argument("--annotators", type=int, required=True, help="Annotator accounts, each with a membership and a token.")
        parser.add_argument("--overlap", type=int, default=1, help="Judgments each pair needs from distinct annotators (1-20).")
        parser.add_argument("--out", required=True, help="Where to write the JSON with the project id and tokens.")
        parser.add_argument("--project-name", default="Load test", help="Name of the new project.")
        parser.add_argument("--batch-size", type=int, default=2000, help="Pairs (or users) per INSERT batch.")
        parser.add_argument("--seed", type=int, default=0, help="Seed for the generated texts (same seed, same texts).")
        parser.add_argument("--base-policy-uri", default=None, help="The project's policy v0 (default: the bundled base model).")

    def handle(
        self,
        *args,
        pairs: int,
        annotators: int,
        overlap: int,
        out: str,
        project_name: str,
        batch_size: int,
        seed: int,
        base_policy_uri: str | None = None,
        **options,
    ):
        if pairs < 0 or annotators < 0:
            raise CommandError("--pairs and --annotators must be zero or more")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        out_path = Path(out)
        if not out_path.parent.is_dir():
            raise CommandError(f"--out: folder {out_path.parent} does not exist")

        started = time.perf_counter()
        with transaction.atomic():
            owner = self._owner()
            try:
                policy = {"base_policy_uri": base_policy_uri} if base_policy_uri else {}
                project = project_create(
                    creator=owner,
                    name=project_name,
                    overlap=overlap,
                    description="Synthetic pairs and annotators made by seed_load_test.",
                    **policy,
                )
            except ServiceError as error:
                raise CommandError(error.message) from None
            usernames, tokens = self._annotators(project, annotators, batch_size)
            users_done = time.perf_counter()
            self._pairs(project, pairs, batch_size, random.Random(seed))
        self._analyze()
        finished = time.perf_counter()

        payload = {"project_id": project.pk, "tokens": tokens, "annotators": usernames, "pairs": pairs, "overlap": overlap}
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, out_path)  # a reader never sees half a file
        self.stdout.write(
            f"Project {project.pk}: {pairs:,} pairs (overlap {overlap}) and {annotators:,} annotators in "
            f"{finished - started:.1f} s (users {users_done - started:.1f} s, pairs {finished - users_done:.1f} s); "
            f"tokens in {out_path}"
        )

    def _analyze(self) -> None:
        # Fresh statistics after a bulk load, as PostgreSQL's docs advise. Without them the planner
        # still believes the pair table is as empty as when it was last analysed and answers the
        # queue's "next pair" query by filtering and sorting every open pair of the project
        # (~40 ms at 2,000 pairs, growing linearly) instead of walking the `pair_queue_order`
        # index and stopping at the first free pair (~0.5 ms). Autovacuum would catch up within a
        # minute or so where it is on, but a load test starts right away.
        tables = [model._meta.db_table for model in (Pair, Prompt, Response, Membership, Token, get_user_model())]
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")

    def _owner(self):
        User = get_user_model()
        owner, created = User.objects.get_or_create(username=OWNER_USERNAME, defaults={"is_staff": True})
        if created:
            owner.set_unusable_password()
            owner.save(update_fields=["password"])
        elif not owner.is_staff:
            owner.is_staff = True
            owner.save(update_fields=["is_staff"])
        return owner

    def _annotators(self, project, count: int, batch_size: int) -> tuple[list[str], list[str]]:
        User = get_user_model()
        # One hash for everyone: make_password runs PBKDF2 once instead of `count` times.
        password = make_password(secrets.token_urlsafe(24))
        width = max(5, len(str(count)))
        usernames: list[str] = []
        tokens: list[str] = []
        for start in range(0, count, batch_size):
            names = [f"loadtest-p{project.pk}-{i:0{width}d}" for i in range(start, min(count, start + batch_size))]
            users = User.objects.bulk_create([User(username=name, password=password) for name in names])
            keys = [Token.generate_key() for _ in users]
            Token.objects.bulk_create([Token(key=key, user=user) for key, user in zip(keys, users)])
            Membership.objects.bulk_create([Membership(project=project, user=user, role=Role.ANNOTATOR) for user in users])
            usernames.extend(names)
            tokens.extend(keys)
            reset_queries()  # under DEBUG the query log would keep every multi-megabyte INSERT
        return usernames, tokens

    def _pairs(self, project, count: int, batch_size: int, rng: random.Random) -> None:
        # Composing a markdown answer costs about as much as inserting it; a few thousand distinct
        # answers drawn at random look the same to the server as a million distinct ones.
        answers = [_response_text(rng) for _ in range(min(2 * count, _ANSWER_POOL))]
        for start in range(0, count, batch_size):
            n = min(count, start + batch_size) - start
            # HTML rendered at creation, as imports and generation runs store it (annotation.rendered).
            texts = [_prompt_text(rng, start + i) for i in range(n)]
            prompts = Prompt.objects.bulk_create(
                [
                    Prompt(project=project, text=text, text_html=render_markdown(text), history_html=[], metadata={"seed_load_test": True})
                    for text in texts
                ]
            )
            responses = Response.objects.bulk_create(
                [
                    Response(prompt=prompt, text=text, text_html=render_markdown(text), sample_index=k)
                    for prompt in prompts
                    for k, text in enumerate(rng.sample(answers, 2))
                ]
            )
            Pair.objects.bulk_create(
                [
                    Pair(
                        project=project,
                        prompt=prompt,
                        response_a=responses[2 * i],
                        response_b=responses[2 * i + 1],
                        overlap=project.overlap,
                        source=PairSource.IMPORTED,
                    )
                    for i, prompt in enumerate(prompts)
                ]
            )
            reset_queries()
            if count >= 50 * batch_size and (start // batch_size) % 50 == 49:
                self.stdout.write(f"  {start + n:,} / {count:,} pairs")
