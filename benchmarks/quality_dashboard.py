#!/usr/bin/env python
"""The quality dashboard on a project with 100,000 judgments: query counts and time.

    nice -n 10 .venv/bin/python benchmarks/quality_dashboard.py                 # 100,000 judgments
    .venv/bin/python benchmarks/quality_dashboard.py --judgments 20000 --json-out var/quality.json

1. creates a fresh PostgreSQL database (`--db-name`, default `helperb_bench_quality`; dropped
   first if a previous run left it) on the server of `--pg-url` and migrates it;
2. bulk-inserts one project: `--annotators` human annotators (default 30) and 2 simulated ones,
   pairs with overlap 3 so there are `--judgments` judgments (a fixed-seed mix of agreeing and
   disagreeing labels, left/right sides, times; 5% gold pairs), spread over 8 weeks;
3. times (median of `--repeat` runs, after one warm-up) and counts the queries of:
   the dashboard selector, the staff dashboard page and its API, one annotator's "my statistics",
   and the first page of disagreements (adjudication), each through Django's test client
   (a logged-in session) where it is a page;
4. drops the database unless --keep-db.

The query counts must not depend on the number of judgments (tests/quality/test_dashboard.py
asserts the same count at two sizes); this reports them at 100,000 with the times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _admin(pg_url: str, sql: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql)


def _setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _seed(n_judgments: int, n_annotators: int, seed: int):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from feedback_site.annotation.models import Assignment, Judgment, Pair, PairSource, Prompt, Response
    from feedback_site.projects.models import Membership, Project

    rng = random.Random(seed)
    User = get_user_model()
    admin = User.objects.create_user("bench-admin", password="pw-bench-123")
    project = Project.objects.create(name="Quality bench", overlap=3, min_seconds_per_judgment=3.0, gold_rate=0.05)
    Membership.objects.create(project=project, user=admin, role="admin")
    humans = User.objects.bulk_create([User(username=f"ann{i:03d}") for i in range(n_annotators)])
    robots = User.objects.bulk_create([User(username=f"sim{i}") for i in range(2)])
    Membership.objects.bulk_create(
        [Membership(project=project, user=u, role="annotator") for u in humans]
        + [Membership(project=project, user=u, role="annotator", is_simulated=True) for u in robots]
    )
    n_pairs = -(-n_judgments // 3)
    prompts = Prompt.objects.bulk_create([Prompt(project=project, text=f"Question {i}?") for i in range(n_pairs)], batch_size=5000)
    responses = Response.objects.bulk_create(
        [Response(prompt=p, text=f"Answer {s} to {p.pk}", sample_index=s) for p in prompts for s in (0, 1)], batch_size=5000
    )
    pairs = Pair.objects.bulk_create(
        [
            Pair(
                project=project,
                prompt=p,
                response_a=responses[2 * i],
                response_b=responses[2 * i + 1],
                overlap=3,
                source=PairSource.GENERATED,
                is_gold=i % 20 == 0,
                gold_label="a" if i % 20 == 0 else "",
            )
            for i, p in enumerate(prompts)
        ],
        batch_size=5000,
    )
    now = timezone.now()
    annotators = humans + robots
    skill = {u.pk: rng.uniform(0.55, 0.95) for u in annotators}
    rows = []
    left = n_judgments
    for pair in pairs:
        k = min(3, left)
        if k <= 0:
            break
        truth = "a" if rng.random() < 0.55 else "b"
        for user in rng.sample(annotators, k):
            r = rng.random()
            preferred = truth if r < skill[user.pk] else rng.choice(["a", "b", "tie", "both_bad"])
            swapped = rng.random() < 0.5
            rows.append(
                (pair, user, preferred, swapped, int(rng.lognormvariate(9.5, 0.8)), now - timedelta(minutes=rng.randrange(8 * 7 * 24 * 60)))
            )
        pair.judgment_count = k
        pair.is_complete = k >= 3
        left -= k
    Pair.objects.bulk_update(pairs, ["judgment_count", "is_complete"], batch_size=5000)
    assignments = Assignment.objects.bulk_create(
        [
            Assignment(pair=pair, annotator=user, status="submitted", swapped=swapped, expires_at=at, finished_at=at)
            for pair, user, _, swapped, _, at in rows
        ],
        batch_size=5000,
    )

    def choice(preferred, swapped):
        if preferred in ("tie", "both_bad"):
            return preferred
        return "left" if (preferred == "a") != swapped else "right"

    Judgment.objects.bulk_create(
        [
            Judgment(
                assignment=a,
                pair=pair,
                annotator=user,
                preferred=preferred,
                choice=choice(preferred, swapped),
                swapped=swapped,
                time_spent_ms=ms,
                created_at=at,
            )
            for a, (pair, user, preferred, swapped, ms, at) in zip(assignments, rows)
        ],
        batch_size=5000,
    )
    # created_at is auto_now_add: set the spread-out times in one statement.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotation_judgment j SET created_at = a.finished_at FROM annotation_assignment a "
            "WHERE a.id = j.assignment_id AND j.pair_id IN (SELECT id FROM annotation_pair WHERE project_id = %s)",
            [project.pk],
        )
        cursor.execute("ANALYZE")
    return project, admin, humans[0], len(rows)


def _measure(label: str, call, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()  # warm-up
    times = []
    queries = None
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        queries = len(ctx.captured_queries)
    result = {"what": label, "queries": queries, "median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}
    print(f"{label:<38} queries={queries:<4} median={result['median_s']:.3f}s max={result['max_s']:.3f}s", flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgments", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--db-name", default="helperb_bench_quality")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-db", action="store_true", help="measure on the database a --keep-db run left (no seeding)")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)

    base = args.pg_url.rsplit("/", 1)[0]
    if not args.reuse_db:
        _admin(args.pg_url, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        _admin(args.pg_url, f'CREATE DATABASE "{args.db_name}"')
    try:
        _setup_django(f"{base}/{args.db_name}")
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if args.reuse_db:
            from django.contrib.auth import get_user_model

            from feedback_site.annotation.models import Judgment
            from feedback_site.projects.models import Project

            project = Project.objects.get(name="Quality bench")
            admin = get_user_model().objects.get(username="bench-admin")
            someone = get_user_model().objects.get(username="ann000")
            n = Judgment.objects.filter(pair__project=project).count()
            print(f"reusing {n:,} judgments", flush=True)
        else:
            start = time.perf_counter()
            project, admin, someone, n = _seed(args.judgments, args.annotators, args.seed)
            print(f"seeded {n:,} judgments in {time.perf_counter() - start:.1f}s", flush=True)

        from django.test import Client

        from feedback_site.quality import selectors

        staff, annotator = Client(), Client()
        staff.force_login(admin)
        annotator.force_login(someone)

        def page(client, url):
            def call():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            return call

        results = [
            _measure("dashboard selector", lambda: selectors.dashboard(project), args.repeat),
            _measure("dashboard page (staff)", page(staff, f"/projects/{project.pk}/quality/"), args.repeat),
            _measure("dashboard API (staff)", page(staff, f"/api/v1/projects/{project.pk}/quality/"), args.repeat),
            _measure("my statistics page (annotator)", page(annotator, f"/projects/{project.pk}/quality/me/"), args.repeat),
            _measure("disagreements API, first 50", page(staff, f"/api/v1/projects/{project.pk}/quality/disagreements/"), args.repeat),
            _measure("adjudication page, first 20", page(staff, f"/projects/{project.pk}/quality/adjudication/"), args.repeat),
        ]
        report = {"judgments": n, "annotators": args.annotators, "repeat": args.repeat, "results": results}
        if args.json_out:
            Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json_out).write_text(json.dumps(report, indent=2))
        from django.db import connections

        connections.close_all()
    finally:
        if not (args.keep_db or args.reuse_db):
            _admin(args.pg_url, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
