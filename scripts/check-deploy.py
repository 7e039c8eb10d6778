#!/usr/bin/env python3
"""Checks the multi-replica deployments against what Rill needs (issue 28): compose.replicas.yaml
with deploy/nginx.replicas.conf, and deploy/kubernetes/rill.yaml. Parses them (PyYAML, from the
test tools' venv) and fails with the reasons, so a manifest cannot drift from the server's
endpoints, settings and hardening unnoticed. Usage: check-deploy.py (from the repository)."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


def settings_known():
    """Every RILL_* name .env.example documents (itself checked against the settings table)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"\b(RILL_[A-Z0-9_]+)=", text))


def check_env_names(where, names, known):
    for name in names:
        if name.startswith("RILL_"):
            need(name in known, f"{where}: {name} is not a setting (.env.example)")


def check_compose(known):
    compose = yaml.safe_load((ROOT / "compose.replicas.yaml").read_text())
    services = compose.get("services", {})
    replicas = sorted(name for name in services if re.fullmatch(r"rill-\d+", name))
    need(len(replicas) >= 2, "compose: at least two rill-N replicas")
    postgres = services.get("postgres", {})
    need("healthcheck" in postgres, "compose: postgres has a health check")
    for name in replicas:
        service = services[name]
        env = service.get("environment", {})
        need(str(env.get("RILL_DATABASE", "")).startswith("postgres://"),
             f"compose: {name} stores on Postgres")
        need(env.get("RILL_DATABASE") == services[replicas[0]]["environment"]["RILL_DATABASE"],
             f"compose: {name} uses the same database as {replicas[0]}")
        need(service.get("read_only") is True, f"compose: {name} has a read-only root")
        need(service.get("cap_drop") == ["ALL"], f"compose: {name} drops every capability")
        need(service.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
             f"compose: {name} waits for a healthy postgres")
        need("ports" not in service, f"compose: {name} is reached only through the balancer")
        check_env_names(f"compose {name}", env, known)
    balancer = services.get("balancer", {})
    need(all(p.startswith("127.0.0.1:") for p in balancer.get("ports", [])),
         "compose: the balancer publishes on loopback only")
    mounts = [v.split(":")[0] for v in balancer.get("volumes", [])]
    need("./deploy/nginx.replicas.conf" in mounts, "compose: the balancer mounts its nginx conf")
    conf = (ROOT / "deploy/nginx.replicas.conf").read_text()
    upstream = re.findall(r"^\s*server\s+([\w.-]+):3000", conf, re.M)
    need(sorted(upstream) == replicas, f"nginx: upstream {upstream} is every replica {replicas}")
    need(not re.search(r"\b(ip_hash|hash|sticky)\b", conf), "nginx: no stickiness")
    need("proxy_http_version 1.1" in conf, "nginx: HTTP/1.1 upstream (streams)")


def check_kubernetes(known):
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/rill.yaml").read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        need(kind in by_kind, f"kubernetes: a {kind}")
    deployment = by_kind.get("Deployment", {})
    spec = deployment.get("spec", {})
    need(spec.get("replicas", 0) >= 2, "kubernetes: at least two replicas")
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    need(pod.get("securityContext", {}).get("runAsNonRoot") is True, "kubernetes: non-root")
    need(pod.get("terminationGracePeriodSeconds", 30) > 8,
         "kubernetes: the grace period outlasts Rill's drain (8 s)")
    containers = pod.get("containers", [])
    need(len(containers) == 1, "kubernetes: one container")
    for c in containers:
        need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
             "kubernetes: readiness on /readyz")
        need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
             "kubernetes: liveness on /healthz")
        security = c.get("securityContext", {})
        need(security.get("readOnlyRootFilesystem") is True, "kubernetes: read-only root")
        need(security.get("allowPrivilegeEscalation") is False, "kubernetes: no privilege gain")
        need(security.get("capabilities", {}).get("drop") == ["ALL"],
             "kubernetes: every capability dropped")
        resources = c.get("resources", {})
        need("memory" in resources.get("requests", {}) and "memory" in resources.get("limits", {}),
             "kubernetes: memory requested and limited")
        env = {e["name"]: e for e in c.get("env", [])}
        database = env.get("RILL_DATABASE", {})
        need("secretKeyRef" in database.get("valueFrom", {}),
             "kubernetes: the database URL comes from a Secret")
        check_env_names("kubernetes", env, known)
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        need("/tmp" in mounts, "kubernetes: a writable /tmp (uploads spool there)")
    for kind in ("Service", "PodDisruptionBudget"):
        selector = by_kind.get(kind, {}).get("spec", {}).get("selector", {})
        selector = selector.get("matchLabels", selector)
        need(selector and all(labels.get(k) == v for k, v in selector.items()),
             f"kubernetes: the {kind} selects the Deployment's pods")
    need("sessionAffinity" not in by_kind.get("Service", {}).get("spec", {}),
         "kubernetes: no session affinity")


known = settings_known()
check_compose(known)
check_kubernetes(known)
if problems:
    print("deployment files:", *problems, sep="\n  ")
    sys.exit(1)
print("compose.replicas.yaml, deploy/nginx.replicas.conf and deploy/kubernetes/rill.yaml: ok")
