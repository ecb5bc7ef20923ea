#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into a NEW database and a NEW artifact folder.
#
#   scripts/restore.sh /backups/feedback-2026-11-23 postgres://user@host:5432/feedback_restored /srv/artifacts-restored
#
# Refuses to touch an existing database or a non-empty folder. Checks the backup's SHA256SUMS,
# creates the database, restores the dump, unpacks the artifacts, rewrites stored artifact paths
# from the old folder to the new one, then runs `manage.py check_artifacts` against the restored
# copy: every snapshot file and every model version is verified by its content hash.
# Point the service at it with DATABASE_URL=<new url> FEEDBACK_ARTIFACTS_DIR=<new folder>.
set -euo pipefail

src=${1:?usage: scripts/restore.sh BACKUP_FOLDER NEW_DATABASE_URL NEW_ARTIFACTS_DIR}
url=${2:?usage: scripts/restore.sh BACKUP_FOLDER NEW_DATABASE_URL NEW_ARTIFACTS_DIR}
dest=${3:?usage: scripts/restore.sh BACKUP_FOLDER NEW_DATABASE_URL NEW_ARTIFACTS_DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}

(cd "$src" && sha256sum --check --quiet SHA256SUMS) || { echo "restore.sh: $src fails its SHA256SUMS; not restoring" >&2; exit 2; }
# shellcheck disable=SC1091
source "$src/backup.env"

db=${url##*/}; db=${db%%\?*}
server=${url%/*}
case "$db" in ''|*[!A-Za-z0-9_]*) echo "restore.sh: database name '$db' must be letters, digits and _" >&2; exit 2 ;; esac
exists=$(psql "$server/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
if [ "$exists" = "1" ]; then echo "restore.sh: database $db already exists; restore into a new one" >&2; exit 2; fi
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then echo "restore.sh: $dest is not empty" >&2; exit 2; fi

psql "$server/postgres" -q -c "CREATE DATABASE \"$db\""
pg_restore --no-owner --no-privileges --exit-on-error --dbname "$url" "$src/database.dump"
mkdir -p "$dest"
tar -C "$dest" -xzf "$src/artifacts.tar.gz"
dest=$(cd "$dest" && pwd -P)

if [ "$dest" != "$SOURCE_ARTIFACTS_DIR" ]; then
  # Snapshots and versions store absolute artifact paths. Rewrite every text column that starts
  # with the old folder. Triggers (the registry's immutability guard) are off for this session
  # only: a relocation changes where the bytes are, not what they are (check_artifacts below
  # re-verifies every hash).
  psql "$url" -q -v ON_ERROR_STOP=1 -v old="$SOURCE_ARTIFACTS_DIR" -v new="$dest" >/dev/null <<'SQL'
SET session_replication_role = replica;
SELECT set_config('restore.old', :'old', false), set_config('restore.new', :'new', false);
DO $$
DECLARE col record; old text := current_setting('restore.old'); new text := current_setting('restore.new');
BEGIN
  FOR col IN SELECT table_name, column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type IN ('text', 'character varying') LOOP
    EXECUTE format('UPDATE %I SET %I = %L || substr(%I, %s) WHERE %I LIKE %L',
                   col.table_name, col.column_name, new, col.column_name, length(old) + 1,
                   col.column_name, replace(replace(old, '%', '\%'), '_', '\_') || '%');
  END LOOP;
END $$;
SQL
fi

DATABASE_URL="$url" FEEDBACK_ARTIFACTS_DIR="$dest" "$python" "$repo/manage.py" check_artifacts
echo "restore.sh: restored $src (made $CREATED_AT) into database $db and $dest"
