"""deploy/kubernetes/: the kustomizations render (without kubectl too), pass strict schema validation, and say what
docs/DEPLOY.md promises (non-root, read-only root, READY probes, management port closed, no secrets)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from gateway.settings import ENV_PREFIX, GatewaySettings
from nertools import manifests
from nertools.images import project_version, server_config
from nertools.manifests import ManifestError, kube_play, render, validate
from nertools.torchserve import parse_properties, read_properties
from tests.support.paths import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
QUEUE_TIME = KUBERNETES / "overlays" / "queue-time-hpa"
KUSTOMIZATIONS = sorted(path.parent for path in KUBERNETES.rglob("kustomization.yaml"))


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def containers(resources: list[dict]) -> list[dict]:
    return [c for d in by_kind(resources, "Deployment").values() for c in d["spec"]["template"]["spec"]["containers"]]


def env_of(container: dict) -> dict[str, str]:
    return {variable["name"]: variable.get("value", "") for variable in container.get("env", [])}


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(BASE)


def test_every_kustomization_is_found():
    assert BASE in KUSTOMIZATIONS and QUEUE_TIME in KUSTOMIZATIONS


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_the_renderer_gives_what_kubectl_kustomize_gives(directory):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: nothing to compare nertools.manifests.render with")
    printed = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True)
    assert render(directory) == [doc for doc in yaml.safe_load_all(printed.stdout) if doc]


def test_the_generated_config_map_name_is_kustomizes_hash():
    # kubectl kustomize names a ConfigMap generated from one file "a" holding "b" x-4h2mbtbbt6.
    assert manifests.config_map_hash({"a": "b"}) == "4h2mbtbbt6"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_every_kustomization_passes_strict_validation_on_the_oldest_and_newest_kubernetes(directory):
    resources = render(directory)
    versions = manifests.supported_versions()
    for version in (versions[0], versions[-1]):
        assert validate(resources, version) == [], version


def test_an_unknown_field_fails_validation(base):
    broken = yaml.safe_load(yaml.safe_dump(by_kind(base, "Deployment")["ner-model-server"]))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["imagePulPolicy"] = container.pop("imagePullPolicy")
    problems = validate([broken], manifests.supported_versions()[-1])
    assert len(problems) == 1 and "imagePulPolicy" in problems[0]


def test_a_misspelt_builtin_kind_fails_validation_where_kubernetes_validate_only_warns():
    service = {"apiVersion": "v1", "kind": "Servce", "metadata": {"name": "x"}, "spec": {}}
    removed = {"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"}}
    problems = validate([service, removed], manifests.supported_versions()[-1])
    assert len(problems) == 2 and "Servce" in problems[0] and "v2beta1" in problems[1]


def test_a_custom_resource_is_not_a_validation_failure():
    service = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"}}
    assert validate([service], manifests.supported_versions()[-1]) == []


def test_the_validate_command_fails_on_a_broken_kustomization(tmp_path, capsys):
    (tmp_path / "kustomization.yaml").write_text("resources: [service.yaml]\n", encoding="utf-8")
    (tmp_path / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: '8080x'}]}\n", encoding="utf-8"
    )
    assert manifests.main(["validate", str(tmp_path)]) == 1
    assert "Service/x: spec.ports.0.port" in capsys.readouterr().err
    assert manifests.main(["validate", str(BASE)]) == 0


def test_an_unsupported_kustomize_feature_is_refused_not_ignored(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="commonLabels"):
        render(tmp_path)


def test_every_container_runs_as_uid_1000_with_a_read_only_root_and_no_privileges(base):
    for deployment in by_kind(base, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["runAsUser"] == 1000
            assert {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"} <= tmp_volumes
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


def test_every_container_has_requests_and_limits(base):
    for container in containers(base):
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_images_are_tagged_with_the_project_version(base):
    version = project_version((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    images = {c["image"] for c in containers(base)}
    assert images == {f"localhost/ner-model-server:{version}", f"localhost/ner-gateway:{version}"}
    assert {c["imagePullPolicy"] for c in containers(base)} == {"IfNotPresent"}


def test_the_config_map_is_the_model_server_images_own_configuration(base):
    (config_map,) = by_kind(base, "ConfigMap").values()
    mounted = parse_properties(config_map["data"]["config.properties"])
    project = (ROOT / "config.properties").read_text(encoding="utf-8")
    assert mounted == parse_properties(server_config(project))
    assert mounted["inference_address"] == "http://0.0.0.0:8080"
    assert mounted["enable_model_api"] == "false"


def test_the_model_server_reads_the_mounted_configuration(base):
    deployment = by_kind(base, "Deployment")["ner-model-server"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (config_map,) = by_kind(base, "ConfigMap").values()
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert env_of(container)["TS_CONFIG_FILE"] == f"{mount['mountPath']}/config.properties"


def test_model_server_startup_and_readiness_mean_a_ready_worker_and_liveness_is_ping(base):
    (container,) = by_kind(base, "Deployment")["ner-model-server"]["spec"]["template"]["spec"]["containers"]
    config = read_properties(BASE / "config.properties")
    model = config["load_models"].split("=")[0]
    management_port = config["management_address"].rsplit(":", 1)[1]
    expected = ["python3", "-m", "nertools.ready", "--management", f"http://127.0.0.1:{management_port}"]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == [*expected, "--model", model]
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "inference"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {name: str(port) for name, port in ports.items()} == {
        key.split("_")[0]: config[key].rsplit(":", 1)[1]
        for key in ("inference_address", "management_address", "metrics_address")
    }


def test_the_management_port_is_reachable_only_from_the_gateway(base):
    services = by_kind(base, "Service")
    assert {p["port"] for p in services["ner-model-server"]["spec"]["ports"]} == {8080, 8082}
    assert {p["port"] for p in services["ner-model-server-management"]["spec"]["ports"]} == {8081}
    policy = by_kind(base, "NetworkPolicy")["ner-model-server"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    admitted = [(rule["from"], {p["port"] for p in rule["ports"]}) for rule in policy["ingress"]]
    management = [peers for peers, ports in admitted if "management" in ports]
    assert management == [[{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ner-gateway"}}}]]
    assert all("ipBlock" not in peer for peers, _ in admitted for peer in peers)


def test_gateway_settings_are_known_and_point_at_the_model_server_services(base):
    (container,) = by_kind(base, "Deployment")["ner-gateway"]["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    known = {ENV_PREFIX + name.upper() for name in GatewaySettings.model_fields}
    assert set(env) <= known
    services = by_kind(base, "Service")
    for variable in ("NER_GATEWAY_INFERENCE_URL", "NER_GATEWAY_MANAGEMENT_URL"):
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", env[variable])
        assert match, env[variable]
        assert int(match[2]) in {p["port"] for p in services[match[1]]["spec"]["ports"]}
    # Keys come from a Secret the operator creates; none is committed.
    assert "NER_GATEWAY_API_KEYS" not in env and "NER_GATEWAY_AUTH_DISABLED" not in env
    mount = next(m for m in container["volumeMounts"] if env["NER_GATEWAY_API_KEYS_FILE"].startswith(m["mountPath"]))
    volumes = by_kind(base, "Deployment")["ner-gateway"]["spec"]["template"]["spec"]["volumes"]
    assert "secret" in next(v for v in volumes if v["name"] == mount["name"])
    assert not by_kind(base, "Secret")


def test_selectors_match_the_pods_they_mean_and_labels_are_consistent(base):
    deployments = by_kind(base, "Deployment")
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for resource in base:
        labels = resource["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "bert-ner"
        assert labels["app.kubernetes.io/name"] in deployments
    for name, deployment in deployments.items():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items()
    selectors = [s["spec"]["selector"] for s in by_kind(base, "Service").values()]
    selectors += [p["spec"]["selector"]["matchLabels"] for p in by_kind(base, "PodDisruptionBudget").values()]
    selectors += [p["spec"]["podSelector"]["matchLabels"] for p in by_kind(base, "NetworkPolicy").values()]
    for selector in selectors:
        assert sum(selector.items() <= labels.items() for labels in pod_labels.values()) == 1, selector
    for hpa in by_kind(base, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments


def test_model_server_pods_are_annotated_for_prometheus_on_the_metrics_port(base):
    template = by_kind(base, "Deployment")["ner-model-server"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])


def test_the_queue_time_variant_scales_on_a_rate_that_the_adapter_rule_publishes():
    hpa = by_kind(render(QUEUE_TIME), "HorizontalPodAutoscaler")["ner-model-server"]["spec"]
    kinds = [metric["type"] for metric in hpa["metrics"]]
    assert kinds == ["Resource", "Pods"]
    metric = hpa["metrics"][1]["pods"]["metric"]["name"]
    values = yaml.safe_load((QUEUE_TIME / "prometheus-adapter-values.yaml").read_text(encoding="utf-8"))
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == metric
    query = " ".join(rule["metricsQuery"].split())
    assert re.search(
        r"rate\(ts_queue_latency_microseconds\{.*\}\[1m\]\).* / .*rate\(ts_inference_requests_total", query
    )
    base_hpa = by_kind(render(BASE), "HorizontalPodAutoscaler")["ner-model-server"]["spec"]
    assert [m["type"] for m in base_hpa["metrics"]] == ["Resource"]


def test_kube_play_keeps_only_what_podman_runs_with_local_images_and_given_ports(base):
    played = kube_play(base, {"inference": 18080, "http": 18000}, api_keys="test:" + "k" * 32)
    assert sorted((r["kind"], r["metadata"]["name"]) for r in played) == [
        ("ConfigMap", by_kind(base, "ConfigMap").popitem()[0]),
        ("Pod", "ner-gateway"),
        ("Pod", "ner-model-server"),
    ]
    pods = by_kind(played, "Pod")
    published = {
        (pod, port["name"]): (port.get("hostIP"), port.get("hostPort"))
        for pod, resource in pods.items()
        for container in resource["spec"]["containers"]
        for port in container["ports"]
    }
    assert published[("ner-model-server", "inference")] == ("127.0.0.1", 18080)
    assert published[("ner-gateway", "http")] == ("127.0.0.1", 18000)
    assert published[("ner-model-server", "management")] == (None, None)
    for pod in pods.values():
        assert {c["imagePullPolicy"] for c in pod["spec"]["containers"]} == {"Never"}
    (gateway,) = pods["ner-gateway"]["spec"]["containers"]
    env = env_of(gateway)
    assert env["NER_GATEWAY_INFERENCE_URL"] == "http://ner-model-server:8080"
    assert env["NER_GATEWAY_MANAGEMENT_URL"] == "http://ner-model-server:8081"
    assert env["NER_GATEWAY_API_KEYS"] == "test:" + "k" * 32 and "NER_GATEWAY_API_KEYS_FILE" not in env
    assert not [v for v in pods["ner-gateway"]["spec"]["volumes"] if "secret" in v]
    assert validate(played, manifests.supported_versions()[-1]) == []


def test_kube_play_refuses_an_unknown_port_name(base):
    with pytest.raises(ManifestError, match="grpc"):
        kube_play(base, {"grpc": 17070}, api_keys="test:" + "k" * 32)


def test_the_render_command_prints_yaml_that_reads_back(capsys):
    assert manifests.main(["render", str(BASE)]) == 0
    assert [doc for doc in yaml.safe_load_all(capsys.readouterr().out) if doc] == render(BASE)


def test_no_kustomization_file_holds_a_secret_value():
    for path in KUBERNETES.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert "kind: Secret" not in text, path
            assert not re.search(r"NER_GATEWAY_API_KEYS\s*\n\s*value:", text), path
