#!/usr/bin/env bash
# `make run`: the whole service on one laptop with embedded defaults — SQLite in var/, kombu's
# filesystem broker in var/broker, artifacts in var/artifacts — unless DATABASE_URL /
# CELERY_BROKER_URL say otherwise. One Celery worker serves both queues.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var
$PY manage.py migrate --noinput
$PY manage.py seed_demo
.venv/bin/celery -A workers.celery_app worker -B --schedule var/celerybeat-schedule -Q default,gpu --concurrency 1 --max-tasks-per-child 1 \
  --loglevel INFO >var/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM
echo "Worker started (log: var/worker.log). Serving on http://127.0.0.1:8000 — Ctrl-C stops both."
$PY manage.py runserver 127.0.0.1:8000 --noreload
