#!/usr/bin/env bash
# Baton's local process runner: the whole stack as plain processes, no Docker.
#
#   deploy/local/run.sh up     build release binaries, start PostgreSQL if needed,
#                              seed the demo realm, start the five parts, wait for
#                              every /readyz, print the URL and the demo accounts
#   deploy/local/run.sh down   stop the parts (SIGTERM, then wait) and the local cluster
#   deploy/local/run.sh logs   follow every log
#   deploy/local/run.sh status what runs where
#
# State lives under .data/ (git-ignored): logs in .data/logs/, pids in .data/run/,
# the project-local PostgreSQL cluster in .data/pg/ (only when DATABASE_URL is unset).
# Every part takes its configuration from the environment (see README.md); this
# script sets only the database URLs and passes everything else through.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT" # the parts' relative defaults (deploy/routes.toml, .data/idp) are relative to it
DATA="$ROOT/.data"
LOGS="$DATA/logs"
RUN="$DATA/run"
PGDATA_DIR="$DATA/pg"
PG_PORT="${BATON_PG_PORT:-55432}"
PROFILE_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
GATEWAY_URL="${IDP_SEED_GATEWAY_URL:-http://localhost:8080}"

# The parts, in start order: the same order and variable names as the test and bench
# launcher (tests/launch/src/contract.rs). (No associative arrays: macOS ships bash 3.2.)
PARTS=(idp inventory payment order gateway)

# A part's default bind address (CONTRIBUTING.md).
default_bind() {
    case "$1" in
        idp) echo 127.0.0.1:9000 ;; gateway) echo 127.0.0.1:8080 ;; order) echo 127.0.0.1:8081 ;;
        payment) echo 127.0.0.1:8082 ;; inventory) echo 127.0.0.1:8083 ;;
    esac
}

# How a binary runs its server: the idp binary is also the admin CLI.
serve_args() { if [ "$1" = idp ]; then echo serve; fi; }

say() { printf '%s\n' "$*"; }

# Milliseconds since the epoch where bash has EPOCHREALTIME (5+), else whole seconds.
now_ms() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t="${EPOCHREALTIME/[.,]/}"
        printf '%s' "${t:0:${#t}-3}"
    else
        printf '%s' "$(($(date +%s) * 1000))"
    fi
}
elapsed() { # seconds since a now_ms value, one decimal
    local ms=$(($(now_ms) - $1))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The address a part listens on: its <PART>_BIND variable, or the default.
bind_of() {
    local var
    var="$(tr '[:lower:]' '[:upper:]' <<<"$1")_BIND"
    printf '%s' "${!var:-$(default_bind "$1")}"
}

need() { # need <command> <what to install>
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install $2, then run 'make up' again."
}

# --- PostgreSQL ----------------------------------------------------------------

# Finds initdb/pg_ctl: on PATH, or where Debian, Homebrew and Postgres.app put them.
find_pg_bin() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
             $(ls -d /opt/homebrew/opt/postgresql*/bin /usr/local/opt/postgresql*/bin 2>/dev/null | sort -V -r) \
             /Applications/Postgres.app/Contents/Versions/latest/bin; do
        if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then printf '%s' "$d"; return; fi
    done
    return 1
}

# PostgreSQL refuses to run as root: as root, run its tools as the postgres user.
# (From / so that the postgres user never needs access to the working directory.)
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

start_local_pg() {
    local bin
    bin="$(find_pg_bin)" || die "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL \
(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16), or set DATABASE_URL to a server you have."
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' system user to own the local cluster \
(install the postgresql package, or set DATABASE_URL)."
        need runuser "util-linux"
    fi
    mkdir -p "$PGDATA_DIR"
    touch "$LOGS/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGDATA_DIR" "$LOGS/postgres.log"; chmod 700 "$PGDATA_DIR"; fi
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        say "• creating a local PostgreSQL cluster in .data/pg"
        as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --no-sync >>"$LOGS/postgres.log" 2>&1 \
            || die "initdb failed, see .data/logs/postgres.log"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        say "• starting PostgreSQL on 127.0.0.1:$PG_PORT"
        as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$LOGS/postgres.log" -w -t 30 \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PGDATA_DIR" start >/dev/null \
            || die "PostgreSQL did not start, see .data/logs/postgres.log (is port $PG_PORT taken? set BATON_PG_PORT)"
    fi
    printf '%s' "$bin" >"$RUN/pg.local"
    BASE_DB_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop_local_pg() {
    [ -f "$RUN/pg.local" ] || return 0
    local bin
    bin="$(cat "$RUN/pg.local")"
    if as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        say "• stopping PostgreSQL"
        as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
    fi
    rm -f "$RUN/pg.local"
}

# postgres://u@h:p/whatever?x=y -> postgres://u@h:p/baton_<part>?x=y
db_url_for() {
    local base="${BASE_DB_URL%%\?*}" query=""
    [[ "$BASE_DB_URL" == *\?* ]] && query="?${BASE_DB_URL#*\?}"
    printf '%s/baton_%s%s' "${base%/*}" "$1" "$query"
}

# --- processes -----------------------------------------------------------------

pid_of() { # prints the pid of a running part, or fails
    local f="$RUN/$1.pid" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f")"
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 1; }
    printf '%s' "$pid"
}

stop_parts() {
    local part pid pids=()
    for part in "${PARTS[@]}"; do
        if pid="$(pid_of "$part")"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$part:$pid"); fi
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    say "• stopping ${pids[*]%%:*}"
    local entry deadline=$((SECONDS + 15))
    for entry in "${pids[@]}"; do
        pid="${entry#*:}"
        while kill -0 "$pid" 2>/dev/null; do
            if [ $SECONDS -ge $deadline ]; then
                say "  ${entry%%:*} did not stop within 15 s after SIGTERM; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        rm -f "$RUN/${entry%%:*}.pid"
    done
}

# Fails when something that is not ours already answers on the part's port.
check_port_free() {
    if curl -s -o /dev/null --max-time 1 "http://$(bind_of "$1")/healthz"; then
        die "$(bind_of "$1") is already in use, so $1 cannot start there; stop what listens on it, or set $(tr '[:lower:]' '[:upper:]' <<<"$1")_BIND."
    fi
}

start_part() {
    local part="$1" upper
    upper="$(tr '[:lower:]' '[:upper:]' <<<"$part")"
    check_port_free "$part"
    # shellcheck disable=SC2046 # serve_args prints nothing or one word
    env "${upper}_DATABASE_URL=$(db_url_for "$part")" \
        nohup "$PROFILE_DIR/$part" $(serve_args "$part") >>"$LOGS/$part.log" 2>&1 </dev/null &
    printf '%s' "$!" >"$RUN/$part.pid"
}

# Waits until every part's /readyz answers 200; on failure shows the log tail.
wait_ready() {
    local part deadline=$((SECONDS + ${BATON_READY_TIMEOUT:-60})) pending=("${PARTS[@]}")
    while [ ${#pending[@]} -gt 0 ]; do
        local still=()
        for part in "${pending[@]}"; do
            if ! pid_of "$part" >/dev/null; then
                say "$part exited during start-up; last lines of .data/logs/$part.log:" >&2
                tail -n 20 "$LOGS/$part.log" >&2
                exit 1
            fi
            curl -fs -o /dev/null --max-time 2 "http://$(bind_of "$part")/readyz" || still+=("$part")
        done
        pending=("${still[@]+"${still[@]}"}")
        [ ${#pending[@]} -eq 0 ] && break
        if [ $SECONDS -ge $deadline ]; then
            for part in "${pending[@]}"; do
                say "$part is not ready: $(curl -s --max-time 2 "http://$(bind_of "$part")/readyz" || echo 'no answer')" >&2
                tail -n 10 "$LOGS/$part.log" >&2
            done
            die "not ready after ${BATON_READY_TIMEOUT:-60} s; 'make logs' shows everything, 'make down' stops it."
        fi
        sleep 0.1
    done
}

# --- commands ------------------------------------------------------------------

cmd_up() {
    local t0
    t0="$(now_ms)"
    need cargo "Rust (https://rustup.rs)"
    need curl "curl"
    mkdir -p "$LOGS" "$RUN"

    say "• building release binaries"
    cargo build --release --quiet --bins || die "the build failed (see above)."
    local t_start
    t_start="$(now_ms)"

    stop_parts # a second `make up` restarts with the fresh binaries
    if [ -n "${DATABASE_URL:-}" ]; then
        BASE_DB_URL="$DATABASE_URL"
        say "• using PostgreSQL at DATABASE_URL (databases baton_<part>)"
    else
        start_local_pg
    fi

    say "• seeding the demo realm"
    env "IDP_DATABASE_URL=$(db_url_for idp)" "IDP_SEED_GATEWAY_URL=$GATEWAY_URL" \
        "$PROFILE_DIR/idp" seed >>"$LOGS/idp-seed.log" 2>&1 \
        || { tail -n 20 "$LOGS/idp-seed.log" >&2; die "'idp seed' failed (log: .data/logs/idp-seed.log)."; }

    say "• starting ${PARTS[*]}"
    local part
    for part in "${PARTS[@]}"; do start_part "$part"; done
    wait_ready
    curl -fs -o /dev/null --max-time 5 "http://$(bind_of gateway)/" || die "the gateway is ready but its page does not load."

    cat <<EOF

Baton is up: ready in $(elapsed "$t_start") s after the build ($(elapsed "$t0") s in all).

  Open   $GATEWAY_URL
  Sign in as one of the demo accounts:
    alice / alice-password   (customer)
    carol / carol-password   (customer, support)
    bob   / bob-password     (admin)

  The IdP (issuer) is at ${IDP_ISSUER:-http://localhost:9000}.
  make logs    follow the logs (.data/logs/)
  make down    stop everything
EOF
}

cmd_down() {
    stop_parts
    stop_local_pg
    say "• stopped"
}

cmd_logs() {
    mkdir -p "$LOGS"
    exec tail -n 20 -F "$LOGS"/*.log
}

cmd_status() {
    local part pid
    for part in "${PARTS[@]}"; do
        if pid="$(pid_of "$part")"; then
            say "$part: pid $pid on $(bind_of "$part"), readyz $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(bind_of "$part")/readyz")"
        else
            say "$part: stopped"
        fi
    done
    [ -f "$RUN/pg.local" ] && say "postgres: local cluster in .data/pg on 127.0.0.1:$PG_PORT"
    return 0
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    logs) cmd_logs ;;
    status) cmd_status ;;
    *) die "usage: $0 up|down|logs|status" ;;
esac
