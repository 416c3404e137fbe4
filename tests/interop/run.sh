#!/usr/bin/env bash
# Interoperability check: certified relying-party libraries against the real
# idp binary. panva's openid-client (Node) and Authlib (Python) each run
# discovery, authorization code + PKCE (driving the login form over HTTP),
# ID-token validation, userinfo, refresh, revocation, introspection, client
# credentials and logout.
#
# Needs: cargo, node >= 20 with npm, python3 with venv, curl, psql, and
# PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Installs its dependencies locally (tests/interop/node/node_modules and a
# virtualenv under .data/interop), uses a fresh database it drops at the end,
# and exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
server=${DATABASE_URL%/*}
db="baton_idp_interop_$$"
work=$(mktemp -d)
idp="$root/target/debug/idp"
pid=""

cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "interop: building the idp"
(cd "$root" && cargo build -q -p idp --bin idp)

echo "interop: installing openid-client (npm ci) and Authlib (pip, virtualenv)"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
venv="$root/.data/interop/venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/python/requirements.txt"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export IDP_URL="http://127.0.0.1:$port"
export IDP_ISSUER="$IDP_URL" IDP_BIND="127.0.0.1:$port" IDP_DATABASE_URL="$server/$db" IDP_DATA_DIR="$work"
export IDP_KEY_ENCRYPTION_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
export RUST_LOG=${RUST_LOG:-warn}

"$idp" seed >/dev/null
"$idp" serve >"$work/idp.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$IDP_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/idp.log"; echo "interop: the idp did not start" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$IDP_URL/readyz" >/dev/null || { cat "$work/idp.log"; echo "interop: the idp is not ready" >&2; exit 1; }

status=0
echo "interop: openid-client (Node) against $IDP_URL"
node "$here/node/interop.mjs" || status=1
echo "interop: Authlib (Python) against $IDP_URL"
"$venv/bin/python" "$here/python/interop.py" || status=1
if [[ $status -ne 0 ]]; then
  echo "interop: FAILED; idp log follows" >&2
  tail -n 50 "$work/idp.log" >&2
fi
exit $status
