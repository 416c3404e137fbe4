#!/bin/sh
# Entrypoint of CI's PostgreSQL image (Containerfile.postgres): on first start,
# creates the cluster with POSTGRES_USER as superuser (password
# POSTGRES_PASSWORD, required over the network) and a database of the same
# name, as the official image does; then runs the server as `postgres`.
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    runuser -u postgres -- initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    # Other containers connect over the network, always with the password.
    echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_USER" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_USER\"" |
            runuser -u postgres -- postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
# exec, not runuser: postgres itself is PID 1 and gets the stop signal.
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$PGDATA" -c listen_addresses='*'
