#!/usr/bin/env python
"""Snapshot export at scale: wall time and peak memory of the background build on 100,000 and
1,000,000 judgments, to show memory does not grow with the size of the project.

    nice -n 10 .venv/bin/python benchmarks/snapshot_export.py                  # 100k and 1M judgments
    nice -n 10 .venv/bin/python benchmarks/snapshot_export.py --judgments 100000 --keep-db

1. creates a fresh PostgreSQL database (`--db-name`, dropped first), migrates it, and for each
   size makes a project with `--annotators` accounts (`manage.py seed_load_test --pairs 0`) and
   judgments/overlap pairs, each judged by `--overlap` distinct annotators, seeded with bulk SQL
   (benchmarks/bulk_seed.py: INSERT ... SELECT generate_series, no ORM loop);
2. runs the export in a fresh Python process per size, exactly what the `snapshots.build` job
   runs (services.snapshot_build on a pending snapshot row), and reports its wall time, the
   process's peak RSS (getrusage ru_maxrss) and its RSS just before the export started (Django
   and pyarrow loaded), so the difference is what the export itself needed;
3. prints one table and (with --json-out) writes the figures as JSON; drops the database unless
   --keep-db.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))


def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export_child(project_id: int, owner: str) -> dict:
    """Runs in its own process: one snapshot build, measured."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
    django.setup()
    import pyarrow.parquet  # noqa: F401  (loaded before the baseline, as in a worker)
    from django.contrib.auth import get_user_model

    from feedback_site.projects.models import Project
    from feedback_site.snapshots.models import Snapshot, SnapshotStatus
    from feedback_site.snapshots.services import _next_number, normalise_options, snapshot_build

    project = Project.objects.get(pk=project_id)
    actor = get_user_model().objects.get(username=owner)
    from django.db import transaction

    with transaction.atomic():
        snapshot = Snapshot.objects.create(
            project=project,
            number=_next_number(project),
            aggregation="majority",
            options=normalise_options({}),
            created_by=actor,
            status=SnapshotStatus.PENDING,
        )
    baseline_kib = _rss_kib()
    started = time.perf_counter()
    cpu0 = time.process_time()
    done = snapshot_build(snapshot.pk)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sizes = {p.name: p.stat().st_size for p in Path(done.artifact_dir).iterdir()} if done.artifact_dir else {}
    return {
        "status": done.status,
        "error": done.error,
        "wall_s": wall,
        "cpu_s": cpu,
        "baseline_rss_mib": baseline_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
        "pairs": done.pair_count,
        "judgments": done.judgment_count,
        "preferences": done.preference_count,
        "content_hash": done.content_hash,
        "bytes": sizes,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgments", default="100000,1000000", help="comma-separated sizes (judgments per project)")
    parser.add_argument("--overlap", type=int, default=2, help="judgments per pair (pairs = judgments / overlap)")
    parser.add_argument("--annotators", type=int, default=10000)
    parser.add_argument("--db-name", default="feedback_snapshot_bench")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--json-out")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--_child", nargs=2, metavar=("PROJECT_ID", "OWNER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(export_child(int(args._child[0]), args._child[1])))
        return 0

    import psycopg

    from benchmarks.bulk_seed import seed_pairs

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db_name):
        parser.error("--db-name: lower-case letters, digits and _ only")
    sizes = [int(s) for s in args.judgments.split(",") if s.strip()]
    base = args.pg_url.rsplit("/", 1)[0]
    db_url = f"{base}/{args.db_name}"
    tmp = Path(tempfile.mkdtemp(prefix="snapshot-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "FEEDBACK_ARTIFACTS_DIR": str(tmp / "artifacts"),
        "FEEDBACK_VAR_DIR": str(tmp / "var"),
        "DJANGO_SETTINGS_MODULE": "feedback_site.settings",
    }

    def manage(*a: str) -> str:
        done = subprocess.run([PYTHON, str(ROOT / "manage.py"), *a], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(a)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db_name}"')
    results = []
    try:
        print(f"migrating {args.db_name} ...", flush=True)
        manage("migrate", "--no-input", "-v", "0")
        for size in sizes:
            pairs = size // args.overlap
            print(f"size {size:,} judgments: seeding {args.annotators:,} annotators and {pairs:,} pairs ...", flush=True)
            out = tmp / f"seed-{size}.json"
            t = time.perf_counter()
            manage(
                "seed_load_test",
                "--pairs",
                "0",
                "--annotators",
                str(args.annotators),
                "--overlap",
                str(args.overlap),
                "--out",
                str(out),
                "--project-name",
                f"Snapshot bench {size}",
            )
            project_id = json.loads(out.read_text())["project_id"]
            users_s = time.perf_counter() - t
            seeded = seed_pairs(db_url, project_id, pairs, judged_overlap=args.overlap)
            print("  exporting (fresh process) ...", flush=True)
            child = subprocess.run(
                [PYTHON, __file__, "--_child", str(project_id), "loadtest-owner"], cwd=ROOT, env=env, capture_output=True, text=True
            )
            line = next((out for out in child.stdout.splitlines() if out.startswith("RESULT ")), None)
            if child.returncode or line is None:
                raise SystemExit(f"export failed:\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}")
            result = json.loads(line[len("RESULT ") :])
            result.update(size=size, seed_users_s=users_s, seed_rows_s=seeded["total_s"])
            if result["status"] != "ready":
                raise SystemExit(f"export ended {result['status']}: {result['error']}")
            print(
                f"  {result['judgments']:,} judgments / {result['pairs']:,} pairs in {result['wall_s']:.1f} s "
                f"({result['judgments'] / result['wall_s']:,.0f} judgments/s), peak RSS {result['peak_rss_mib']:.0f} MiB "
                f"(baseline {result['baseline_rss_mib']:.0f} MiB)",
                flush=True,
            )
            results.append(result)
    finally:
        if not args.keep_db:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(tmp)])

    print(
        f"\nSnapshot export (majority rule, {args.overlap} judgments per pair), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{'judgments':>11}{'pairs':>10}{'wall s':>9}{'cpu s':>8}{'judg/s':>9}{'base MiB':>10}{'peak MiB':>10}{'files MiB':>11}")
    for r in results:
        print(
            f"{r['judgments']:>11,}{r['pairs']:>10,}{r['wall_s']:>9.1f}{r['cpu_s']:>8.1f}{r['judgments'] / r['wall_s']:>9,.0f}"
            f"{r['baseline_rss_mib']:>10.0f}{r['peak_rss_mib']:>10.0f}{sum(r['bytes'].values()) / 2**20:>11.0f}"
        )
    if len(results) > 1:
        small, big = results[0], results[-1]
        print(
            f"size x{big['judgments'] / small['judgments']:.0f}: peak RSS x{big['peak_rss_mib'] / small['peak_rss_mib']:.2f}, "
            f"wall x{big['wall_s'] / small['wall_s']:.1f}"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"results": results, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
