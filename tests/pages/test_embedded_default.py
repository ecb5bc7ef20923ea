"""The README's first command (`make run`) on the database it serves: SQLite by default.

`make run` migrates and runs `seed_demo`; the pages the README sends each demo login to must
answer 200 there. Quality and My statistics once answered 500 on SQLite (a PostgreSQL-only median
and `::int` casts). `make test` runs this module on both databases; the settings test below shows
that the embedded default really is SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client

REPO = Path(__file__).resolve().parents[2]


def test_make_run_defaults_to_a_sqlite_file_in_var(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_PROFILE")}
    env["FEEDBACK_VAR_DIR"] = str(tmp_path)
    code = (
        "import json; from django.conf import settings; import django; django.setup(); "
        "print(json.dumps([settings.DATABASES['default']['ENGINE'], str(settings.DATABASES['default']['NAME'])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "feedback_site.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    engine, name = json.loads(out.stdout.strip().splitlines()[-1])
    assert engine == "django.db.backends.sqlite3"
    assert Path(name).is_relative_to(tmp_path), name


@pytest.mark.django_db
def test_demo_logins_open_the_pages_the_readme_names(settings, tmp_path, make_pairs):
    from feedback_site.annotation import services
    from feedback_site.projects.models import Project

    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--no-generation", stdout=open(os.devnull, "w"))
    project = Project.objects.get(name="Demo: helpful answers")
    User = get_user_model()
    admin, mlstaff, ann1, ann2 = (User.objects.get(username=n) for n in ("admin", "mlstaff", "annotator1", "annotator2"))
    # Judged pairs (one disagreement), so the median, agreement and day buckets run on data.
    make_pairs(project, 4, overlap=2)
    for user, choices in ((ann1, ["left", "right", "tie"]), (ann2, ["right", "right", "both_bad"])):
        for i, choice in enumerate(choices):
            leased = services.assignment_next(project=project, annotator=user)
            services.judgment_submit(
                assignment_id=leased.assignment.pk, annotator=user, choice=choice, criteria={}, time_spent_ms=3_000 * (i + 1)
            )

    def get(user, path):
        client = Client()
        client.force_login(user)
        return client.get(path)

    pid = project.pk
    for user, path in [
        (mlstaff, f"/projects/{pid}/quality/"),
        (admin, f"/projects/{pid}/quality/"),
        (mlstaff, f"/projects/{pid}/quality/adjudication/"),
        (ann1, f"/projects/{pid}/quality/me/"),
        (ann2, f"/projects/{pid}/quality/me/"),
        (ann1, f"/projects/{pid}/annotate/"),
        (ann1, f"/projects/{pid}/rank/"),
        (ann1, f"/projects/{pid}/rate/"),
        (ann1, f"/projects/{pid}/converse/"),
        (mlstaff, f"/projects/{pid}/snapshots/"),
        (ann1, f"/projects/{pid}/"),
        (admin, f"/projects/{pid}/members/"),
        (mlstaff, f"/api/v1/projects/{pid}/quality/"),
    ]:
        response = get(user, path)
        assert response.status_code == 200, f"{user.username} {path} on {connection.vendor}: {response.status_code}"
    mine = get(ann1, f"/api/v1/projects/{pid}/quality/me/")
    assert mine.status_code == 200, mine.content


@pytest.mark.django_db
def test_the_demo_generation_run_also_queues_its_answers_for_rating(settings, tmp_path, monkeypatch):
    """The demo's one run compares its answers in pairs and queues each for thumbs up / down, so
    a newcomer meets the rating page too (the run itself is the worker's, tested elsewhere)."""
    from feedback_site.generation import services as generation_services
    from feedback_site.generation.models import GenerationRun

    sent = []
    monkeypatch.setattr(generation_services, "enqueue", lambda spec, *args, **options: sent.append((spec.name, args)) or "task-id")
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    run = GenerationRun.objects.get()
    assert run.k == 3 and run.rate_answers is True and sent == [("generation.run", (run.pk,))]
    from feedback_site.conversations.models import ConversationTask
    from feedback_site.rankings.models import RankingTask

    # Something to rank and conversations to continue, beside the pairs.
    assert RankingTask.objects.filter(project=run.project, overlap=run.project.overlap, is_complete=False).count() == 3
    assert ConversationTask.objects.filter(project=run.project, turns=2, candidates=2).count() == 2
