# shellcheck shell=bash
# The Kubernetes manifests (deploy/k8s, rendered by kustomize) run with
# `podman kube play`; sourced by deploy/test/run.sh, which provides step, die,
# wait_ok and $WORK, and calls kube_run (and kube_down from its exit trap).
#
# What podman plays as a cluster would: each Deployment with its replicas,
# its ConfigMap (envFrom) and Secret (secretKeyRef), security contexts
# (non-root user 10001, read-only root filesystem, no capabilities, seccomp).
# What it does not, and this file does instead: Services (every pod of a
# Deployment gets the network alias `<name>.baton.svc`, which resolves to all
# of them), the Job (its pod template runs as a Pod), probes (podman 4.3 runs
# none without systemd: they are asked here, on every pod, at the manifests'
# paths), the Ingress and TLS (the issuer is http://idp.baton.svc:9000).

KUBE_NET=baton-kube
KUBE_LABEL=baton.deploy-test=kube
KUBE_ISSUER=http://idp.baton.svc:9000
# The demo realm's client-credentials client (idp seed's default secret).
REPORTER=reporter:reporter-dev-secret

# podman, without the errors podman 4.3 logs on every pod with a liveness
# probe when systemd is not running (it cannot schedule the probe's timer).
kpodman() {
    podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}

# The address of pod <deployment>-pod-<i> on the run's network.
pod_ip() {
    local infra
    infra="$(podman pod inspect --format '{{.InfraContainerID}}' "$1-pod-$2")"
    podman inspect --format "{{(index .NetworkSettings.Networks \"$KUBE_NET\").IPAddress}}" "$infra"
}

# The containers of this run's pods and its database (for the logs on failure).
kube_containers() {
    local pod
    podman ps --all --quiet --filter "label=$KUBE_LABEL" --format '{{.Names}}'
    for pod in $(podman pod ps --quiet --filter "network=$KUBE_NET"); do
        podman ps --all --filter "pod=$pod" --format '{{.Names}}' | grep -v -- '-infra$' || true
    done
}

kube_down() {
    local pods ctrs
    pods="$(podman pod ps --quiet --filter "network=$KUBE_NET")"
    # Stop (at once: nothing to keep), then remove: podman 4.3's `pod rm
    # --force` waits out each pod's stop timeout one after the other.
    # shellcheck disable=SC2086 # word splitting wanted: one id a word
    [ -z "$pods" ] || { kpodman pod stop --time 0 $pods && kpodman pod rm --force $pods; } >/dev/null
    ctrs="$(podman ps --all --quiet --filter "label=$KUBE_LABEL")"
    # shellcheck disable=SC2086
    [ -z "$ctrs" ] || podman rm --force --time 5 $ctrs >/dev/null
    podman secret rm baton-secrets >/dev/null 2>&1 || true
    podman network rm --force "$KUBE_NET" >/dev/null 2>&1 || true
}

kube_start() {
    local dir="$WORK/kube" password
    rm -rf "$dir" && mkdir -p "$dir"
    password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
    "$WORK/venv/bin/python" "$HERE/kube.py" "$WORK/k8s.yaml" deploy/k8s/secrets.example.yaml \
        "$dir" "$KUBE_ISSUER" "$password"
    podman network create --label "$KUBE_LABEL" "$KUBE_NET" >/dev/null
    podman secret create baton-secrets "$dir/secret.json" >/dev/null
    # The database the manifests expect outside the cluster (postgres.baton.svc).
    podman run --detach --name baton-kube-postgres --label "$KUBE_LABEL" \
        --network "$KUBE_NET" --network-alias postgres.baton.svc \
        --env POSTGRES_USER=baton --env "POSTGRES_PASSWORD=$password" \
        docker.io/library/postgres:16 >/dev/null
    local tries=0
    until podman exec baton-kube-postgres pg_isready -q -U baton; do
        tries=$((tries + 1)); [ "$tries" -lt 120 ] || die "postgres did not start"; sleep 0.5
    done

    step "kube play: the seed Job's pod"
    kpodman kube play --quiet --configmap "$dir/config.yaml" --network "$KUBE_NET" "$dir/seed.yaml" >/dev/null
    [ "$(podman wait idp-seed-seed)" = 0 ] || { podman logs idp-seed-seed; die "the seed pod failed"; }

    step "kube play: every Deployment with its replicas"
    local name replicas port
    while read -r name replicas port; do
        kpodman kube play --quiet --configmap "$dir/config.yaml" \
            --network "$KUBE_NET:alias=$name.baton.svc" "$dir/$name.yaml" >/dev/null
        printf '%s: %s pods\n' "$name" "$replicas"
    done <"$dir/deployments"
}

# Every pod's liveness (/healthz) and readiness (/readyz) probe answers 200,
# as tests/e2e/deploy_manifests.rs requires the manifests to declare them.
kube_probes() {
    step "probes of every pod"
    local name replicas port i ip
    while read -r name replicas port; do
        for ((i = 0; i < replicas; i++)); do
            ip="$(pod_ip "$name" "$i")"
            wait_ok "http://$ip:$port/readyz"
            curl -fsS -o /dev/null "http://$ip:$port/healthz" || die "$name-pod-$i: /healthz"
            printf '%s-pod-%s (%s): ready, live\n' "$name" "$i" "$ip"
        done
    done <"$WORK/kube/deployments"
}

# The token with one byte of its signature flipped.
forge() {
    "$WORK/venv/bin/python" -c '
import base64, sys
head, body, sig = sys.argv[1].split(".")
raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
raw[len(raw) // 2] ^= 1
print(head, body, base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="), sep=".")' "$1"
}

# Three IdP replicas on one database: one signing key set, and a token issued
# by one replica is accepted by services that fetched the keys through another.
kube_shared_idp() {
    step "a token from idp-pod-0, accepted with keys fetched from the other replicas"
    local i jwks first token order_ip code
    for i in 0 1 2; do
        jwks="$(curl -fsS "http://$(pod_ip idp "$i"):9000/jwks.json")"
        [ "$i" = 0 ] && first="$jwks"
        [ "$jwks" = "$first" ] || die "idp-pod-$i serves other keys than idp-pod-0"
    done
    echo "the three replicas serve the same keys"
    token="$(curl -fsS -u "$REPORTER" -d grant_type=client_credentials \
        "http://$(pod_ip idp 0):9000/token" | "$WORK/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    # With idp-pod-0 gone, the restarted order pods can only fetch the keys
    # (and catch up with the revocation stream) through idp-pod-1 or -2.
    # (stop, then start: podman 4.3's `pod restart` races its own stop and
    # leaves the pods exited.)
    kpodman pod stop --time 5 idp-pod-0 order-pod-0 order-pod-1 >/dev/null
    kpodman pod start order-pod-0 order-pod-1 >/dev/null
    for i in 0 1; do
        order_ip="$(pod_ip order "$i")"
        wait_ok "http://$order_ip:8081/readyz"
        code="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$order_ip:8081/orders")"
        [ "$code" = 200 ] || die "order-pod-$i answered $code to idp-pod-0's token"
        # The same token with its signature altered: refused, so 200 above meant validated.
        code="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(forge "$token")" "http://$order_ip:8081/orders")"
        [ "$code" = 401 ] || die "order-pod-$i answered $code to a forged token"
        printf 'order-pod-%s: 200 for the token, 401 for its forgery\n' "$i"
    done
}

kube_run() {
    kube_down # leftovers of an interrupted run
    kube_start
    kube_probes
    kube_shared_idp
    step "kube: tearing down"
    kube_down
}
