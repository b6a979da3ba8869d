"""The Kubernetes manifests (deploy/k8s) and the compose file, validated offline.

Built-in kinds are checked with the schemas `kubernetes-validate` ships (strict: unknown
fields fail); the KubeRay kinds with the schemas in deploy/schemas, their pod templates
with Kubernetes' own PodTemplateSpec schema. Then the rules of the deployment itself:
restricted pods, no service account token, probes, requests, placeholder-only secrets and
network policies that let only the ingress reach the API and only the API the database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from clinsight.cli import app as cli_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33.0"
RAY_KINDS = {"RayCluster", "RayJob"}
Doc = dict[str, Any]


def _render() -> list[Doc]:
    """`kubectl kustomize deploy/k8s`, or the listed resources as they are without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        text = subprocess.run(
            [kubectl, "kustomize", str(K8S)], check=True, capture_output=True, text=True
        ).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return docs


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return _render()


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _pod_templates(doc: Doc) -> Iterator[tuple[str, Doc]]:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "Job"):
        yield doc["metadata"]["name"], spec["template"]
    elif doc["kind"] == "RayCluster":
        yield "head", spec["headGroupSpec"]["template"]
        for group in spec.get("workerGroupSpecs", []):
            yield group["groupName"], group["template"]
    elif doc["kind"] == "RayJob":
        if "submitterPodTemplate" in spec:
            yield "submitter", spec["submitterPodTemplate"]
        if "rayClusterSpec" in spec:
            yield from _pod_templates({"kind": "RayCluster", "spec": spec["rayClusterSpec"]})


def test_every_kind_the_issue_names_is_there(docs: list[Doc]) -> None:
    kinds = {d["kind"] for d in docs}
    assert kinds >= {
        "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Ingress",
        "NetworkPolicy", "Secret", "ServiceAccount", "Job", "RayCluster", "RayJob",
    }  # fmt: skip


def test_builtin_kinds_validate_strictly(docs: list[Doc]) -> None:
    for doc in docs:
        if doc["kind"] not in RAY_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kuberay_kinds_validate_with_their_schemas_and_pod_templates(docs: list[Doc]) -> None:
    ray_docs = [d for d in docs if d["kind"] in RAY_KINDS]
    assert {d["kind"] for d in ray_docs} == RAY_KINDS
    for doc in ray_docs:
        schema = json.loads((DEPLOY / "schemas" / f"{doc['kind'].lower()}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
        for name, template in _pod_templates(doc):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                       "metadata": {"name": f"{doc['metadata']['name']}-{name}"},
                       "template": template}  # fmt: skip
            kubernetes_validate.validate(wrapped, KUBERNETES_VERSION, strict=True)


def test_the_kuberay_schema_refuses_what_the_api_would(docs: list[Doc]) -> None:
    cluster = _one(docs, "RayCluster", "clinsight-ray")
    schema = json.loads((DEPLOY / "schemas" / "raycluster.schema.json").read_text())
    bad = json.loads(json.dumps(cluster))
    bad["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # must be a string
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = json.loads(json.dumps(cluster))
    bad["spec"]["workerGroupSpecs"][0]["replica"] = 2  # a misspelt field
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_every_pod_is_restricted_and_has_no_token(docs: list[Doc]) -> None:
    templates = [(d, n, t) for d in docs for n, t in _pod_templates(d)]
    assert len(templates) >= 5  # api, migration, ray head, ray workers, job submitter
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert accounts
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    for doc, name, template in templates:
        where = f"{doc['kind']}/{doc['metadata']['name']}/{name}"
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["serviceAccountName"] in accounts, where
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, where
        assert pod_context["runAsUser"] != 0, where
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            assert container["resources"]["requests"], where
            assert "memory" in container["resources"]["limits"], where
            assert container["image"].startswith("localhost/clinsight:"), where


def test_the_namespace_enforces_the_restricted_pod_security_standard(docs: list[Doc]) -> None:
    labels = _one(docs, "Namespace", "clinsight")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        d["metadata"].get("namespace") == "clinsight" for d in docs if d["kind"] != "Namespace"
    )


def test_the_api_has_probes_requests_autoscaling_and_a_disruption_budget(docs: list[Doc]) -> None:
    deployment = _one(docs, "Deployment", "clinsight-api")
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["scheme"] == "HTTPS"  # the service speaks nothing else
    assert {"cpu", "memory"} <= set(api["resources"]["requests"])
    assert api["args"] == ["serve", "--no-train"]  # replicas never train at start
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = _one(docs, "HorizontalPodAutoscaler", "clinsight-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "clinsight-api"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = _one(docs, "PodDisruptionBudget", "clinsight-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _one(docs, "Service", "clinsight-api")
    assert service["spec"]["selector"].items() <= labels.items()
    ingress = _one(docs, "Ingress", "clinsight")
    (tls,) = ingress["spec"]["tls"]
    assert _one(docs, "Secret", tls["secretName"])["type"] == "kubernetes.io/tls"
    assert set(tls["hosts"]) == {rule["host"] for rule in ingress["spec"]["rules"]}


def test_secrets_hold_placeholders_only_and_reach_the_pods_from_secrets(docs: list[Doc]) -> None:
    for secret in (d for d in docs if d["kind"] == "Secret"):
        assert "data" not in secret, secret["metadata"]["name"]
        for key, value in secret["stringData"].items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}/{key}"
    config = _one(docs, "ConfigMap", "clinsight-settings")["data"]
    for secret_setting in ("DATABASE_URL", "JWT_SECRET", "ADMIN_PASSWORD"):
        assert f"CLINSIGHT_{secret_setting}" not in config
    (api,) = _one(docs, "Deployment", "clinsight-api")["spec"]["template"]["spec"]["containers"]
    from_secrets = {e["name"] for e in api["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secrets >= {"CLINSIGHT_DATABASE_URL", "CLINSIGHT_JWT_SECRET"}


def _policy(docs: list[Doc], name: str) -> Doc:
    spec: Doc = _one(docs, "NetworkPolicy", name)["spec"]
    return spec


def test_network_policies_let_only_the_ingress_reach_the_api(docs: list[Doc]) -> None:
    deny = _policy(docs, "default-deny")
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    api = _policy(docs, "clinsight-api")
    assert api["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "clinsight-api"}
    (rule,) = api["ingress"]
    (peer,) = rule["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}  # fmt: skip
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]


def test_network_policies_let_only_the_api_reach_postgresql(docs: list[Doc]) -> None:
    database = _policy(docs, "postgresql")
    (rule,) = database["ingress"]
    (peer,) = rule["from"]
    client_label = peer["podSelector"]["matchLabels"]
    assert list(peer) == ["podSelector"]  # no namespace, no address block
    clients = [
        d["metadata"]["name"]
        for d in docs
        for _, t in _pod_templates(d)
        if client_label.items() <= t["metadata"].get("labels", {}).items()
    ]
    assert sorted(clients) == ["clinsight-api", "clinsight-db-migrate"]
    ray = _policy(docs, "clinsight-ray")
    for egress in ray["egress"]:
        for to in egress["to"]:
            assert (
                to.get("podSelector", {}).get("matchLabels")
                != database["podSelector"]["matchLabels"]
            )


def test_the_migration_job_runs_the_clis_migration_command(docs: list[Doc]) -> None:
    (container,) = _one(docs, "Job", "clinsight-db-migrate")["spec"]["template"]["spec"][
        "containers"
    ]
    group, command = container["args"]
    cli = get_command(cli_app)
    assert command in cli.commands[group].commands  # type: ignore[attr-defined]


def test_the_ray_job_runs_a_clinsight_command_on_the_ray_cluster(docs: list[Doc]) -> None:
    job = _one(docs, "RayJob", "clinsight-tune-image")["spec"]
    cluster = _one(docs, "RayCluster", "clinsight-ray")
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    program, group, command, *_ = job["entrypoint"].split()
    assert program == "clinsight"
    cli = get_command(cli_app)
    if group not in cli.commands:  # type: ignore[attr-defined]
        pytest.skip(f"`clinsight {group}` comes with the Ray work (not on this branch)")
    assert command in cli.commands[group].commands  # type: ignore[attr-defined]
    assert cluster["spec"]["rayVersion"] == __import__("ray").__version__


def test_the_compose_file_runs_replicas_postgresql_and_ray_restricted() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "postgres", "migrate", "proxy", "ray-head", "ray-worker"} <= set(services)
    assert services["api"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["api"]  # reached through the proxy only
    for name in ("api", "migrate", "ray-head", "ray-worker"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["user"].split(":")[0] not in ("0", "root"), name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        for value in service.get("environment", {}).values():
            assert "REPLACE-ME" not in str(value), name
            assert "password" not in str(value).lower(), name
    assert services["api"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["db", "migrate"]
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"}  # files outside the image, never inline values
