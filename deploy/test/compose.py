#!/usr/bin/env python3
"""Runs deploy/compose.yaml with plain `podman` commands, in dependency order.

Why not podman-compose: Debian's 1.0.3 rejects the network alias the file
gives the IdP (idp.localhost), and the current one from PyPI cannot start
services that depend on a finished one-shot (`seed`) with podman 4.3. This
runner reads the compose file itself and does what Compose would for the
parts of the format the file uses: image, command, environment, ports, named
volumes, network aliases, restart, healthcheck and depends_on with the three
conditions (service_started, service_healthy, service_completed_successfully).
Anything else in a service is refused, so the file cannot drift into
something this runner silently ignores.

    compose.py FILE up [--scale SERVICE=N ...]   create and start, in order
    compose.py FILE down                          remove everything it created
    compose.py FILE ip SERVICE [REPLICA]          a container's address
    compose.py FILE name SERVICE [REPLICA]        a container's name

Every container, network and volume is named after the project (`baton-ci`)
and labelled with it, so `down` removes exactly what `up` created.
"""

import argparse
import subprocess
import sys
import time

import yaml

PROJECT = "baton-ci"
LABEL = f"com.docker.compose.project={PROJECT}"
NETWORK = f"{PROJECT}_default"
# Keys of a service this runner implements (`build` is done by run.sh).
KNOWN_KEYS = {
    "image", "build", "command", "environment", "ports", "volumes", "networks",
    "restart", "healthcheck", "depends_on",
}
WAIT_SECONDS = 120


def podman(*args, check=True, capture=False):
    """Runs podman; output captured only when asked for."""
    result = subprocess.run(
        ["podman", *args], check=False, text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    if check and result.returncode != 0:
        sys.exit(f"compose.py: podman {' '.join(args[:2])} ... failed ({result.returncode})")
    return result


def container(service, replica=1):
    return f"{PROJECT}-{service}-{replica}"


def load(path):
    with open(path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)  # resolves the file's anchors and `<<` merges
    for name, service in spec["services"].items():
        unknown = set(service) - KNOWN_KEYS
        if unknown:
            sys.exit(f"compose.py: service {name}: unsupported keys {sorted(unknown)}")
    return spec


def dependency_order(services):
    """Services sorted so that each comes after everything it depends on."""
    order, done, visiting = [], set(), set()

    def visit(name):
        if name in done:
            return
        if name in visiting:
            sys.exit(f"compose.py: dependency cycle at {name}")
        visiting.add(name)
        for dep in services[name].get("depends_on", {}):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


def wait_for(dep, condition, services):
    """Blocks until `dep` meets a depends_on condition, or fails the run."""
    name = container(dep)
    if condition == "service_started":
        return
    if condition == "service_completed_successfully":
        code = podman("wait", name, capture=True).stdout.strip()
        if code != "0":
            podman("logs", name, check=False)
            sys.exit(f"compose.py: {dep} exited with {code}")
        return
    if condition != "service_healthy":
        sys.exit(f"compose.py: unsupported condition {condition}")
    test = services[dep]["healthcheck"]["test"]
    if test[0] not in ("CMD", "CMD-SHELL"):
        sys.exit(f"compose.py: {dep}: unsupported healthcheck {test[0]}")
    check = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        probe = subprocess.run(["podman", "exec", name, *check], capture_output=True, check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.5)  # the healthcheck's own interval, shortened
    podman("logs", name, check=False)
    sys.exit(f"compose.py: {dep} not healthy after {WAIT_SECONDS} s")


def run_args(service_name, service, replica, overrides):
    """The `podman run` arguments for one replica of one service, with the
    test's environment `overrides` ({service: {KEY: value}}) on top."""
    args = [
        "run", "--detach", "--name", container(service_name, replica), "--label", LABEL,
        "--network", NETWORK, "--network-alias", service_name,
    ]
    for alias in (service.get("networks") or {}).get("default", {}).get("aliases", []):
        args += ["--network-alias", alias]
    environment = dict(service.get("environment") or {})
    environment.update(overrides.get(service_name, {}))
    for key, value in environment.items():
        args += ["--env", f"{key}={value}"]
    if replica == 1:  # a host port can be published once; other replicas are reached by name
        for port in service.get("ports", []):
            args += ["--publish", str(port)]
    for volume in service.get("volumes", []):
        args += ["--volume", f"{PROJECT}_{volume}"]
    if "restart" in service:
        args += ["--restart", service["restart"]]
    args.append(service["image"])
    args += service.get("command", [])
    return args


def up(spec, scale, overrides):
    services = spec["services"]
    podman("network", "create", "--label", LABEL, NETWORK, capture=True)
    for volume in spec.get("volumes") or {}:
        podman("volume", "create", "--label", LABEL, f"{PROJECT}_{volume}", capture=True)
    for name in dependency_order(services):
        for dep, how in services[name].get("depends_on", {}).items():
            wait_for(dep, how.get("condition", "service_started"), services)
        for replica in range(1, scale.get(name, 1) + 1):
            podman(*run_args(name, services[name], replica, overrides), capture=True)
            print(f"started {container(name, replica)}", flush=True)


def down():
    names = podman("ps", "--all", "--quiet", "--filter", f"label={LABEL}", capture=True).stdout.split()
    if names:
        # Killed at once (nothing to keep), then removed.
        podman("stop", "--time", "0", *names, check=False, capture=True)
        podman("rm", "--force", *names, capture=True)
    podman("network", "rm", "--force", NETWORK, check=False, capture=True)
    vols = podman("volume", "ls", "--quiet", "--filter", f"label={LABEL}", capture=True).stdout.split()
    if vols:
        podman("volume", "rm", "--force", *vols, capture=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up_cmd = sub.add_parser("up")
    up_cmd.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    up_cmd.add_argument("--env", action="append", default=[], metavar="SERVICE:KEY=VALUE")
    sub.add_parser("down")
    for cmd in ("ip", "name"):
        p = sub.add_parser(cmd)
        p.add_argument("service")
        p.add_argument("replica", nargs="?", type=int, default=1)
    args = parser.parse_args()
    spec = load(args.file)
    if args.cmd == "up":
        scale = {k: int(v) for k, v in (s.split("=", 1) for s in args.scale)}
        overrides = {}
        for item in args.env:
            service, assignment = item.split(":", 1)
            key, value = assignment.split("=", 1)
            overrides.setdefault(service, {})[key] = value
        up(spec, scale, overrides)
    elif args.cmd == "down":
        down()
    elif args.cmd == "name":
        print(container(args.service, args.replica))
    else:
        fmt = f"{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}"
        ip = podman("inspect", "--format", fmt, container(args.service, args.replica), capture=True)
        print(ip.stdout.strip())


if __name__ == "__main__":
    main()
