#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on localhost before the tests run; start them when they
# are installed but stopped (the commands are the machine's own, see the env notes).
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
fi
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2; exit 1; }
redis_up || { echo "Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
echo "PostgreSQL and Redis are up"
