#!/usr/bin/env python3
"""Prepares the rendered kustomization (deploy/k8s) for `podman kube play`.

    kube.py RENDERED SECRETS_EXAMPLE OUT_DIR ISSUER DB_PASSWORD

Writes into OUT_DIR, changing only what a cluster would provide and podman
cannot:
  config.yaml         the ConfigMap, with the issuer and public URL set to
                      addresses this run reaches (no Ingress, no TLS here)
  secret.json         the podman secret `baton-secrets` (podman 4.3 reads a
                      secretKeyRef from a JSON map of base64 values), with a
                      value for every key of secrets.example.yaml: fresh
                      random keys and secrets, the database URLs with the
                      run's password
  seed.yaml           the seed Job's pod template as a Pod (podman plays no Jobs)
  <name>.yaml         each Deployment (podman plays its replicas), without its
                      `ports` list, which podman 4.3 would publish on the host
  deployments         the Deployments' names in the manifests' order, one a line,
                      with their replica count and container port
Services, the Namespace and the Ingress are not played: the run gives every
pod of a Deployment the network alias `<name>.baton.svc` instead.
"""

import base64
import json
import os
import secrets
import sys

import yaml


def main():
    rendered, example, out, issuer, db_password = sys.argv[1:6]
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(example, encoding="utf-8") as f:
        secret_doc = yaml.safe_load(f)

    deployments = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "ConfigMap" and name == "baton-config":
            doc["data"]["GUARD_ISSUER"] = issuer
            doc["data"]["IDP_ISSUER"] = issuer
            doc["data"]["GATEWAY_PUBLIC_URL"] = "http://gateway.baton.svc:8080"
            write_yaml(out, "config", doc)
        elif kind == "Job":
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": doc["metadata"].get("labels", {})},
                "spec": doc["spec"]["template"]["spec"],
            }
            write_yaml(out, "seed", pod)
        elif kind == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            port = container["ports"][0]["containerPort"]
            # podman 4.3 publishes every containerPort on the host (5.0 stopped):
            # replicas would collide there. The pods are reached by address.
            del container["ports"]
            deployments.append(f"{name} {doc['spec'].get('replicas', 1)} {port}")
            write_yaml(out, name, doc)

    values = {}
    for key, value in secret_doc["stringData"].items():
        if key.endswith("-database-url"):
            value = value.replace("CHANGE-ME", db_password)
        elif value == "CHANGE-ME":
            value = base64.b64encode(secrets.token_bytes(32)).decode()
        else:
            sys.exit(f"kube.py: secrets.example.yaml: unexpected value for {key}")
        values[key] = base64.b64encode(value.encode()).decode()
    with open(os.path.join(out, "secret.json"), "w", encoding="utf-8") as f:
        json.dump(values, f)
    with open(os.path.join(out, "deployments"), "w", encoding="utf-8") as f:
        f.write("\n".join(deployments) + "\n")


def write_yaml(out, name, doc):
    with open(os.path.join(out, f"{name}.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


if __name__ == "__main__":
    main()
