"""docs/deploy/k8s as a cluster: every YAML file parses, the headless Service finds the
Deployment's ready pods at the port the ConfigMap's `[cluster] dns` names, the secret
comes from a Secret, and the NetworkPolicy keeps the cluster port to the pods. The
ConfigMap's config with the pod's environment passes `check-config`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from config.loader import check_config, load_settings
from tests.support.proxy_server import REPO_ROOT

K8S = REPO_ROOT / "docs" / "deploy" / "k8s"


def _docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert loaded, f"{path.name}: no document"
        assert all(isinstance(d, dict) and d.get("kind") for d in loaded), path.name
        docs += loaded
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    named = [d for d in _docs() if d["kind"] == kind]
    (doc,) = [d for d in named if name in (None, d.get("metadata", {}).get("name"))]
    return doc


def _container() -> dict[str, Any]:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _cluster_config() -> dict[str, Any]:
    ((_, text),) = _one("ConfigMap")["data"].items()
    cluster = tomllib.loads(text)["cluster"]
    assert isinstance(cluster, dict)
    return cluster


def _pod_env() -> dict[str, str]:
    """The container's environment, a Secret's value standing in as a placeholder."""
    env = {"EDGESHIELD_SERVER__HOST": "0.0.0.0"}  # the image's ENV
    for item in _container()["env"]:
        env[item["name"]] = item.get("value", f"placeholder-{item['name'].lower()}")
    env.pop("EDGESHIELD_CONFIG")
    return env


def test_every_k8s_file_parses_and_the_kustomization_lists_them() -> None:
    docs = _docs()
    listed = set(_one("Kustomization")["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert all("apiVersion" in d for d in docs)


def test_the_headless_service_selects_the_ready_pods_at_the_cluster_port() -> None:
    service = _one("Service", "edgeshield-cluster")
    spec = service["spec"]
    assert spec["clusterIP"] == "None"  # the YAML word, not null
    assert spec["publishNotReadyAddresses"] is False
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    (port,) = spec["ports"]
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert port["targetPort"] == "cluster" and ports["cluster"] == port["port"]
    assert ports["cluster"] != ports["http"]


def test_the_configmap_names_the_headless_service_and_its_port() -> None:
    cluster = _cluster_config()
    service = _one("Service", "edgeshield-cluster")
    name, namespace, *rest = cluster["dns"].split(".")
    assert name == service["metadata"]["name"]
    assert namespace and rest == ["svc", "cluster", "local"]
    assert cluster["dns_port"] == service["spec"]["ports"][0]["port"]
    assert "secret" not in cluster and "self" not in cluster  # from the Secret; from DNS


def test_the_cluster_secret_comes_from_a_secret_and_is_required() -> None:
    (item,) = [e for e in _container()["env"] if e["name"] == "EDGESHIELD_CLUSTER__SECRET"]
    ref = item["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"] and not ref.get("optional", False)


def test_the_network_policy_keeps_the_cluster_port_to_the_pods() -> None:
    policy = _one("NetworkPolicy")["spec"]
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    names = {p["name"] for p in _container()["ports"]}
    for rule in policy["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= names
        if any(p["port"] == "cluster" for p in rule["ports"]):
            (source,) = rule["from"]
            assert source["podSelector"]["matchLabels"].items() <= labels.items()
        else:
            assert "from" not in rule  # the main port: anyone the Service sends


def test_the_configmap_config_passes_check_config_with_cluster_on(tmp_path: Path) -> None:
    ((filename, text),) = _one("ConfigMap")["data"].items()
    path = tmp_path / filename
    path.write_text(text)
    env = _pod_env()
    code, report = check_config(path, env)
    assert code == 0, report
    settings = load_settings(path, env=env)
    cluster = settings.cluster
    assert cluster.instances_on and cluster.dns is not None and cluster.secret is not None
    assert cluster.port == _cluster_config()["dns_port"]
