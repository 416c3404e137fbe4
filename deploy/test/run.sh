#!/usr/bin/env bash
# `make deploy-test`: runs the container and Kubernetes paths for real.
#
#   1. installs what it needs (Debian packages: podman with runc, netavark,
#      aardvark-dns, iptables, debootstrap, python3-venv; kubectl if missing)
#   2. validates the rendered kustomization (deploy/k8s) against the Kubernetes
#      schemas, offline, with a pinned kubernetes-validate in a venv
#   3. builds the images deploy/compose.yaml names (no registry is reachable in
#      CI): a Debian base by debootstrap, `baton:latest` from the binaries in
#      target/debug, `postgres:16` from Debian's postgresql-15
#   4. brings deploy/compose.yaml up in dependency order (deploy/test/compose.py),
#      gateway and order with two replicas each behind their service names
#   5. waits for the seed job and every part's /readyz, checks the issuer
#      alias, runs the real-browser test through http://localhost:8080, then
#      stops one gateway and one order replica under load (replicas.mjs)
#   6. runs deploy/k8s with `podman kube play` (kube.sh)
#   7. tears everything down on exit (containers, pods, networks, volume,
#      secret), pass or fail
#
# Needs root (rootful podman) and the host ports 8080 and 9000, which the
# compose file publishes. The images and the cache under target/deploy-test/
# are kept between runs; nothing else is.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
HERE="deploy/test"
WORK="$ROOT/target/deploy-test"
BIN_DIR="${BATON_BIN_DIR:-$ROOT/target/debug}"
# The tag names what the base holds (libssl3: the IdP's passkeys verify with OpenSSL).
BASE_IMAGE=localhost/baton-ci-base:bookworm-libssl3
PARTS=(idp gateway order payment inventory)
KUBERNETES_VALIDATE_VERSION=1.37.0
# Two replicas behind one name: sessions shared in PostgreSQL, orders in one database.
SCALE=(--scale gateway=2 --scale order=2)
# Access tokens of 32 s: the gateway refreshes within 30 s of expiry, so during
# the replica run nearly every second a refresh is due, asked for through both
# gateways at once; a second refresh with the same refresh token would be
# taken as reuse and end the session, failing the run.
OVERRIDES=(--env idp:IDP_ACCESS_TOKEN_TTL_SECS=32)

started=$SECONDS
step() { printf '\n==> %s (+%ss)\n' "$*" "$((SECONDS - started))"; }
die() { printf 'deploy-test: %s\n' "$*" >&2; exit 1; }
compose() { "$WORK/venv/bin/python" "$HERE/compose.py" deploy/compose.yaml "$@"; }
# shellcheck source=deploy/test/kube.sh
. "$HERE/kube.sh"

# --- 1. tools -----------------------------------------------------------------

install_packages() {
    local missing=() pkg
    # netavark needs iptables; Debian's default runtime crun refuses this
    # machine's hybrid cgroups, so runc is installed and configured below;
    # catatonit is the init of the pods' infra containers (podman kube play).
    for pkg in podman runc netavark aardvark-dns iptables catatonit debootstrap python3-venv; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    command -v kubectl >/dev/null || missing+=(kubectl)
    if [ "${#missing[@]}" -gt 0 ]; then
        step "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ! -x "$WORK/venv/bin/kubernetes-validate" ]; then
        step "kubernetes-validate $KUBERNETES_VALIDATE_VERSION in a venv"
        python3 -m venv "$WORK/venv"
        "$WORK/venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
}

# podman's settings for this run only (CONTAINERS_CONF replaces the system
# file for our podman commands): runc, and explicit ulimits within the
# machine's hard limits (containers otherwise inherit limits they cannot keep).
configure_podman() {
    mkdir -p "$WORK"
    cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$WORK/containers.conf"
}

# --- 2. Kubernetes manifests --------------------------------------------------

validate_k8s() {
    step "rendering deploy/k8s and validating it against the Kubernetes schemas"
    kubectl kustomize deploy/k8s >"$WORK/k8s.yaml"
    # --strict: unknown fields (a typo'd probe, a misplaced key) fail too.
    "$WORK/venv/bin/kubernetes-validate" --strict --quiet \
        "$WORK/k8s.yaml" deploy/k8s/secrets.example.yaml
    printf '%s documents valid\n' "$(grep -c '^kind:' "$WORK/k8s.yaml")"
}

# --- 3. images ----------------------------------------------------------------

build_images() {
    if ! podman image exists "$BASE_IMAGE"; then
        step "debootstrap: Debian bookworm base image"
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase --include=ca-certificates,libssl3 bookworm "$WORK/rootfs" \
            http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
            || die "debootstrap failed, see $WORK/debootstrap.log"
        tar -C "$WORK/rootfs" -c . | podman import --quiet - "$BASE_IMAGE" >/dev/null
        rm -rf "$WORK/rootfs"
    fi
    step "postgres:16 image from Debian's postgresql-15 (cached layers when unchanged)"
    podman build --quiet --build-arg "BASE=$BASE_IMAGE" -f "$HERE/Containerfile.postgres" \
        -t docker.io/library/postgres:16 "$HERE" >/dev/null
    step "baton:latest from $BIN_DIR"
    # A context with only what the image copies: target/ itself is gigabytes.
    local ctx="$WORK/context" part
    rm -rf "$ctx"
    mkdir -p "$ctx/bin"
    for part in "${PARTS[@]}"; do
        [ -x "$BIN_DIR/$part" ] || die "$BIN_DIR/$part missing: run cargo build --bins first"
        ln "$BIN_DIR/$part" "$ctx/bin/$part" 2>/dev/null || cp "$BIN_DIR/$part" "$ctx/bin/$part"
    done
    cp deploy/routes.toml "$HERE/Containerfile.runtime" "$ctx/"
    podman build --quiet --build-arg "BASE=$BASE_IMAGE" -f "$ctx/Containerfile.runtime" \
        -t localhost/baton:latest "$ctx" >/dev/null
    # Earlier builds of these two images, now untagged (each new binary makes one).
    podman image prune --force --filter label=baton.deploy-test=ci-image >/dev/null
}

# --- 4./5. compose -------------------------------------------------------------

teardown() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -x "$WORK/venv/bin/python" ]; then
        printf '\n==> failed: last log lines of every container\n' >&2
        local c
        for c in $(podman ps --all --format '{{.Names}}' --filter label=com.docker.compose.project=baton-ci) \
                 $(kube_containers); do
            printf -- '--- %s\n' "$c" >&2
            podman logs --tail 15 "$c" >&2 2>&1 || true
        done
    fi
    step "tearing down"
    compose down || true
    kube_down || true
    exit "$status"
}

# Polls a URL until it answers 2xx (curl's own retry, bounded; a part is 503
# until its revocation stream has caught up with the IdP once).
wait_ok() {
    curl -fs --retry 60 --retry-delay 1 --retry-all-errors --max-time 3 -o /dev/null "$1" \
        || die "$1 did not become ready"
}

port_of() {
    case "$1" in idp) echo 9000 ;; gateway) echo 8080 ;; order) echo 8081 ;; payment) echo 8082 ;; inventory) echo 8083 ;; esac
}

wait_ready() {
    step "waiting for every part's /readyz"
    local part replica
    for part in "${PARTS[@]}"; do
        for replica in 1 2; do
            [ "$replica" = 1 ] || [ "$part" = gateway ] || [ "$part" = order ] || continue
            wait_ok "http://$(compose ip "$part" "$replica"):$(port_of "$part")/readyz"
            printf '%s-%s ready\n' "$part" "$replica"
        done
    done
}

# The issuer is http://idp.localhost:9000 everywhere. In the network the name
# must be the IdP container (not loopback), for the gateway and every service;
# the browser (Chromium) resolves it to loopback, where the port is published.
check_issuer_alias() {
    step "issuer alias idp.localhost"
    local idp_ip part seen
    idp_ip="$(compose ip idp)"
    for part in gateway order payment inventory; do
        seen="$(podman exec "$(compose name "$part")" getent hosts idp.localhost | awk '{print $1}')"
        [ "$seen" = "$idp_ip" ] || die "$part resolves idp.localhost to '$seen', not the idp ($idp_ip)"
        printf '%s: idp.localhost -> %s (the idp container)\n' "$part" "$seen"
    done
    # What every part fetched: discovery names the alias as issuer.
    curl -fsS "http://$idp_ip:9000/.well-known/openid-configuration" | grep -q '"issuer":"http://idp.localhost:9000"' \
        || die "the idp does not announce http://idp.localhost:9000 as its issuer"
}

browser_test() {
    step "real-browser test through http://localhost:8080"
    [ -d tests/browser/node_modules ] || npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
    # BATON_IDP_URL: the test asserts the browser was sent to the IdP by this
    # name, so signing in proves Chromium reached it through the alias.
    BATON_GATEWAY_URL=http://localhost:8080 BATON_IDP_URL=http://idp.localhost:9000 \
        node --test tests/browser/signin.test.mjs
}

# Two gateways sharing sessions, two order replicas, one of each stopped
# under load: nothing lost (deploy/test/replicas.mjs).
replicas_test() {
    step "gateway and order replicas under load, one of each stopped"
    BATON_GATEWAY2_URL="http://$(compose ip gateway 2):8080" \
        BATON_STOP_ORDER="$(compose name order 2)" BATON_STOP_GATEWAY="$(compose name gateway 2)" \
        node "$HERE/replicas.mjs"
    # The short token life made the gateways refresh alice's session through
    # both replicas; none of it was a second use of a refresh token (which
    # would have revoked the family and failed the run above).
    local rotated reused
    rotated=$(idp_sql "SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL")
    reused=$(idp_sql "SELECT count(*) FROM revocations WHERE reason LIKE 'refresh token reuse%'")
    printf 'refresh tokens rotated during the run: %s; reuse detected: %s\n' "$rotated" "$reused"
    [ "$rotated" -ge 3 ] || die "expected the gateways to refresh during the run, saw $rotated rotations"
    [ "$reused" -eq 0 ] || die "a refresh token was used twice across the gateways"
}

# One value from the IdP's database, through the postgres container.
idp_sql() {
    podman exec "$(compose name postgres)" psql -U baton -d baton_idp -Atc "$1"
}

compose_run() {
    compose down # leftovers of an interrupted run
    step "deploy/compose.yaml up (${SCALE[*]})"
    compose up "${SCALE[@]}" "${OVERRIDES[@]}"
    wait_ready
    check_issuer_alias
    browser_test
    replicas_test
    step "compose: tearing down"
    compose down
}

# run.sh [all|compose|kube]: both paths (make deploy-test), or one of them.
main() {
    local what="${1:-all}"
    case "$what" in all | compose | kube) ;; *) die "usage: run.sh [all|compose|kube]" ;; esac
    [ "$(id -u)" -eq 0 ] || die "needs root (rootful podman, apt-get)"
    install_packages
    configure_podman
    validate_k8s
    build_images
    trap teardown EXIT
    [ "$what" = kube ] || compose_run
    [ "$what" = compose ] || kube_run
    step "deploy-test ($what) passed in $((SECONDS - started)) s"
}

main "$@"
