#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server of its own, then stop and remove it.
#
#   scripts/test-postgres.sh .venv/bin/pytest -ra
#
# The server lives in a temporary directory, listens only on a unix socket there (no TCP
# port, so parallel runs never collide) and is owned by the `postgres` user when run as root.
# The command sees FLOE_TEST_POSTGRES_URL (a superuser URL: tests create their own databases).
# Without PostgreSQL installed the command runs alone, and the PostgreSQL tests skip.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "test-postgres: PostgreSQL is not installed; running without it" >&2
    exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/floe-pg.XXXXXX")
as_owner=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi

stop() {
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
# synchronous_commit=off: commits are not flushed one by one, as SQLite's WAL with
# synchronous=NORMAL (floe's default) does not; the data itself stays crash-safe.
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-k $dir -c listen_addresses='' -c max_connections=300 -c synchronous_commit=off" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }

export FLOE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@/postgres?host=$dir"
echo "test-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $dir" >&2
set +e
"$@"
rc=$?
exit $rc
