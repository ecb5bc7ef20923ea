"""`manage.py seed_demo`: the demo that `make run` starts with.

Creates (once) a site admin, an ML-staff user and two annotators, a project with a few prompts,
and queues a generation run from the default policy so annotators have pairs to compare (and
answers to rate) a minute later. It also imports three answer sets to rank (demo/rankings.jsonl)
and queues two conversations that the playground worker continues turn by turn, so every kind of
feedback has something to show. Logins are random, kept in var/demo-logins.json, and printed on
every run.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from feedback_site.annotation.imports import import_file
from feedback_site.conversations.services import tasks_create
from feedback_site.core.errors import QueueUnavailable
from feedback_site.generation.services import generation_launch
from feedback_site.projects.models import Project, Role
from feedback_site.projects.services import membership_set
from feedback_site.registry.services import project_create

DEMO_NAME = "Demo: helpful answers"
DEMO_USERS = [
    ("admin", "site admin (project admin)", None),
    ("mlstaff", "ML staff", Role.ML_STAFF),
    ("annotator1", "annotator", Role.ANNOTATOR),
    ("annotator2", "annotator", Role.ANNOTATOR),
]
GUIDELINES = """Pick the response a careful expert would rather send.
- Prefer correct, specific and complete answers over vague ones.
- Prefer safe answers; refuse clearly harmful requests politely.
- Length is not quality: a short correct answer beats a long padded one.
- Choose *Tie* when both are equally good, *Both bad* when neither is acceptable."""

DEMO_CONVERSATIONS = [
    {
        "messages": [{"role": "user", "content": "I want to start running. How should I begin?"}],
        "followups": ["How often should I run in the first month?"],
    },
    {
        "messages": [
            {"role": "system", "content": "You are a patient cooking teacher."},
            {"role": "user", "content": "How do I cook rice?"},
        ],
        "followups": ["What if it comes out sticky?"],
    },
]


class Command(BaseCommand):
    help = "Create the demo project, users and a first generation run (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-generation", action="store_true", help="Do not queue the generation run.")
        parser.add_argument("--max-new-tokens", type=int, default=96)

    def handle(self, *args, no_generation: bool = False, max_new_tokens: int = 96, **options):
        logins_file = Path(settings.VAR_DIR) / "demo-logins.json"
        logins = json.loads(logins_file.read_text()) if logins_file.exists() else {}
        User = get_user_model()
        created_project = False
        with transaction.atomic():
            users = {}
            for username, _label, _role in DEMO_USERS:
                user = User.objects.filter(username=username).first()
                if user is None:
                    password = logins.get(username) or secrets.token_urlsafe(9)
                    user = User.objects.create_user(username=username, password=password)
                    logins[username] = password
                users[username] = user
            admin = users["admin"]
            if not (admin.is_staff and admin.is_superuser):
                admin.is_staff = admin.is_superuser = True
                admin.save(update_fields=["is_staff", "is_superuser"])
            project = Project.objects.filter(name=DEMO_NAME).first()
            if project is None:
                created_project = True
                project = project_create(
                    creator=admin,
                    name=DEMO_NAME,
                    overlap=2,
                    criteria=["helpful", "harmless", "honest"],
                    description="Rank answers of the default policy (SmolLM2-135M-Instruct) to everyday questions.",
                    guidelines=GUIDELINES,
                )
                for username, _label, role in DEMO_USERS:
                    if role:
                        membership_set(project=project, actor=admin, user=users[username], role=role)
                demo = Path(__file__).resolve().parents[2] / "demo"
                import_file(
                    project=project, actor=admin, kind="prompts", filename="demo-prompts.jsonl", data=(demo / "prompts.jsonl").read_bytes()
                )
                import_file(
                    project=project,
                    actor=admin,
                    kind="rankings",
                    filename="demo-rankings.jsonl",
                    data=(demo / "rankings.jsonl").read_bytes(),
                )
        logins_file.parent.mkdir(parents=True, exist_ok=True)
        logins_file.write_text(json.dumps(logins, indent=2))
        logins_file.chmod(0o600)

        if created_project and not no_generation:
            try:
                tasks_create(
                    project=project,
                    actor=users["mlstaff"],
                    conversations=DEMO_CONVERSATIONS,
                    turns=2,
                    candidates=2,
                    sampling={"max_new_tokens": max_new_tokens},
                )
                run = generation_launch(
                    project=project, actor=users["mlstaff"], k=3, max_new_tokens=max_new_tokens, seed=1, rate_answers=True
                )
                self.stdout.write(
                    f"Queued generation run {run.pk}: 3 responses for each of {len(run.prompt_ids)} prompts, "
                    "compared in pairs and each rated thumbs up / down."
                )
            except QueueUnavailable as error:
                self.stderr.write(f"Could not queue the demo generation run: {error.message}")

        self.stdout.write(self.style.SUCCESS(f"\nDemo project: {project.name} (id {project.pk})"))
        self.stdout.write("Logins (also in var/demo-logins.json):")
        for username, label, _role in DEMO_USERS:
            self.stdout.write(f"  {label:28s} {username:12s} password: {logins.get(username, '(set before this demo)')}")
