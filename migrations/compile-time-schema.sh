#!/usr/bin/env bash
# The database sqlx's query macros check against when `.sqlx/` is (re)generated
# (`make sqlx-prepare`, and `make test`'s `cargo sqlx prepare --check`).
#
# Usage: migrations/compile-time-schema.sh <database-url>
#
# Drops and recreates that database, then applies every part's migrations
# (migrations/*/*.sql, directory then file-name order) with psql. In
# production each part has its own database; here one database holds every
# part's tables so that one `cargo sqlx prepare --workspace` checks every
# crate's queries. That works because no table name is used by two parts: a
# name clash stops this script (psql ON_ERROR_STOP), so it cannot go unnoticed.
# The runtime path is unchanged: each part still applies its own set with
# `sqlx::migrate!` at start-up.
set -euo pipefail
url=${1:?usage: $0 <database-url>}
db=${url##*/}; db=${db%%\?*}
server=${url%/*}
cd "$(dirname "$0")"
export PGOPTIONS='--client-min-messages=warning'
psql -q "$server/postgres" -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
for file in $(ls -- */*.sql | sort); do
    psql -q "$url" -v ON_ERROR_STOP=1 -f "$file" >/dev/null
done
echo "compile-time schema: $(psql -Atq "$url" -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") tables in $db"
