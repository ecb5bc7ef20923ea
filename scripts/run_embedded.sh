#!/usr/bin/env bash
# `make run`: the whole service on one laptop with embedded defaults — SQLite in var/, kombu's
# filesystem broker in var/broker, artifacts in var/artifacts — unless DATABASE_URL /
# CELERY_BROKER_URL say otherwise. One Celery worker serves the default and gpu queues, a second one the playground.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var
$PY manage.py migrate --noinput
$PY manage.py seed_demo
.venv/bin/celery -A workers.celery_app worker -B --schedule var/celerybeat-schedule -Q default,gpu --concurrency 1 --max-tasks-per-child 1 \
  --loglevel INFO >var/worker.log 2>&1 &
WORKER=$!
# The playground's worker keeps loaded versions in memory between messages (no max-tasks-per-child).
.venv/bin/celery -A workers.celery_app worker -Q playground -n playground@%h --concurrency 1 \
  --loglevel INFO >var/playground-worker.log 2>&1 &
PLAYGROUND_WORKER=$!
trap 'kill $WORKER $PLAYGROUND_WORKER 2>/dev/null; wait $WORKER $PLAYGROUND_WORKER 2>/dev/null' EXIT INT TERM
echo "Worker started (log: var/worker.log). Serving on http://127.0.0.1:8000 — Ctrl-C stops both."
# Loopback only: the embedded profile has a published secret key and no TLS, so it must not be
# reachable from the network. DEBUG stays off (friendly error pages) unless DJANGO_DEBUG=1;
# WhiteNoise serves the static files either way (settings.WHITENOISE_USE_FINDERS).
$PY manage.py runserver 127.0.0.1:8000 --noreload
