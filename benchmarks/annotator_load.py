#!/usr/bin/env python
"""N simulated annotators against the service run as in production, and the stack's own ceiling.

    .venv/bin/python benchmarks/annotator_load.py                      # N=200, 2000 pairs, overlap 3
    .venv/bin/python benchmarks/annotator_load.py --annotators 50 --duration 10 --json-out var/load.json
    .venv/bin/python benchmarks/annotator_load.py --kind ranking --k 4    # K-way rankings instead of pairs

Task kinds (`--kind`):
- `pair` (the default): next, then a judgment of left/right/tie/both bad;
- `ranking`: next, then a random ranking of the K answers shown, a tie in about a third of them
  (seeded with `manage.py seed_ranking_load_test`);
- `conversation`: next, then for each of `--turns` turns: wait for the worker's K candidate
  replies (polling the state every 0.7 s as the page does), think, pick one, submit the turn
  (seeded with `manage.py seed_conversation_load_test`: a tiny random policy, so the figure is
  the service's and not a model's; a real Celery worker on `--redis-url` samples every turn).
  A "judgment" is one judged turn; the wait for replies is reported beside the API latencies.
Every check below holds for each kind: the database read-back counts over-assigned tasks and lost
or duplicated results the same way.

What it does, start to end:
1. creates a fresh PostgreSQL database (`--db-name`, default `feedback_bench`; dropped first if a
   previous run left it), runs `manage.py migrate`, and seeds one project per scenario with
   `manage.py seed_load_test` (its own pairs and annotators, so each scenario starts from a full
   queue);
2. starts gunicorn on `feedback_site.wsgi:application` with the production profile
   (DJANGO_PROFILE=production, DEBUG off, persistent database connections) and sends
   `X-Forwarded-Proto: https` the way the TLS-terminating proxy would;
3. for each scenario, runs two phases of `--duration` seconds with the same N concurrent clients:
   - `health`: each client loops GET /api/v1/health, GET /api/v1/health, think;
   - `annotate`: each client loops POST .../assignments/next, think, POST .../judgment with a
     random choice, until the queue answers 204 or the time is up;
   so both phases offer the same request pattern and the ratio of their request rates says how
   much of the stack's ceiling (Django + gunicorn + one `SELECT 1`) the annotation API keeps;
4. reads the database back: over-assigned pairs (more judgments + live leases than the overlap,
   or one annotator twice on a pair), lost judgments (a 201 the client saw whose row is missing or
   differs) and duplicated ones;
5. stops gunicorn and drops the database (unless --keep-db), also on Ctrl-C or SIGTERM.

Scenarios (`--scenarios`, default both):
- `paced`: a simulated annotator "thinks" between receiving a pair and submitting it, an
  exponentially distributed time (Poisson-like bursts) with mean `--think-ms` (default 5000 ms).
  Reading a prompt and two answers of a few hundred characters and choosing takes a person
  10-60 s, so these annotators are 2-12 times faster than people: 200 of them offer the load of
  400-2,400 real annotators (~40 judgments/s). This is the scenario the latency targets are
  about: does the server keep up, without degrading, with 200 annotators at work?
- `saturation`: no think time: every client fires its next request as soon as the last one
  answers. Throughput is then the server's capacity and latency is mostly queueing
  (by Little's law p50 ~ N / throughput), so the p99 target cannot be read from it; it is reported
  for the capacity and the ratio.

Which ratio is the 40% target: the saturation scenario's ratio of request rates. There both
phases are closed loops of the same N clients with the same request pattern (two requests per
loop, no think time), so each rate is what the server sustains and the ratio says how much of the
stack's own ceiling the annotation API keeps. The paced scenario's ratio only compares offered
loads (both phases mostly wait on think time) and is printed for information. A second reading
is printed too: server CPU (gunicorn + PostgreSQL) per health request divided by server CPU per
annotator request, the same ratio as a capacity bound, which other processes on a shared machine
disturb much less than the rates.

Server configuration (default: gunicorn sync workers, `--workers 2`). The annotation calls are
CPU-bound: about 70% of their server CPU is Python (Django/DRF), the rest is PostgreSQL, on the
same 2 cores. Measured on the 2-core machine, more processes than cores did not add capacity but
added context switches (server CPU per annotator request ~6-8 ms with 2 sync workers, ~9-10 ms
with 4-6), and gthread workers serialise on the GIL (~9-10 ms per request and longer tails); their
keep-alive only helps the health endpoint. Behind a proxy that does not keep upstream connections
alive (nginx's default) sync workers lose nothing. With a remote database (more time waiting per
request) use more workers, e.g. 2 x cores + 1.

The client competes with the server for the same 2 cores. It is a single asyncio process with a
minimal HTTP/1.1 keep-alive client (`--client raw`, ~30 us of CPU per request) rather than httpx
(`--client httpx`, several times more CPU per request), and the report prints the CPU the client,
gunicorn and the rest of the machine used in each phase, so a reader can tell when the client is
the bottleneck. Server-side times (gunicorn's own %(D)s, excluding time spent waiting for a
worker) are printed next to the client-side latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHOICES = ("left", "right", "tie", "both_bad")
REQUEST_TIMEOUT_S = 30.0
# How often a conversation client asks for the state while the worker samples a turn's replies:
# what the page does (conversations/static/conversations/converse.js polls every 700 ms).
STATE_POLL_S = 0.7


def _pair_body(rng: random.Random, leased: dict) -> dict:
    return {"choice": rng.choice(CHOICES), "time_spent_ms": 1000}


def _ranking_body(rng: random.Random, leased: dict) -> dict:
    # A random ranking of the answers shown, with a tie in about a third of them.
    ids = [a["response_id"] for a in leased["answers"]]
    ranks = list(range(1, len(ids) + 1))
    rng.shuffle(ranks)
    if rng.random() < 0.33:
        ranks[ranks.index(max(ranks))] = max(ranks) - 1
    return {"ranks": [{"response_id": pk, "rank": r} for pk, r in zip(ids, ranks)], "time_spent_ms": 1000}


def _order_key(order: list[list[int]]) -> str:
    return ">".join("=".join(str(a) for a in sorted(tier)) for tier in order)  # as rankings.services.order_key


@dataclass(frozen=True)
class TaskKindSpec:
    """How the benchmark drives one task kind through the API and reads it back from the database."""

    name: str
    seed_command: str
    next_path: str  # .format(project_id=...)
    submit_path: str  # .format(assignment_id=...)
    body: Callable[[random.Random, dict], dict]
    result_id: str  # the submit answer's id field
    result_value: Callable[[dict], str]  # what the submit answer says was stored
    task_table: str
    lease_table: str
    result_table: str
    task_fk: str  # column of the lease and result tables naming the task
    count_column: str
    value_column: str
    noun: str  # plural, for the report
    # Where the acknowledged submits are read back (the result table, or a conversation's branch
    # points: one per judged turn), the value compared, and what makes a row unique.
    seen_table: str = ""
    seen_value: str = ""
    seen_key: str = "assignment_id"


KINDS = {
    "pair": TaskKindSpec(
        name="pair",
        seed_command="seed_load_test",
        next_path="/api/v1/projects/{project_id}/assignments/next",
        submit_path="/api/v1/assignments/{assignment_id}/judgment",
        body=_pair_body,
        result_id="judgment_id",
        result_value=lambda data: data["choice"],
        task_table="annotation_pair",
        lease_table="annotation_assignment",
        result_table="annotation_judgment",
        task_fk="pair_id",
        count_column="judgment_count",
        value_column="choice",
        noun="judgments",
    ),
    "ranking": TaskKindSpec(
        name="ranking",
        seed_command="seed_ranking_load_test",
        next_path="/api/v1/projects/{project_id}/rankings/next",
        submit_path="/api/v1/ranking-assignments/{assignment_id}/submit",
        body=_ranking_body,
        result_id="ranking_id",
        result_value=lambda data: _order_key(data["order"]),
        task_table="rankings_rankingtask",
        lease_table="rankings_rankingassignment",
        result_table="rankings_ranking",
        task_fk="task_id",
        count_column="submitted_count",
        value_column="order_key",
        noun="rankings",
    ),
    "conversation": TaskKindSpec(
        name="conversation",
        seed_command="seed_conversation_load_test",
        next_path="/api/v1/projects/{project_id}/conversations/next",
        submit_path="/api/v1/conversation-assignments/{assignment_id}/turn",
        body=lambda rng, leased: {},  # the conversation client builds each turn itself
        result_id="",
        result_value=lambda data: "",
        task_table="conversations_conversationtask",
        lease_table="conversations_conversationassignment",
        result_table="conversations_conversationresult",
        task_fk="task_id",
        count_column="submitted_count",
        value_column="",
        noun="turns",
        seen_table="conversations_branchpoint",
        seen_value="chosen_id::text",
        seen_key="assignment_id, turn_index",
    ),
}


# --------------------------------------------------------------------------------------------
# HTTP clients
# --------------------------------------------------------------------------------------------


class RawHTTP:
    """One keep-alive HTTP/1.1 connection, just enough for this service: Content-Length or chunked
    bodies, `Connection: close` honoured (gunicorn's sync workers close after every response).

    A request on a reused connection that the server had already closed (its keep-alive timer)
    fails before any byte of the answer arrives; like every HTTP client it is retried once on a
    fresh connection. Both calls it could repeat are idempotent anyway (a repeated `next` returns
    the open lease, a repeated submit the stored judgment)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        for attempt in (0, 1):
            reused = self.writer is not None
            if not reused:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(data)
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("server closed the connection")
            except (ConnectionError, OSError):
                self.close()
                if reused and attempt == 0:
                    continue
                raise
            try:
                return await self._read_response(status_line)
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    async def _read_response(self, status_line: bytes) -> tuple[int, bytes]:
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            payload = b"".join(parts)
        elif length is not None:
            payload = await self.reader.readexactly(length) if length else b""
        elif status in (204, 304) or 100 <= status < 200:
            payload = b""
        else:
            payload = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, payload


class HttpxHTTP:
    """The same interface on httpx (one AsyncClient per simulated annotator, like a browser)."""

    def __init__(self, host: str, port: int):
        import httpx

        self.client = httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        response = await self.client.request(method, path, headers=headers, content=body or None)
        return response.status_code, response.content


# --------------------------------------------------------------------------------------------
# Load phases
# --------------------------------------------------------------------------------------------


@dataclass
class CallStats:
    latencies: list[float] = field(default_factory=list)  # seconds, every completed request
    statuses: dict[int, int] = field(default_factory=dict)
    exceptions: dict[str, int] = field(default_factory=dict)

    def add(self, started: float, status: int) -> None:
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def fail(self, error: BaseException) -> None:
        name = type(error).__name__
        self.exceptions[name] = self.exceptions.get(name, 0) + 1

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300) + sum(self.exceptions.values())

    @property
    def count(self) -> int:
        return len(self.latencies)


@dataclass
class PhaseResult:
    name: str
    elapsed: float
    calls: dict[str, CallStats]
    cpu: dict[str, float]
    judgments: list[tuple[int, int, str]] = field(default_factory=list)  # (assignment_id, judgment_id, choice)
    repeats: int = 0
    error_samples: list[str] = field(default_factory=list)
    queue_empty_after: float | None = None
    reply_waits: list[float] = field(default_factory=list)  # conversations: seconds from a turn's start to its replies

    @property
    def requests(self) -> int:
        return sum(c.count for c in self.calls.values())


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(gunicorn_pid: int | None, pg_pids: list[int] | None = None) -> dict:
    """CPU seconds used so far by: this process, the gunicorn master and its workers, the
    PostgreSQL backends serving the benchmark database, the whole machine."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict = {"client": sum(os.times()[:2])}
    gunicorn = 0.0
    if gunicorn_pid:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (info := _proc_cpu(int(entry))) is not None:
                if int(entry) == gunicorn_pid or info[0] == gunicorn_pid:
                    gunicorn += info[1]
    out["gunicorn"] = gunicorn
    out["postgres_by_pid"] = {pid: info[1] for pid in pg_pids or [] if (info := _proc_cpu(pid)) is not None}
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu]
    idle = values[3] + values[4]
    out["machine_busy"] = (sum(values[:8]) - idle) / tick
    out["machine_total"] = sum(values[:8]) / tick
    return out


async def _think(rng: random.Random, think_s: float) -> None:
    if think_s > 0:
        await asyncio.sleep(rng.expovariate(1 / think_s))


async def _health_client(http, deadline: float, think_s: float, rng: random.Random, stats: CallStats, headers, errors: list):
    if think_s > 0:
        await asyncio.sleep(rng.uniform(0, think_s))  # spread the start like people arriving
    while time.perf_counter() < deadline:
        for _ in (0, 1):  # two requests per think, like next + submit
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(http.request("GET", "/api/v1/health", headers), REQUEST_TIMEOUT_S)
                stats.add(started, status)
                if status != 200 and len(errors) < 20:
                    errors.append(f"health {status}: {body[:200]!r}")
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as error:
                http.close()
                stats.fail(error)
                if len(errors) < 20:
                    errors.append(f"health {type(error).__name__}: {error}")
        await _think(rng, think_s)


async def _annotator_client(
    http,
    spec: TaskKindSpec,
    project_id: int,
    token: str,
    deadline: float,
    think_s: float,
    rng: random.Random,
    calls: dict[str, CallStats],
    result: PhaseResult,
    headers,
    phase_started: float,
):
    headers = {**headers, "Authorization": f"Token {token}", "Content-Type": "application/json"}
    next_path = spec.next_path.format(project_id=project_id)
    if think_s > 0:
        await asyncio.sleep(rng.uniform(0, think_s))
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            status, body = await asyncio.wait_for(http.request("POST", next_path, headers), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as error:
            http.close()
            calls["next"].fail(error)
            if len(result.error_samples) < 20:
                result.error_samples.append(f"next {type(error).__name__}: {error}")
            await asyncio.sleep(0.05)
            continue
        calls["next"].add(started, status)
        if status == 204:
            if result.queue_empty_after is None:
                result.queue_empty_after = time.perf_counter() - phase_started
            return
        if status != 200:
            if len(result.error_samples) < 20:
                result.error_samples.append(f"next {status}: {body[:300]!r}")
            await asyncio.sleep(0.05)
            continue
        leased = json.loads(body)
        assignment_id = leased["assignment_id"]
        await _think(rng, think_s)
        payload = json.dumps(spec.body(rng, leased)).encode()
        path = spec.submit_path.format(assignment_id=assignment_id)
        # A submit is retried (it is idempotent) until it gets an answer, so an exception never
        # leaves a lease dangling; only a bounded number of tries, though.
        for _ in range(3):
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(http.request("POST", path, headers, payload), REQUEST_TIMEOUT_S)
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as error:
                http.close()
                calls["judgment"].fail(error)
                if len(result.error_samples) < 20:
                    result.error_samples.append(f"judgment {type(error).__name__}: {error}")
                continue
            calls["judgment"].add(started, status)
            if status in (200, 201):
                data = json.loads(body)
                result.judgments.append((data["assignment_id"], data[spec.result_id], spec.result_value(data)))
                if status == 200:
                    result.repeats += 1
            elif len(result.error_samples) < 20:
                result.error_samples.append(f"judgment {status}: {body[:300]!r}")
            break


async def _conversation_client(
    http,
    spec: TaskKindSpec,
    project_id: int,
    token: str,
    deadline: float,
    think_s: float,
    rng: random.Random,
    calls: dict[str, CallStats],
    result: PhaseResult,
    headers,
    phase_started: float,
):
    """One annotator working through conversations: lease one, and for each turn wait for the
    worker's candidate replies (polling the state as the page does), think, pick one, submit."""
    headers = {**headers, "Authorization": f"Token {token}", "Content-Type": "application/json"}
    next_path = spec.next_path.format(project_id=project_id)

    async def call(key: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes] | None:
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(http.request(method, path, headers, body), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as error:
            http.close()
            calls[key].fail(error)
            if len(result.error_samples) < 20:
                result.error_samples.append(f"{key} {type(error).__name__}: {error}")
            return None
        calls[key].add(started, answer[0])
        if answer[0] not in (200, 201, 204) and len(result.error_samples) < 20:
            result.error_samples.append(f"{key} {answer[0]}: {answer[1][:300]!r}")
        return answer

    if think_s > 0:
        await asyncio.sleep(rng.uniform(0, think_s))
    while time.perf_counter() < deadline:
        answer = await call("next", "POST", next_path)
        if answer is None or answer[0] not in (200, 204):
            await asyncio.sleep(0.05)
            continue
        if answer[0] == 204:
            if result.queue_empty_after is None:
                result.queue_empty_after = time.perf_counter() - phase_started
            return
        state = json.loads(answer[1])
        assignment_id = state["assignment_id"]
        state_path = f"/api/v1/conversation-assignments/{assignment_id}/"
        turn_path = spec.submit_path.format(assignment_id=assignment_id)
        waiting_since = time.perf_counter()
        while not state["done"] and state["branch_point"] is not None and time.perf_counter() < deadline:
            point = state["branch_point"]
            if point["status"] == "failed":
                if len(result.error_samples) < 20:
                    result.error_samples.append(f"generation failed: {point['error'][:200]}")
                break
            if point["status"] != "ready":
                await asyncio.sleep(STATE_POLL_S)
                answer = await call("state", "GET", state_path)
                if answer is not None and answer[0] == 200:
                    state = json.loads(answer[1])
                continue
            result.reply_waits.append(time.perf_counter() - waiting_since)
            await _think(rng, think_s)
            choice = rng.choice(point["replies"])["id"]
            payload = json.dumps({"branch_point_id": point["id"], "choice": choice, "time_spent_ms": 1000}).encode()
            for _ in range(3):  # idempotent: a repeat returns what is stored
                answer = await call("judgment", "POST", turn_path, payload)
                if answer is not None:
                    break
            if answer is None or answer[0] not in (200, 201):
                break
            result.judgments.append((assignment_id, point["id"], str(choice)))
            if answer[0] == 200:
                result.repeats += 1
            state = json.loads(answer[1])
            waiting_since = time.perf_counter()


async def run_phase(
    *,
    name: str,
    kind: str,
    port: int,
    clients: int,
    duration: float,
    think_s: float,
    seed: int,
    client_kind: str,
    gunicorn_pid: int,
    pg_pids=lambda: [],
    project_id: int | None = None,
    tokens: list[str] | None = None,
    spec: TaskKindSpec = KINDS["pair"],
) -> PhaseResult:
    factory = RawHTTP if client_kind == "raw" else HttpxHTTP
    https = {"X-Forwarded-Proto": "https", "X-Bench-Phase": name}  # as the proxy in front of gunicorn sends
    conns = [factory("127.0.0.1", port) for _ in range(clients)]
    calls = {"health": CallStats()} if kind == "health" else {"next": CallStats(), "judgment": CallStats()}
    if kind != "health" and spec.name == "conversation":
        calls["state"] = CallStats()
    cpu_before = _cpu_snapshot(gunicorn_pid, pg_pids())
    started = time.perf_counter()
    deadline = started + duration
    result = PhaseResult(name=name, elapsed=0.0, calls=calls, cpu={})
    if kind == "health":
        tasks = [
            _health_client(conns[i], deadline, think_s, random.Random(seed * 7919 + i), calls["health"], https, result.error_samples)
            for i in range(clients)
        ]
    else:
        client = _conversation_client if spec.name == "conversation" else _annotator_client
        tasks = [
            client(conns[i], spec, project_id, tokens[i], deadline, think_s, random.Random(seed * 7919 + i), calls, result, https, started)
            for i in range(clients)
        ]
    try:
        await asyncio.gather(*tasks)
    finally:
        result.elapsed = time.perf_counter() - started
        cpu_after = _cpu_snapshot(gunicorn_pid, pg_pids())
        before_pg, after_pg = cpu_before.pop("postgres_by_pid"), cpu_after.pop("postgres_by_pid")
        result.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
        # Backends that ended during the phase are missed; with persistent connections there are few.
        result.cpu["postgres"] = sum(cpu - before_pg.get(pid, 0.0) for pid, cpu in after_pg.items())
        for conn in conns:
            conn.close()
            if hasattr(conn, "aclose"):
                await conn.aclose()
    return result


# --------------------------------------------------------------------------------------------
# Database checks
# --------------------------------------------------------------------------------------------


def check_database(db_url: str, project_id: int, seen: list[tuple[int, int, str]], spec: TaskKindSpec = KINDS["pair"]) -> dict[str, int]:
    """Read back what the clients did. `seen`: (assignment_id, result_id, value) of every 200/201."""
    tasks, leases, results, fk = spec.task_table, spec.lease_table, spec.result_table, spec.task_fk
    with psycopg.connect(db_url) as conn:
        one = lambda sql, *params: conn.execute(sql, params).fetchone()[0]  # noqa: E731
        checks = {}
        # Lease or result slots beyond the overlap. Leases in this run never expire (10 minutes
        # against a run of seconds), so every non-skipped assignment held its slot at some point.
        checks["over_assigned_pairs"] = one(
            f"""SELECT count(*) FROM (
                 SELECT p.id FROM {tasks} p
                 JOIN {leases} a ON a.{fk} = p.id
                  AND (a.status = 'submitted' OR (a.status = 'leased' AND a.expires_at > now()))
                 WHERE p.project_id = %s GROUP BY p.id, p.overlap HAVING count(*) > p.overlap) x""",
            project_id,
        )
        checks["over_judged_pairs"] = one(
            f"""SELECT count(*) FROM (SELECT p.id FROM {tasks} p JOIN {results} j ON j.{fk} = p.id
                 WHERE p.project_id = %s GROUP BY p.id, p.overlap HAVING count(*) > p.overlap) x""",
            project_id,
        )
        checks["same_annotator_twice"] = one(
            f"""SELECT count(*) FROM (SELECT a.{fk} FROM {leases} a JOIN {tasks} p ON p.id = a.{fk}
                 WHERE p.project_id = %s GROUP BY a.{fk}, a.annotator_id HAVING count(*) > 1) x""",
            project_id,
        ) + one(
            f"""SELECT count(*) FROM (SELECT j.{fk} FROM {results} j JOIN {tasks} p ON p.id = j.{fk}
                 WHERE p.project_id = %s GROUP BY j.{fk}, j.annotator_id HAVING count(*) > 1) x""",
            project_id,
        )
        checks["counter_mismatch_pairs"] = one(
            f"""SELECT count(*) FROM {tasks} p
                 WHERE p.project_id = %s AND (p.{spec.count_column} <> (SELECT count(*) FROM {results} j WHERE j.{fk} = p.id)
                   OR p.is_complete <> (p.{spec.count_column} >= p.overlap))""",
            project_id,
        )
        seen_table = spec.seen_table or results
        seen_value = spec.seen_value or f"j.{spec.value_column}"
        judged = "AND j.judged_at IS NOT NULL" if spec.seen_table else ""
        stored = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                f"SELECT j.id, j.assignment_id, {seen_value} FROM {seen_table} j JOIN {tasks} p ON p.id = j.{fk} "
                f"WHERE p.project_id = %s {judged}",
                (project_id,),
            )
        }
        checks["lost_judgments"] = sum(1 for a, j, c in seen if stored.get(j) != (a, c))
        checks["duplicated_judgments"] = (len(seen) - len({j for _, j, _ in seen})) + one(
            f"""SELECT count(*) FROM (SELECT {spec.seen_key} FROM {seen_table} j WHERE j.assignment_id IS NOT NULL {judged}
                 GROUP BY {spec.seen_key} HAVING count(*) > 1) x"""
        )
        # Stored but never acknowledged (e.g. the client timed out after the commit): not an error
        # of the service, but shown so the numbers add up.
        checks["unacknowledged_judgments"] = len(set(stored) - {j for _, j, _ in seen})
        checks["judgments_in_db"] = len(stored)
        checks["live_leases_left"] = one(
            f"""SELECT count(*) FROM {leases} a JOIN {tasks} p ON p.id = a.{fk}
                 WHERE p.project_id = %s AND a.status = 'leased' AND a.expires_at > now()""",
            project_id,
        )
    return checks


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/]*$", f"/{name}", url.rstrip("/")) if url.count("/") > 2 else f"{url.rstrip('/')}/{name}"


class Stack:
    """The database and gunicorn; `close()` undoes whatever was started, once."""

    def __init__(self, args):
        self.args = args
        self.admin_url = args.pg_url
        self.db_url = _with_db(args.pg_url, args.db_name)
        self.tmp = Path(tempfile.mkdtemp(prefix="annotator_load_"))
        (self.tmp / "static").mkdir()
        self.gunicorn: subprocess.Popen | None = None
        self.db_created = False
        self.port = args.port or _free_port()
        self.access_log = self.tmp / "access.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "DJANGO_PROFILE": "production",
            "DJANGO_SECRET_KEY": "bench-" + os.urandom(32).hex(),
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "FEEDBACK_VAR_DIR": str(self.tmp),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_URL": args.redis_url,
        }
        self.worker: subprocess.Popen | None = None

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.args.db_name):
            raise SystemExit("--db-name: lower-case letters, digits and _ only")
        self._admin(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.args.db_name}"')
        self.db_created = True
        self._manage("migrate", "--no-input", "-v", "0")

    def _manage(self, *argv: str) -> str:
        done = subprocess.run([PYTHON, str(ROOT / "manage.py"), *argv], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def seed(self, name: str, pairs: int, annotators: int, overlap: int, spec: TaskKindSpec = KINDS["pair"]) -> dict:
        out = self.tmp / f"seed-{name}.json"
        started = time.perf_counter()
        size = {
            "pair": ["--pairs", str(pairs)],
            "ranking": ["--tasks", str(pairs), "--k", str(self.args.k)],
            "conversation": ["--tasks", str(pairs), "--turns", str(self.args.turns), "--candidates", str(self.args.k)],
        }[spec.name]
        self._manage(
            spec.seed_command,
            *size,
            "--annotators",
            str(annotators),
            "--overlap",
            str(overlap),
            "--out",
            str(out),
            "--project-name",
            f"Load test: {name}",
        )
        data = json.loads(out.read_text())
        data["seconds"] = time.perf_counter() - started
        return data

    def start_gunicorn(self) -> None:
        a = self.args
        cmd = [
            str(Path(PYTHON).with_name("gunicorn")),
            "feedback_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(a.workers),
            "--worker-class",
            a.worker_class,
            "--threads",
            str(a.threads),
            "--keep-alive",
            str(a.keep_alive),
            "--backlog",
            "2048",
            "--timeout",
            "60",
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.tmp / "gunicorn.log"),
        ]
        if not a.no_access_log:
            cmd += ["--access-logfile", str(self.access_log), "--access-logformat", "%({x-bench-phase}i)s %(m)s %(U)s %(s)s %(D)s"]
        # Its own session: a Ctrl-C in the terminal reaches this script, which then stops gunicorn
        # in order (SIGTERM, then SIGKILL to the whole group if it hangs).
        self.gunicorn = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.gunicorn.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.gunicorn.returncode}:\n{self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer /api/v1/health within 60 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.tmp / "gunicorn.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def postgres_pids(self) -> list[int]:
        """The server processes of the benchmark database's connections (PostgreSQL on this machine)."""
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.args.db_name,)
                ).fetchall()
            return [pid for (pid,) in rows]
        except psycopg.Error:
            return []

    def worker_pids(self) -> int:
        return self.gunicorn.pid if self.gunicorn else 0

    def start_worker(self) -> None:
        """The worker that samples conversation turns (the `playground` queue, as in production),
        one process with one torch thread per `--generation-workers`."""
        env = {**self.env, "RLHF_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "PLAYGROUND_TORCH_THREADS": "1"}
        self.worker_log = self.tmp / "worker.log"
        cmd = [PYTHON, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "playground", "-n", f"bench-{os.getpid()}@%h"]
        cmd += ["--purge", "--concurrency", str(self.args.generation_workers), "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
        self.worker = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while " ready." not in self.worker_log.read_text():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the conversation worker did not start:\n{self.worker_log.read_text()[-3000:]}")
            time.sleep(0.5)

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            try:
                os.killpg(self.worker.pid, signal.SIGTERM)
                self.worker.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.worker.pid, signal.SIGKILL)
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            try:
                os.killpg(self.gunicorn.pid, signal.SIGTERM)
                self.gunicorn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.gunicorn.pid, signal.SIGKILL)
                self.gunicorn.wait()
            except ProcessLookupError:
                pass
        self.gunicorn = None
        if self.db_created and not self.args.keep_db:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')
            except psycopg.Error as error:
                print(f"warning: could not drop database {self.args.db_name}: {error}", file=sys.stderr)
            self.db_created = False
        elif self.db_created:
            print(f"kept database {self.args.db_name} ({self.db_url})", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server_times(self) -> dict[str, dict[str, list[float]]]:
        """gunicorn's own request time (%(D)s, microseconds) per phase and route."""
        out: dict[str, dict[str, list[float]]] = {}
        if not self.access_log.exists():
            return out
        for line in self.access_log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            phase, _method, path, _status, micros = parts
            if path.endswith("/health"):
                route = "health"
            elif path.endswith("/next"):
                route = "next"
            elif path.endswith(("/judgment", "/submit", "/turn")):
                route = "judgment"
            elif "/conversation-assignments/" in path and path.endswith("/"):
                route = "state"
            else:
                route = "other"
            out.setdefault(phase, {}).setdefault(route, []).append(int(micros) / 1e6)
        return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _task_noun(args) -> str:
    return {
        "pair": "pairs",
        "ranking": f"ranking tasks of {args.k} answers",
        "conversation": f"conversations of {args.turns} turns x {args.k} candidates",
    }[args.kind]


def _ms(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.1f}"


def summarise(args, machine: dict, scenarios: list[dict], stack: Stack) -> dict:
    server = stack.server_times()
    report = {"machine": machine, "config": {k: v for k, v in vars(args).items() if k not in ("pg_url",)}, "scenarios": []}
    lines = []
    w = lines.append
    w("")
    w(
        f"annotator_load ({args.kind}s): {args.annotators} concurrent clients, {args.pairs} {_task_noun(args)} x overlap {args.overlap} per scenario, "
        f"{args.duration:g} s per phase, client={args.client}"
    )
    w(
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gb']:.0f} GB; {machine['postgres']}; "
        f"Python {machine['python']}; load average before the run {machine['loadavg_before']}"
    )
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    w(
        f"server: gunicorn {args.worker_class}, {args.workers} workers{threads}, keep-alive {args.keep_alive} s, "
        f"DJANGO_PROFILE=production (DEBUG off, CONN_MAX_AGE 60), PostgreSQL on the same machine"
    )
    for sc in scenarios:
        health, annotate, checks = sc["health"], sc["annotate"], sc["checks"]
        think = f"think time exp. mean {sc['think_ms']:g} ms between next and submit" if sc["think_ms"] else "no think time (closed loop)"
        w("")
        w(
            f"== scenario {sc['name']}: {think}; seeded {args.pairs} {_task_noun(args)} + {args.annotators} annotators in {sc['seed_seconds']:.1f} s"
        )
        w(
            f"   {'call':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
            f"   server p50/p99 ms"
        )
        submit_label = "POST judgment" if args.kind == "pair" else f"POST {args.kind} submit"
        if args.kind == "conversation":
            submit_label = "POST turn"
        rows = [("GET health", health, "health"), ("POST next", annotate, "next"), (submit_label, annotate, "judgment")]
        if "state" in annotate.calls:
            rows.append(("GET state (polls)", annotate, "state"))
        entry = {"name": sc["name"], "think_ms": sc["think_ms"], "calls": {}, "checks": checks}
        for label, phase, key in rows:
            stats = phase.calls[key]
            lat = stats.latencies
            srv = server.get(phase.name, {}).get(key, [])
            rate = stats.count / phase.elapsed if phase.elapsed else 0.0
            w(
                f"   {label:<22}{stats.count:>9}{rate:>9.1f}{_ms(_percentile(lat, 50)):>9}{_ms(_percentile(lat, 95)):>9}"
                f"{_ms(_percentile(lat, 99)):>9}{_ms(max(lat) if lat else float('nan')):>9}{stats.errors:>8}"
                f"   {_ms(_percentile(srv, 50))}/{_ms(_percentile(srv, 99))}"
            )
            entry["calls"][key] = {
                "requests": stats.count,
                "per_second": rate,
                "errors": stats.errors,
                "p50_ms": _percentile(lat, 50) * 1000 if lat else None,
                "p95_ms": _percentile(lat, 95) * 1000 if lat else None,
                "p99_ms": _percentile(lat, 99) * 1000 if lat else None,
                "max_ms": max(lat) * 1000 if lat else None,
                "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
                "exceptions": stats.exceptions,
                "server_p50_ms": _percentile(srv, 50) * 1000 if srv else None,
                "server_p99_ms": _percentile(srv, 99) * 1000 if srv else None,
            }
        health_rate = health.requests / health.elapsed
        annot_rate = annotate.requests / annotate.elapsed
        judged = sum(1 for _ in annotate.judgments) - annotate.repeats
        ratio = annot_rate / health_rate if health_rate else 0.0
        saturated = not sc["think_ms"]
        w(
            f"   annotator requests/s {annot_rate:.1f} / health requests/s {health_rate:.1f} = ratio {ratio:.0%}"
            + (
                "  <- the target reading (both phases closed-loop, same clients, same request pattern)"
                if saturated
                else "  (offered load with think time: not a capacity figure; see the saturation scenario)"
            )
        )
        w(
            f"   {KINDS[args.kind].noun}/s {judged / annotate.elapsed:.1f} ({judged} {KINDS[args.kind].noun} in {annotate.elapsed:.1f} s"
            + (f"; queue empty after {annotate.queue_empty_after:.1f} s" if annotate.queue_empty_after else "")
            + ")"
        )
        if annotate.reply_waits:
            waits = annotate.reply_waits
            w(
                f"   waiting for a turn's candidate replies (the worker sampling them, the page polling every {STATE_POLL_S:g} s): "
                f"p50 {_ms(_percentile(waits, 50))} ms, p99 {_ms(_percentile(waits, 99))} ms over {len(waits)} turns"
            )
            entry["reply_wait_p50_ms"] = _percentile(waits, 50) * 1000
            entry["reply_wait_p99_ms"] = _percentile(waits, 99) * 1000
        for phase in (health, annotate):
            c = phase.cpu
            total = c["machine_total"] or 1
            rest = c["machine_busy"] - c["client"] - c["gunicorn"] - c["postgres"]
            per_request = (c["gunicorn"] + c["postgres"]) / phase.requests * 1000 if phase.requests else float("nan")
            w(
                f"   CPU during {phase.name.split(':')[-1]:<8}: machine {c['machine_busy'] / total:.0%} busy of {machine['cpus']} cores: "
                f"gunicorn {c['gunicorn'] / phase.elapsed:.2f}, PostgreSQL {c['postgres'] / phase.elapsed:.2f}, "
                f"client {c['client'] / phase.elapsed:.2f}, other processes {rest / phase.elapsed:.2f} cores; "
                f"server CPU per request {per_request:.1f} ms"
            )
        cpu_per = []
        for phase in (health, annotate):
            c = phase.cpu
            cpu_per.append((c["gunicorn"] + c["postgres"]) / phase.requests if phase.requests else float("nan"))
        cpu_ratio = cpu_per[0] / cpu_per[1] if cpu_per[1] else float("nan")
        others = max(
            (phase.cpu["machine_busy"] - phase.cpu["client"] - phase.cpu["gunicorn"] - phase.cpu["postgres"]) / phase.elapsed
            for phase in (health, annotate)
        )
        w(
            f"   server CPU per health request / per annotator request = {cpu_ratio:.0%} (the same ratio as a capacity "
            f"bound, independent of what else runs on the machine)"
        )
        if others > 0.5:
            w(
                f"   NOTE: other processes used up to {others:.2f} of {machine['cpus']} cores during this scenario; "
                f"latencies and rates above are pessimistic for a dedicated machine"
            )
        w(
            f"   database: over-assigned pairs {checks['over_assigned_pairs']} (over-judged {checks['over_judged_pairs']}, "
            f"same annotator twice {checks['same_annotator_twice']}), lost judgments {checks['lost_judgments']}, "
            f"duplicated {checks['duplicated_judgments']}, counter mismatches {checks['counter_mismatch_pairs']}; "
            f"{checks['judgments_in_db']} judgments stored, {checks['unacknowledged_judgments']} unacknowledged, "
            f"{checks['live_leases_left']} leases open at the end"
        )
        errors = health.calls["health"].errors + annotate.calls["next"].errors + annotate.calls["judgment"].errors
        samples = health.error_samples + annotate.error_samples
        if samples:
            w("   first errors: " + " | ".join(samples[:5]))
        p99s = {k: _percentile(annotate.calls[k].latencies, 99) for k in ("next", "judgment")}
        targets = {
            "errors == 0": errors == 0,
            "over-assigned == 0": checks["over_assigned_pairs"] + checks["over_judged_pairs"] + checks["same_annotator_twice"] == 0,
            "lost == 0": checks["lost_judgments"] + checks["duplicated_judgments"] == 0,
            "p99 next <= 100 ms": p99s["next"] <= 0.100,
            "p99 judgment <= 100 ms": p99s["judgment"] <= 0.100,
        }
        if saturated:
            targets["ratio >= 40%"] = ratio >= 0.40
        w("   targets: " + ", ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in targets.items()))
        entry.update(
            {
                "health_per_second": health_rate,
                "annotator_per_second": annot_rate,
                "ratio": ratio,
                "cpu_ratio": cpu_ratio,
                "other_processes_cores": others,
                "judgments": judged,
                "judgments_per_second": judged / annotate.elapsed,
                "errors": errors,
                "elapsed_s": {"health": health.elapsed, "annotate": annotate.elapsed},
                "queue_empty_after_s": annotate.queue_empty_after,
                "cpu": {"health": health.cpu, "annotate": annotate.cpu},
                "targets": targets,
                "error_samples": samples[:20],
                "seed_seconds": sc["seed_seconds"],
            }
        )
        report["scenarios"].append(entry)
    print("\n".join(lines), flush=True)
    return report


def machine_info() -> dict:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": mem,
        "python": sys.version.split()[0],
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=200, help="concurrent simulated annotators (and health clients)")
    parser.add_argument("--kind", default="pair", choices=sorted(KINDS), help="the task kind the annotators work on")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs (or ranking tasks) seeded per scenario")
    parser.add_argument("--k", type=int, default=4, help="answers per ranking task, candidate replies per conversation turn")
    parser.add_argument("--turns", type=int, default=2, help="assistant turns per conversation (--kind conversation)")
    parser.add_argument("--generation-workers", type=int, default=1, help="worker processes sampling conversation turns")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="the broker the conversation worker listens on (env BENCH_REDIS_URL)",
    )
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase (health, then annotate)")
    parser.add_argument("--think-ms", type=float, default=5000.0, help="mean think time of the paced scenario")
    parser.add_argument("--scenarios", default="paced,saturation", help="comma-separated: paced, saturation")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (see the module docstring)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument("--keep-alive", type=int, default=5, help="gunicorn keep-alive seconds (gthread)")
    parser.add_argument("--no-access-log", action="store_true", help="run gunicorn without its access log (no server-side times)")
    parser.add_argument("--client", default="raw", choices=["raw", "httpx"])
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--db-name", default="feedback_bench")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL URL with the right to create databases (env BENCH_PG_URL)",
    )
    parser.add_argument("--json-out", help="also write the results as JSON here")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind for inspection")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not names or set(names) - {"paced", "saturation"}:
        parser.error("--scenarios: paced and/or saturation")
    if args.annotators < 1 or args.duration <= 0:
        parser.error("--annotators must be >= 1 and --duration > 0")

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    # Also SIGINT explicitly: a shell starts background jobs with SIGINT ignored, and Python then
    # would not turn it into KeyboardInterrupt.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    machine = machine_info()
    with psycopg.connect(args.pg_url) as conn:
        machine["postgres"] = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        machine["postgres"] = f"PostgreSQL {machine['postgres']}"
    stack = Stack(args)
    try:
        print(f"creating database {args.db_name}, migrating, seeding ...", flush=True)
        stack.create_database()
        spec = KINDS[args.kind]
        seeds = {name: stack.seed(name, args.pairs, args.annotators, args.overlap, spec) for name in names}
        print(f"starting gunicorn ({args.worker_class}, {args.workers} workers) on 127.0.0.1:{stack.port} ...", flush=True)
        stack.start_gunicorn()
        if spec.name == "conversation":
            stack.start_worker()
        pid = stack.worker_pids()
        # Warm-up: every worker has served a few requests before anything is measured.
        asyncio.run(
            run_phase(
                name="warmup",
                kind="health",
                port=stack.port,
                clients=min(args.annotators, 20),
                duration=1.0,
                think_s=0,
                seed=args.seed,
                client_kind=args.client,
                gunicorn_pid=pid,
                pg_pids=stack.postgres_pids,
            )
        )
        results = []
        for n, name in enumerate(names):
            think_s = args.think_ms / 1000 if name == "paced" else 0.0
            seed = seeds[name]
            print(f"scenario {name}: health phase ({args.duration:g} s) ...", flush=True)
            health = asyncio.run(
                run_phase(
                    name=f"{name}:health",
                    kind="health",
                    port=stack.port,
                    clients=args.annotators,
                    duration=args.duration,
                    think_s=think_s,
                    seed=args.seed + n,
                    client_kind=args.client,
                    gunicorn_pid=pid,
                    pg_pids=stack.postgres_pids,
                )
            )
            print(f"scenario {name}: annotate phase ({args.duration:g} s) ...", flush=True)
            annotate = asyncio.run(
                run_phase(
                    name=f"{name}:annotate",
                    kind="annotate",
                    port=stack.port,
                    clients=args.annotators,
                    duration=args.duration,
                    think_s=think_s,
                    seed=args.seed + n,
                    client_kind=args.client,
                    gunicorn_pid=pid,
                    pg_pids=stack.postgres_pids,
                    project_id=seed["project_id"],
                    tokens=seed["tokens"],
                    spec=spec,
                )
            )
            checks = check_database(stack.db_url, seed["project_id"], annotate.judgments, spec)
            results.append(
                {
                    "name": name,
                    "think_ms": think_s * 1000,
                    "health": health,
                    "annotate": annotate,
                    "checks": checks,
                    "seed_seconds": seed["seconds"],
                }
            )
        report = summarise(args, machine, results, stack)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2))
            print(f"\nresults written to {args.json_out}")
        # Exit status: correctness must hold in every scenario; the latency and ratio targets are
        # judged on the paced one (saturation latency is queueing by construction).
        correctness = ("errors == 0", "over-assigned == 0", "lost == 0")
        ok = all(all(v for k, v in s["targets"].items() if s["name"] == "paced" or k in correctness) for s in report["scenarios"])
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping gunicorn and cleaning up", file=sys.stderr)
        return 130
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
