#!/usr/bin/env bash
# Back up the database and the artifact folder into one new folder.
#
#   DATABASE_URL=postgres://user@host:5432/feedback FEEDBACK_ARTIFACTS_DIR=/srv/artifacts \
#     scripts/backup.sh /backups/feedback-2026-11-23
#
# Writes database.dump (pg_dump custom format), artifacts.tar.gz, backup.env (where it came
# from, read by restore.sh) and SHA256SUMS. Run it while the service is up: pg_dump takes one
# consistent snapshot of the database; artifacts are written once and never changed (snapshots
# and versions are immutable), so a copy taken a moment later holds every file the dump names.
# Restore with scripts/restore.sh.
set -euo pipefail

dest=${1:?usage: scripts/backup.sh DEST_FOLDER (must not exist yet)}
: "${DATABASE_URL:?set DATABASE_URL (postgres://...)}"
repo=$(cd "$(dirname "$0")/.." && pwd)
artifacts=${FEEDBACK_ARTIFACTS_DIR:-${FEEDBACK_VAR_DIR:-$repo/var}/artifacts}
artifacts=$(cd "$artifacts" && pwd -P)

case "$DATABASE_URL" in
  postgres://*|postgresql://*) ;;
  *) echo "backup.sh: DATABASE_URL must be a PostgreSQL URL (the embedded SQLite file is copied by hand)" >&2; exit 2 ;;
esac
if [ -e "$dest" ]; then echo "backup.sh: $dest already exists; give a new folder" >&2; exit 2; fi

tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

pg_dump --format=custom --no-owner --no-privileges --file "$tmp/database.dump" "$DATABASE_URL"
tar -C "$artifacts" -czf "$tmp/artifacts.tar.gz" .
{
  echo "CREATED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "SOURCE_ARTIFACTS_DIR=$artifacts"
  echo "SOURCE_DATABASE=${DATABASE_URL##*/}"
} > "$tmp/backup.env"
(cd "$tmp" && sha256sum database.dump artifacts.tar.gz backup.env > SHA256SUMS)

mv "$tmp" "$dest"   # the backup appears complete or not at all
trap - EXIT
echo "backup.sh: wrote $dest ($(du -sh "$dest" | cut -f1))"
