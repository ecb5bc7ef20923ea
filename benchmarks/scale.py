#!/usr/bin/env python
"""Do next-assignment and submit latencies hold up in a big project? Runs benchmarks/annotator_load.py
against a small project (2,000 pairs) and a big one (1,000,000 pairs, 10,000 annotator accounts)
and prints the big/small ratios of p50 and p99 (client-side and server-side) for `next` and
`judgment`; the target is a ratio <= 2.

    nice -n 10 .venv/bin/python benchmarks/scale.py                                  # 2k vs 1M pairs
    nice -n 10 .venv/bin/python benchmarks/scale.py --large-pairs 100000 --duration 15  # quicker

How: annotator_load.py is run unchanged, once per size, in its own process (fresh database,
gunicorn with the production profile, `--clients` concurrent simulated annotators), except that
its seeding step is replaced by a bulk one: `manage.py seed_load_test --pairs 0` makes the project
and `--*-accounts` annotator accounts (users, tokens, memberships), then benchmarks/bulk_seed.py
inserts the pairs (prompt, two responses with stored HTML, queued with `--overlap`) with
INSERT ... SELECT generate_series and ANALYZEs the tables, so a million pairs take a minute or
two rather than the ORM path's much longer. Both sizes are seeded the same way; only the sizes
differ. The first `--clients` accounts are the ones that annotate.

The machine is shared: the client, gunicorn and PostgreSQL compete for the same cores with
whatever else runs, so compare the server-side times (gunicorn's own request time) first, and
rerun when the machine is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _inner(pairs: int, accounts: int, load_argv: list[str]) -> int:
    """In a child process: annotator_load.main with the bulk seeding step."""
    import annotator_load  # benchmarks/ is on sys.path as the script's folder

    from benchmarks.bulk_seed import seed_pairs

    def seed(self, name: str, n_pairs: int, annotators: int, overlap: int) -> dict:
        out = self.tmp / f"seed-{name}.json"
        started = time.perf_counter()
        self._manage(
            "seed_load_test",
            "--pairs",
            "0",
            "--annotators",
            str(max(accounts, annotators)),
            "--overlap",
            str(overlap),
            "--out",
            str(out),
            "--project-name",
            f"Scale: {name}",
        )
        data = json.loads(out.read_text())
        seed_pairs(self.db_url, data["project_id"], n_pairs, judged_overlap=0, queue_overlap=overlap)
        data["tokens"] = data["tokens"][:annotators]
        data["annotators"] = data["annotators"][:annotators]
        data["seconds"] = time.perf_counter() - started
        print(f"  seeded {n_pairs:,} pairs and {max(accounts, annotators):,} accounts in {data['seconds']:.1f} s", flush=True)
        return data

    annotator_load.Stack.seed = seed
    return annotator_load.main(["--pairs", str(pairs), *load_argv])


def _figures(report: dict, scenario: str) -> dict:
    entry = next(s for s in report["scenarios"] if s["name"] == scenario)
    return {
        call: {k: entry["calls"][call][k] for k in ("p50_ms", "p99_ms", "server_p50_ms", "server_p99_ms", "requests", "errors")}
        for call in ("next", "judgment")
    }


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_inner"]:
        return _inner(int(argv[1]), int(argv[2]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-pairs", type=int, default=2000)
    parser.add_argument("--small-accounts", type=int, default=200)
    parser.add_argument("--large-pairs", type=int, default=1_000_000)
    parser.add_argument("--large-accounts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20, help="concurrent simulated annotators (annotator_load --annotators)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--scenario", default="paced", choices=["paced", "saturation"])
    parser.add_argument("--think-ms", type=float, default=1000.0, help="mean think time in the paced scenario")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--db-name", default="feedback_scale_bench")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    runs = {}
    for label, pairs, accounts in (("small", args.small_pairs, args.small_accounts), ("large", args.large_pairs, args.large_accounts)):
        out = tmp / f"{label}.json"
        load_argv = [
            "--annotators",
            str(args.clients),
            "--duration",
            str(args.duration),
            "--scenarios",
            args.scenario,
            "--think-ms",
            str(args.think_ms),
            "--overlap",
            str(args.overlap),
            "--workers",
            str(args.workers),
            "--db-name",
            args.db_name,
            "--json-out",
            str(out),
        ]
        print(f"== {label}: {pairs:,} pairs, {accounts:,} accounts, {args.clients} clients ({args.scenario}) ...", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--_inner", str(pairs), str(accounts), *load_argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            capture_output=True,
            text=True,
        )
        print(done.stdout[-2500:], flush=True)
        if not out.exists():
            print(done.stderr[-3000:])
            raise SystemExit(f"annotator_load.py ({label}) wrote no results (exit {done.returncode})")
        if done.returncode:
            print(f"   (annotator_load.py exit {done.returncode}: some of its own absolute targets were missed; see above)")
        runs[label] = {
            "pairs": pairs,
            "accounts": accounts,
            "seconds": time.perf_counter() - started,
            "calls": _figures(json.loads(out.read_text()), args.scenario),
        }

    print(
        f"\nScale ratio, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {runs['large']['pairs']:,} pairs / "
        f"{runs['large']['accounts']:,} accounts vs {runs['small']['pairs']:,} pairs / {runs['small']['accounts']:,} accounts, "
        f"{args.clients} clients, {args.scenario}, {args.duration:g} s; target: each ratio <= 2"
    )
    print(f"   {'call':<10}{'metric':<11}{'small ms':>10}{'large ms':>10}{'ratio':>8}")
    ratios = {}
    for call in ("next", "judgment"):
        for metric in ("p50_ms", "p99_ms", "server_p50_ms", "server_p99_ms"):
            small, large = runs["small"]["calls"][call][metric], runs["large"]["calls"][call][metric]
            ratio = large / small if small and large is not None else None
            ratios[f"{call}.{metric}"] = ratio
            print(
                f"   {call:<10}{metric.replace('_ms', ''):<11}{small or float('nan'):>10.1f}{large or float('nan'):>10.1f}"
                f"{ratio if ratio is not None else float('nan'):>8.2f}"
            )
    errors = sum(runs[label]["calls"][call]["errors"] for label in runs for call in ("next", "judgment"))
    print(f"   errors: {errors}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": runs, "ratios": ratios, "args": vars(args)}, indent=2))
    ok = errors == 0 and all(r is not None and r <= 2 for k, r in ratios.items() if k.endswith(("p50_ms", "p99_ms")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
