#!/usr/bin/env bash
# Starts a PostgreSQL server for the tests (installing Debian's postgresql if it is missing) and
# prints the URL of a role that may create databases, for FEDFLOW_TEST_POSTGRES_URL:
#   export FEDFLOW_TEST_POSTGRES_URL=$(scripts/start-test-postgres.sh)
# The cluster is called fedflow_test and listens on 127.0.0.1:${FEDFLOW_TEST_POSTGRES_PORT:-55432}.
set -euo pipefail
port="${FEDFLOW_TEST_POSTGRES_PORT:-55432}"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_createcluster >/dev/null; then
  echo "installing postgresql from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version fedflow_test"; then
  pg_createcluster "$version" fedflow_test --port "$port" >&2
  # A throwaway test server: room for every service of several federations, no fsync.
  cat > "/etc/postgresql/$version/fedflow_test/conf.d/fedflow-test.conf" <<CONF
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi
if ! pg_lsclusters -h | awk '$1=="'"$version"'" && $2=="fedflow_test" {print $4}' | grep -qx online; then
  pg_ctlcluster "$version" fedflow_test start >&2
fi
for _ in $(seq 1 50); do
  if su postgres -c "psql -p $port -Atc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -Atc \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fedflow') THEN
    CREATE ROLE fedflow LOGIN CREATEDB PASSWORD 'fedflow';
  END IF; END \\\$\\\$;\"" >&2
echo "postgres://fedflow:fedflow@127.0.0.1:$port/postgres"
