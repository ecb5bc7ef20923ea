"""`manage.py seed_conversation_load_test`: a project full of conversation tasks and annotator
accounts, for load tests (benchmarks/annotator_load.py --kind conversation).

    python manage.py seed_conversation_load_test --tasks 400 --turns 2 --candidates 2 --annotators 200 --out var/load.json

The project and the annotators come from `seed_load_test` (no pairs), with a tiny random policy
(`rlhf.models.make_tiny_model`, written under the artifacts folder) as its policy v0, so the
worker that samples each turn's candidate replies costs little and the benchmark measures the
service rather than a model. Each task is a realistic opening with scripted follow-up user turns,
queued through `conversations.services.tasks_create`. Writes `{"project_id", "tokens",
"annotators", "tasks", "turns", "candidates", "overlap"}` to --out.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from feedback_site.annotation.management.commands.seed_load_test import OWNER_USERNAME, _prompt_text
from feedback_site.conversations.services import tasks_create
from feedback_site.projects.models import Project

FOLLOWUPS = ["Can you say that more simply?", "Give me one concrete example.", "What is the most common mistake?", "Thanks. Anything else?"]


class Command(BaseCommand):
    help = "Create a project with N conversation tasks on a tiny policy and M annotators with API tokens (load tests)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, required=True)
        parser.add_argument("--turns", type=int, default=2, help="Assistant turns per conversation (1-5 here).")
        parser.add_argument("--candidates", type=int, default=2, help="Candidate replies per turn (2-9).")
        parser.add_argument("--max-new-tokens", type=int, default=12, help="Length of each sampled reply.")
        parser.add_argument("--annotators", type=int, required=True)
        parser.add_argument("--overlap", type=int, default=1)
        parser.add_argument("--out", required=True)
        parser.add_argument("--project-name", default="Load test (conversations)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, tasks, turns, candidates, max_new_tokens, annotators, overlap, out, project_name, seed, **_):
        from rlhf.models import make_tiny_model

        if tasks < 1 or not 1 <= turns <= len(FOLLOWUPS) + 1:
            raise CommandError(f"--tasks must be at least 1 and --turns between 1 and {len(FOLLOWUPS) + 1}")
        rng = random.Random(seed)
        policy = Path(settings.ARTIFACTS_DIR) / "loadtest" / f"tiny-policy-{seed}"
        if not (policy / "config.json").exists():
            make_tiny_model(policy, seed=seed)
        with transaction.atomic():
            call_command(
                "seed_load_test",
                pairs=0,
                annotators=annotators,
                overlap=overlap,
                out=out,
                project_name=project_name,
                base_policy_uri=str(policy),
                stdout=self.stdout,
            )
            data = json.loads(Path(out).read_text())
            project = Project.objects.get(pk=data["project_id"])
            owner = project.memberships.get(user__username=OWNER_USERNAME).user
            openings = [
                {"messages": [{"role": "user", "content": _prompt_text(rng, i)}], "followups": rng.sample(FOLLOWUPS, turns - 1)}
                for i in range(tasks)
            ]
            tasks_create(
                project=project,
                actor=owner,
                conversations=openings,
                turns=turns,
                candidates=candidates,
                overlap=overlap,
                sampling={"max_new_tokens": max_new_tokens, "temperature": 1.2},
            )
        data.update(tasks=tasks, turns=turns, candidates=candidates, pairs=0)
        tmp = Path(out).with_name(Path(out).name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, out)
        self.stdout.write(
            f"Project {project.pk}: {tasks:,} conversations of {turns} turns x {candidates} candidates, {annotators:,} annotators"
        )
