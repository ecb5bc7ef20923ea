#!/usr/bin/env python
"""Where an annotator request spends its time: queries per call, their SQL, the queue's plan.

    .venv/bin/python benchmarks/annotator_profile.py [--pairs 2000] [--annotators 200] [--overlap 3]

Creates a scratch database (`--db-name`, dropped at the end unless --keep-db), seeds it with
`seed_load_test`, lets every annotator do `--rounds` next + submit rounds through Django's test
client so the queue is in the state the load benchmark sees (leases and judgments spread over the
front of the queue), then:
1. counts and prints the SQL of one `next` and one `judgment` call (the hot paths);
2. times `--samples` calls of each in-process, split into time in the database and time in
   Python, with the top functions by cumulative time (cProfile);
3. prints the plans of the statements inside one `annotation_next` call (auto_explain).
No HTTP server and no concurrency: this is the per-request cost that the load benchmark multiplies.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="next+submit rounds per annotator before measuring")
    parser.add_argument("--samples", type=int, default=200, help="calls of each kind to time")
    parser.add_argument("--db-name", default="feedback_profile")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db_name):
        parser.error("--db-name: lower-case letters, digits and _ only")

    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db_name}"')
    try:
        return _profile(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')


def _profile(args) -> int:
    os.environ["DATABASE_URL"] = re.sub(r"/[^/]*$", f"/{args.db_name}", args.pg_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import json

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", "--no-input", verbosity=0)
    out = Path(tempfile.mkdtemp()) / "seed.json"
    started = time.perf_counter()
    call_command("seed_load_test", pairs=args.pairs, annotators=args.annotators, overlap=args.overlap, out=str(out), stdout=io.StringIO())
    print(f"seeded {args.pairs} pairs, {args.annotators} annotators in {time.perf_counter() - started:.1f} s")
    seed = json.loads(out.read_text())
    project_id = seed["project_id"]
    rng = random.Random(1)
    # One Client (one handler, middleware loaded once, as in a gunicorn worker); each annotator is
    # just its Authorization header. A Client per annotator would rebuild the middleware chain on
    # its first request, and WhiteNoise's start-up scan of the static files would dominate.
    shared = Client(HTTP_HOST="127.0.0.1")

    class Annotator:
        def __init__(self, token: str):
            self.auth = {"HTTP_AUTHORIZATION": f"Token {token}"}

        def post(self, path, *a, **kw):
            return shared.post(path, *a, **kw, **self.auth)

    clients = [Annotator(token) for token in seed["tokens"]]
    next_url = f"/api/v1/projects/{project_id}/assignments/next"

    def next_(client):
        response = client.post(next_url)
        assert response.status_code in (200, 204), response.content
        return response.json()["assignment_id"] if response.status_code == 200 else None

    def submit(client, assignment_id):
        response = client.post(
            f"/api/v1/assignments/{assignment_id}/judgment",
            {"choice": rng.choice(["left", "right", "tie"])},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content

    # Bring the queue into a mid-run state: judgments on the front pairs, and one open lease per
    # annotator (as when 200 people each look at a pair).
    for _ in range(args.rounds):
        for client in clients:
            if (assignment := next_(client)) is not None:
                submit(client, assignment)
    open_leases = {i: next_(c) for i, c in enumerate(clients)}

    print("\n== queries of one call (annotator 0 submits its open lease, then asks for the next pair)")
    with CaptureQueriesContext(connection) as submit_q:
        submit(clients[0], open_leases[0])
    with CaptureQueriesContext(connection) as next_q:
        open_leases[0] = next_(clients[0])
    for label, captured in (("POST judgment", submit_q), ("POST next", next_q)):
        print(f"\n{label}: {len(captured.captured_queries)} queries")
        for q in captured.captured_queries:
            sql = re.sub(r"\s+", " ", q["sql"])
            print(f"  {float(q['time']) * 1000:6.2f} ms  {sql[:220]}{'...' if len(sql) > 220 else ''}")

    # Time `samples` calls of each kind (annotators submit their open lease, then lease the next
    # pair), once plainly for wall/CPU/database time, then again under cProfile for the breakdown.
    print(f"\n== {args.samples} calls of each, in-process (no HTTP server, no concurrency)")
    db_time = {"next": 0.0, "judgment": 0.0}
    counts = {"next": 0, "judgment": 0}

    def timed(kind):
        def wrapper(execute, sql, params, many, context):
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                db_time[kind] += time.perf_counter() - t
                counts[kind] += 1

        return wrapper

    def run(samples: int, profiler=None) -> tuple[dict, dict, int]:
        wall = {"next": 0.0, "judgment": 0.0}
        cpu = {"next": 0.0, "judgment": 0.0}
        done = 0
        for i in (n % len(clients) for n in range(samples)):
            if open_leases.get(i) is None:
                continue
            done += 1
            for kind, call in (
                ("judgment", lambda i=i: submit(clients[i], open_leases[i])),
                ("next", lambda i=i: open_leases.__setitem__(i, next_(clients[i]))),
            ):
                t, c = time.perf_counter(), time.process_time()
                with connection.execute_wrapper(timed(kind)):
                    if profiler:
                        profiler.enable()
                    call()
                    if profiler:
                        profiler.disable()
                wall[kind] += time.perf_counter() - t
                cpu[kind] += time.process_time() - c
        return wall, cpu, done

    wall, cpu, n = run(args.samples)
    for kind in ("next", "judgment"):
        print(
            f"  {kind:<9} {wall[kind] / n * 1000:6.2f} ms per call, {cpu[kind] / n * 1000:5.2f} ms of it CPU in this process; "
            f"{db_time[kind] / n * 1000:5.2f} ms inside {counts[kind] / n:.1f} queries"
        )
    profiler = cProfile.Profile(time.process_time)
    run(min(args.samples, 100), profiler)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(40)
    print("\n== cProfile (CPU time, cumulative) of 100 more calls of each")
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:10000])

    # The health view, for comparison.
    t, c = time.perf_counter(), time.process_time()
    for _ in range(args.samples):
        shared.get("/api/v1/health")
    print(
        f"\n  health    {(time.perf_counter() - t) / args.samples * 1000:6.2f} ms per call, "
        f"{(time.process_time() - c) / args.samples * 1000:5.2f} ms CPU"
    )

    print("\n== plans of the statements inside one annotation_next call that leases a new pair (auto_explain)")
    from rest_framework.authtoken.models import Token

    user_id = Token.objects.get(key=seed["tokens"][1]).user_id
    notices: list[str] = []
    connection.ensure_connection()
    connection.connection.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary or ""))
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        # Skip this annotator's open lease (rolled back below), so the call takes the candidate path.
        cursor.execute("UPDATE annotation_assignment SET status = 'skipped' WHERE id = %s", [open_leases[1]])
        cursor.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_analyze = on", "log_buffers = on", "log_level = notice"):
            cursor.execute(f"SET LOCAL auto_explain.{setting}")
        cursor.execute("SET LOCAL client_min_messages = notice")
        cursor.execute("SELECT o_status FROM annotation_next(%s, %s, false, NULL, now(), false, 50)", [project_id, user_id])
        cursor.execute("ROLLBACK")
    for notice in notices:
        if "annotation_next(" not in notice:
            print("  " + notice.replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
