"""deploy/k8s: every manifest passes the Kubernetes JSON schema (kubernetes-validate's bundled schemas, offline,
strict: an unknown field fails), and the rules the issue sets hold: uid 10001 non-root on a read-only root fs, the
key only in the vault's pod and each pod only its own certificate, probes on the ports the containers expose, the
dispatcher's autoscaler, and NetworkPolicies that let only the registry, the dispatchers and the gateway reach
the vault."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tgm.grpc_runtime.channels import REGISTRY_SERVER_NAME, VAULT_SERVER_NAME

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests are written for
UID = 10001
WORKLOADS = {"Deployment", "Job"}
# Each workload's secrets: the vault's key in the vault alone, each gRPC identity's certificate in its own pod.
EXPECTED_SECRETS = {
    "tgm-vault": {"tgm-vault-key", "tgm-vault-tls"},
    "tgm-botregistry": {"tgm-botregistry-tls", "tgm-registry-db", "tgm-manager-bot"},
    "tgm-botregistry-migrate": {"tgm-registry-migrate-db"},
    "tgm-gateway": {"tgm-gateway-tls", "tgm-gateway-redis", "tgm-envelope-key"},
    "tgm-dispatcher": {"tgm-dispatcher-tls", "tgm-dispatcher-redis", "tgm-envelope-key", "tgm-callback-key"},
}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, document)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] == kind}


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _workloads() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] in WORKLOADS}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def _settings() -> dict[str, str]:
    return dict(_by_kind("ConfigMap")["tgm-settings"]["data"])


def test_every_manifest_passes_the_kubernetes_schema_offline() -> None:
    documents = _documents()
    assert {doc["kind"] for _, doc in documents} >= {
        "Deployment", "Service", "Job", "HorizontalPodAutoscaler", "NetworkPolicy", "PersistentVolumeClaim",
        "ConfigMap", "Ingress",
    }  # fmt: skip
    for name, doc in documents:
        # Raises on a schema violation, and on a kind or apiVersion with no schema (nothing passes unchecked).
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert "namespace" not in doc["metadata"], (name, doc["metadata"]["name"])  # namespace-agnostic
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted({name for name, _ in documents})


def test_the_schema_check_catches_a_misspelt_field_and_a_wrong_type() -> None:
    vault = _by_kind("Deployment")["tgm-vault"]
    misspelt = copy.deepcopy(vault)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    wrong_type = copy.deepcopy(vault)
    wrong_type["spec"]["replicas"] = "one"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_container_runs_as_10001_non_root_on_a_read_only_root() -> None:
    assert set(_workloads()) == set(EXPECTED_SECRETS)
    for name, workload in _workloads().items():
        pod = _pod_spec(workload)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == UID, name
        assert _pod_spec(workload)["automountServiceAccountToken"] is False, name
        for container in _containers(workload):
            context = container["securityContext"]
            assert (context["runAsNonRoot"], context["runAsUser"], context["runAsGroup"]) == (True, UID, UID), name
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])


def _secrets_of(workload: dict[str, Any]) -> set[str]:
    names = {volume["secret"]["secretName"] for volume in _pod_spec(workload).get("volumes", []) if "secret" in volume}
    for container in _containers(workload):
        names |= {item["secretRef"]["name"] for item in container.get("envFrom", []) if "secretRef" in item}
        names |= {
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        }
    return names


def test_only_the_vault_gets_the_key_and_each_pod_only_its_own_certificate() -> None:
    for name, workload in _workloads().items():
        assert _secrets_of(workload) == EXPECTED_SECRETS[name], name
        for container in _containers(workload):
            has_key = "ENCRYPTION_KEY" in _env(container)
            assert has_key == (container["name"] == "init-keyring"), (name, container["name"])  # init only
        identity = name.removeprefix("tgm-")
        certificate_mounts = [
            mount for container in _containers(workload) for mount in container.get("volumeMounts", [])
            if mount["mountPath"] == "/certs"
        ]  # fmt: skip
        if identity == "botregistry-migrate":
            assert certificate_mounts == [], name  # talks to PostgreSQL only
            continue
        volumes = {volume["name"]: volume for volume in _pod_spec(workload)["volumes"]}
        assert [volumes[mount["name"]]["secret"]["secretName"] for mount in certificate_mounts] == [
            f"tgm-{identity}-tls"
        ], name
        # Secret files are root's: uid 10001 reads its key through the group the kubelet gives them (fsGroup), and
        # nobody else can.
        (mode,) = {volumes[mount["name"]]["secret"]["defaultMode"] for mount in certificate_mounts}
        assert _pod_spec(workload)["securityContext"]["fsGroup"] == UID, name
        assert mode & 0o040 and not mode & 0o007, (name, oct(mode))
        assert all(mount["readOnly"] for mount in certificate_mounts), name
        served = _env(_pod_spec(workload)["containers"][0])
        assert (served["TLS_CERT_FILE"], served["TLS_KEY_FILE"]) == (f"/certs/{identity}.pem", f"/certs/{identity}.key")
    secret_variables = {"ENCRYPTION_KEY", "DB_URL", "MANAGER_BOT_TOKEN", "REDIS_URL", "ENVELOPE_SIGNING_KEY",
                        "CALLBACK_SIGNING_KEY"}  # fmt: skip
    assert not secret_variables & set(_settings()), "a secret in the ConfigMap"


def _port_number(container: dict[str, Any], port: int | str) -> int:
    numbers = {item["name"]: item["containerPort"] for item in container.get("ports", [])}
    if isinstance(port, str):
        assert port in numbers, (container["name"], port)
        return int(numbers[port])
    assert port in numbers.values(), (container["name"], port)
    return port


def test_every_deployment_probes_health_and_readiness_on_the_port_its_service_serves_them() -> None:
    settings = _settings()
    for name, deployment in _by_kind("Deployment").items():
        for container in _pod_spec(deployment)["containers"]:
            env = settings | {k: v for k, v in _env(container).items() if isinstance(v, str)}
            # The gateway serves them on its HTTP port, the others on their metrics server (src/tgm/observability).
            expected = int(env["GATEWAY_PORT"] if name == "tgm-gateway" else env["METRICS_PORT"])
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                check = container[probe]["httpGet"]
                assert check["path"] == path, (name, probe)
                assert _port_number(container, check["port"]) == expected, (name, probe)


def test_services_carry_the_names_in_the_certificates_and_select_their_pods() -> None:
    services = _by_kind("Service")
    settings = _settings()
    assert settings["VAULT_ADDR"] == f"{VAULT_SERVER_NAME}:{services[VAULT_SERVER_NAME]['spec']['ports'][0]['port']}"
    registry_port = services[REGISTRY_SERVER_NAME]["spec"]["ports"][0]["port"]
    assert settings["REGISTRY_ADDR"] == f"{REGISTRY_SERVER_NAME}:{registry_port}"
    pods = {name: _pod_spec(d) | {"labels": d["spec"]["template"]["metadata"]["labels"]} for name, d in
            _by_kind("Deployment").items()}  # fmt: skip
    for name, service in services.items():
        selected = [pod for pod in pods.values() if service["spec"]["selector"].items() <= pod["labels"].items()]
        assert len(selected) == 1, name
        for port in service["spec"]["ports"]:
            _port_number(selected[0]["containers"][0], port["targetPort"])


def test_the_dispatcher_autoscales_on_cpu_from_3_to_10() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")["tgm-dispatcher"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tgm-dispatcher"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    dispatcher = _by_kind("Deployment")["tgm-dispatcher"]
    assert "replicas" not in dispatcher["spec"]  # the autoscaler owns the count
    assert _pod_spec(dispatcher)["containers"][0]["resources"]["requests"]["cpu"]  # utilization is of the request


def test_the_vault_keeps_its_keyring_on_its_volume_in_one_pod() -> None:
    vault = _by_kind("Deployment")["tgm-vault"]
    assert vault["spec"]["replicas"] == 1 and vault["spec"]["strategy"] == {"type": "Recreate"}  # one flock holder
    pod = _pod_spec(vault)
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert set(claims.values()) <= set(_by_kind("PersistentVolumeClaim"))
    (init,) = pod["initContainers"]
    (serve,) = pod["containers"]
    assert init["command"] == ["python", "-m", "tgm.services.vault", "init", "--once"]
    assert serve["command"][-1] == "serve"
    for variable in ("VAULT_KEYRING_FILE", "VAULT_AUDIT_FILE"):
        assert _env(init)[variable] == _env(serve)[variable], variable
    keyring = Path(_env(serve)["VAULT_KEYRING_FILE"])
    (data_mount,) = [m for m in serve["volumeMounts"] if m["name"] in claims]
    assert data_mount in init["volumeMounts"]
    # In a folder below the volume's root, with the kubelet changing modes only on a root mismatch: otherwise
    # fsGroup would make the 0600 keyring group-readable at every start, and the vault refuses such a keyring.
    assert keyring.parent.parent == Path(data_mount["mountPath"])
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_the_registry_migrates_with_the_owner_role_in_a_job_and_serves_with_the_application_role() -> None:
    job = _by_kind("Job")["tgm-botregistry-migrate"]
    (migrate,) = _pod_spec(job)["containers"]
    assert migrate["command"] == ["python", "-m", "tgm.services.botregistry", "migrate"]
    assert _env(migrate)["DB_URL"] == {"secretKeyRef": {"name": "tgm-registry-migrate-db", "key": "DB_URL"}}
    (serve,) = _pod_spec(_by_kind("Deployment")["tgm-botregistry"])["containers"]
    assert _env(serve)["DB_URL"] == {"secretKeyRef": {"name": "tgm-registry-db", "key": "DB_URL"}}


# ------------------------------------------------------------------------------------------ NetworkPolicy


@dataclass(frozen=True)
class Pod:
    labels: dict[str, str]
    same_namespace: bool = True


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions would need more than this model
    return dict(selector.get("matchLabels", {})).items() <= labels.items()


def _peer_allowed(peer: dict[str, Any], source: Pod) -> bool:
    if "ipBlock" in peer:
        return True  # any address: treat as open
    if "namespaceSelector" in peer:
        assert peer["namespaceSelector"] == {}, peer  # any namespace; only that form is used here
    elif not source.same_namespace:
        return False  # a podSelector alone means this namespace
    return _matches(peer.get("podSelector", {}), source.labels)


def _reachable(policies: list[dict[str, Any]], target: Pod, port: dict[str, Any], source: Pod) -> bool:
    """NetworkPolicy ingress semantics: a pod no policy selects takes everything; otherwise a connection needs one
    rule, of one selecting policy, whose `from` admits the source (or is absent) and whose ports hold the port."""
    selecting = [p for p in policies if _matches(p["spec"]["podSelector"], target.labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            sources_ok = "from" not in rule or any(_peer_allowed(peer, source) for peer in rule["from"])
            ports_ok = "ports" not in rule or any(
                item["port"] in (port["name"], port["containerPort"]) for item in rule["ports"]
            )
            if sources_ok and ports_ok:
                return True
    return False


def _allowed_sources(target_name: str, port_name: str) -> set[str]:
    policies = list(_by_kind("NetworkPolicy").values())
    deployment = _by_kind("Deployment")[target_name]
    target = Pod(deployment["spec"]["template"]["metadata"]["labels"])
    (port,) = [p for p in _pod_spec(deployment)["containers"][0]["ports"] if p["name"] == port_name]
    sources = {
        name: Pod(d["spec"]["template"]["metadata"]["labels"]) for name, d in _workloads().items()
    } | {
        "tgm-cli": Pod({"app.kubernetes.io/name": "tgm-cli"}),
        "prometheus": Pod({"app.kubernetes.io/name": "prometheus"}, same_namespace=False),
        "stranger": Pod({"app.kubernetes.io/name": "something-else"}),
        "stranger-elsewhere": Pod({"app.kubernetes.io/name": "something-else"}, same_namespace=False),
    }  # fmt: skip
    return {name for name, source in sources.items() if _reachable(policies, target, port, source)}


def test_the_vault_is_reachable_only_from_the_registry_the_dispatchers_and_the_gateway() -> None:
    assert _allowed_sources("tgm-vault", "grpc") == {"tgm-botregistry", "tgm-dispatcher", "tgm-gateway"}
    assert _allowed_sources("tgm-vault", "metrics") == {"prometheus"}


def test_the_registry_is_reachable_from_its_clients_and_the_rest_only_by_prometheus() -> None:
    assert _allowed_sources("tgm-botregistry", "grpc") == {"tgm-gateway", "tgm-dispatcher", "tgm-cli"}
    assert _allowed_sources("tgm-botregistry", "metrics") == {"prometheus"}
    assert _allowed_sources("tgm-dispatcher", "metrics") == {"prometheus"}
    policies = _by_kind("NetworkPolicy").values()
    assert any(p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]} for p in policies)  # default deny


def test_the_policy_model_sees_an_opening() -> None:
    """The checks above can fail: one extra peer in the vault's rule is found."""
    policies = copy.deepcopy(list(_by_kind("NetworkPolicy").values()))
    vault_policy = next(p for p in policies if p["metadata"]["name"] == "tgm-vault")
    vault_policy["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    target = Pod({"app.kubernetes.io/name": "tgm-vault"})
    port = {"name": "grpc", "containerPort": 50051}
    assert _reachable(policies, target, port, Pod({"app.kubernetes.io/name": "something-else"}))
    assert not _reachable(list(_by_kind("NetworkPolicy").values()), target, port, Pod({"x": "y"}))
