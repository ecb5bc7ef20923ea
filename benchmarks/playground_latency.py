"""Playground latency: time to first token and tokens/s for SmolLM2-135M-Instruct, end to end.

What it measures
    The real path a staff member's message takes: the REST API (Django, in this process) creates
    the messages and queues `playground.generate` in the broker; a real Celery worker on the
    `playground` queue (started here, no max-tasks-per-child, like `make run`'s) loads the version
    (or finds it loaded), streams the answer into the database row; this script polls the chat
    through the API every 50 ms, as the page does every 250 ms.

    * ttft_s       POST of the message -> first non-empty answer text visible through the API
    * tokens_per_s answer tokens / (answer done - first token visible), as seen through the API
    * worker_first_token_ms, queue_ms, model_was_loaded: the worker's own account

    Scenarios, each on a freshly started worker for the cold case:
      single     one version (v0, the base model): message 1 is cold (model load included),
                 message 2 warm (same chat, the version is still loaded)
      side_by_side  v0 and v1 (a LoRA adapter on v0, sharing its weights) answer the same message;
                 one worker with concurrency 1 runs the two answers one after the other, so the
                 second lane's first token waits for the first lane's answer

    Greedy decoding (temperature 0) with a fixed max_new_tokens, so the cold and warm answers of
    a lane are the same length and their rates comparable.

Usage
    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... FEEDBACK_VAR_DIR=var/bench \\
      nice -n 10 .venv/bin/python benchmarks/playground_latency.py [--max-new-tokens 64]
    Results: a table on stdout and benchmarks/results/playground_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Polling runs in this process, on the same CPUs as the worker: often enough to time the first
# token well, rarely enough not to slow the worker down.
POLL_SECONDS = 0.05
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")


def start_worker(log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PLAYGROUND_TORCH_THREADS": os.environ.get("PLAYGROUND_TORCH_THREADS", "1")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            "playground",
            "-n",
            "bench-pg@%h",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--purge",
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(log_path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError("worker not ready in time")


def send_and_watch(client, chat_id: int, content: str, sampling: dict, timeout: float = 900) -> list[dict]:
    started = time.perf_counter()
    answer = client.post(f"/api/v1/playground/chats/{chat_id}/messages", {"content": content, **sampling}, content_type="application/json")
    if answer.status_code != 202:
        raise RuntimeError(f"send failed: {answer.status_code} {answer.content[:500]}")
    ids = [a["id"] for a in answer.json()["answers"]]
    first_seen: dict[int, float] = {}
    done_at: dict[int, float] = {}
    while time.perf_counter() - started < timeout:
        chat = client.get(f"/api/v1/playground/chats/{chat_id}/").json()
        now = time.perf_counter() - started
        by_id = {m["id"]: m for m in chat["messages"]}
        for message_id in ids:
            message = by_id[message_id]
            if message["content"] and message_id not in first_seen:
                first_seen[message_id] = now
            if message["status"] in ("done", "failed", "cancelled") and message_id not in done_at:
                done_at[message_id] = now
        if len(done_at) == len(ids):
            break
        time.sleep(POLL_SECONDS)
    else:
        raise RuntimeError("answers did not finish in time")
    results = []
    for message_id in ids:
        message = by_id[message_id]
        if message["status"] != "done":
            raise RuntimeError(f"answer {message_id} {message['status']}: {message['error']}")
        first = first_seen.get(message_id, done_at[message_id])
        span = done_at[message_id] - first
        results.append(
            {
                "lane": message["lane"],
                "ttft_s": round(first, 3),
                "total_s": round(done_at[message_id], 3),
                "tokens": message["token_count"],
                "tokens_per_s": round((message["token_count"] - 1) / span, 2) if span > 0 and message["token_count"] > 1 else None,
                "worker_first_token_ms": round(message["first_token_ms"] or 0, 1),
                "queue_ms": round(message["queue_ms"] or 0, 1),
                "model_was_loaded": message["model_was_loaded"],
            }
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json-out", type=Path, default=REPO / "benchmarks" / "results" / "playground_latency.json")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from feedback_site.registry.models import ModelKind, ModelVersion
    from feedback_site.registry.services import project_create
    from rlhf.models import BUILTIN_SMOLLM2, resolve_model_path

    artifacts = Path(settings.ARTIFACTS_DIR)
    base_dir = resolve_model_path(BUILTIN_SMOLLM2, artifacts)  # converted once, outside the timings
    adapter_dir = artifacts / "bench" / "smollm2-lora-random"
    if not (adapter_dir / "adapter_config.json").is_file():
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(base_dir),
            LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False),
        )
        model.peft_config["default"].base_model_name_or_path = str(base_dir)
        model.save_pretrained(adapter_dir)
        del model

    # Answers left open by an interrupted earlier run would be picked up first and distort the
    # cold timings: close them (their tasks then do nothing) and start workers with --purge.
    from feedback_site.playground.models import OPEN_STATUSES, ChatMessage, MessageStatus

    ChatMessage.objects.filter(status__in=OPEN_STATUSES).update(status=MessageStatus.CANCELLED)
    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(username="bench-playground", defaults={"is_superuser": True, "is_staff": True})
    project = project_create(creator=admin, name=f"Playground benchmark {datetime.now():%H%M%S}", base_policy_uri=BUILTIN_SMOLLM2)
    v0 = project.current_policy
    v1 = ModelVersion.objects.create(
        project=project,
        kind=ModelKind.POLICY,
        number=v0.number + 1,
        name="LoRA (random)",
        artifact_uri=str(adapter_dir),
        base_model=str(base_dir),
        parent=v0,
    )
    client = Client()
    client.force_login(admin)
    sampling = {"temperature": 0.0, "max_new_tokens": args.max_new_tokens, "seed": 0}
    prompt = "Explain in a few sentences why the sky is blue."
    follow_up = "Now explain why sunsets are red."
    log_dir = Path(settings.VAR_DIR) / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)

    scenarios = {}
    for name, versions in (("single", [v0.pk]), ("side_by_side", [v0.pk, v1.pk])):
        log_path = log_dir / f"playground-worker-{name}.log"
        worker = start_worker(log_path)
        try:
            wait_ready(log_path, worker)
            chat = client.post(
                f"/api/v1/projects/{project.pk}/playground/chats/", {"version_ids": versions}, content_type="application/json"
            ).json()
            cold = send_and_watch(client, chat["id"], prompt, sampling)
            warm = send_and_watch(client, chat["id"], follow_up, sampling)
            scenarios[name] = {"cold": cold, "warm": warm}
        finally:
            stop_worker(worker)

    single = scenarios["single"]
    summary = {
        "warm_over_cold_ttft": round(single["warm"][0]["ttft_s"] / single["cold"][0]["ttft_s"], 3),
    }
    result = {
        "benchmark": "playground_latency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "SmolLM2-135M-Instruct (builtin, float32)",
        "device": "cpu" if os.environ.get("RLHF_DEVICE", "cpu") == "cpu" else os.environ["RLHF_DEVICE"],
        "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": settings.CELERY_BROKER_URL.split("://")[0],
        "sampling": sampling,
        "torch_threads_in_worker": os.environ.get("PLAYGROUND_TORCH_THREADS", "1"),
        "scenarios": scenarios,
        "summary": summary,
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'scenario':<14}{'message':<8}{'lane':<6}{'TTFT s':>8}{'tok/s':>8}{'tokens':>8}{'loaded':>8}")
    for name, runs in scenarios.items():
        for phase in ("cold", "warm"):
            for lane in runs[phase]:
                print(
                    f"{name:<14}{phase:<8}{lane['lane']:<6}{lane['ttft_s']:>8.2f}{(lane['tokens_per_s'] or 0):>8.1f}"
                    f"{lane['tokens']:>8}{str(lane['model_was_loaded']):>8}"
                )
    print(f"warm/cold time to first token (single): {summary['warm_over_cold_ttft']}")
    print(f"written to {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
