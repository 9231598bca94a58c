"""The storageUri layout for KServe's TorchServe runtime: files, the keys KServe needs, batching from the config."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from nertools.kserve import LayoutError, build_layout, main
from nertools.torchserve import read_properties
from tests.support.paths import ROOT

PROJECT_MODELS = json.loads(read_properties(ROOT / "config.properties")["models"])["ner_model"]


def fake_mar(path, name="ner_model", version="1.0"):
    """A zip with the manifest torch-model-archiver writes; the layout reads nothing else from the archive."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": {"modelName": name, "modelVersion": version}}))
    return path


def kserve_wrapper_view(config_text):
    """config.properties as KServe's TorchServe wrapper reads it: line by line, split at the first '='."""
    keys = {}
    for line in config_text.splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            keys[name.strip()] = value.strip()
    keys["model_snapshot"] = json.loads(keys["model_snapshot"])
    return keys


def test_the_layout_holds_config_metrics_and_the_archive(tmp_path):
    mar = fake_mar(tmp_path / "built.mar")
    written = build_layout(mar, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "config/config.properties",
        "config/metrics.yaml",
        "model-store/ner_model.mar",
    ]
    assert (tmp_path / "out" / "model-store" / "ner_model.mar").read_bytes() == mar.read_bytes()
    assert (tmp_path / "out" / "config" / "metrics.yaml").read_text() == (ROOT / "handler" / "metrics.yaml").read_text()


def test_the_config_has_the_ports_and_switches_kserve_needs(tmp_path):
    build_layout(fake_mar(tmp_path / "m.mar"), tmp_path / "out")
    properties = read_properties(tmp_path / "out" / "config" / "config.properties")
    assert properties["inference_address"] == "http://0.0.0.0:8085"
    assert properties["management_address"] == "http://0.0.0.0:8085"
    assert properties["metrics_address"] == "http://0.0.0.0:8082"
    assert properties["model_store"] == "/mnt/models/model-store"
    assert properties["metrics_config"] == "/mnt/models/config/metrics.yaml"
    assert properties["metrics_mode"] == "prometheus"
    assert properties["disable_token_authorization"] == "true"
    assert properties["enable_model_api"] == "true"
    assert properties["install_py_dep_per_model"] == "false"
    # KServe's runtime sets TS_SERVICE_ENVELOPE; read from the environment it would turn on the envelope that
    # serves only the first request of each batch.
    assert properties["enable_envvars_config"] == "false"
    assert "service_envelope" not in properties and "load_models" not in properties
    project = read_properties(ROOT / "config.properties")
    for key in ("max_request_size", "max_response_size", "vmargs"):
        assert properties[key] == project[key]


def test_the_snapshot_serves_the_model_with_the_projects_batching(tmp_path):
    build_layout(fake_mar(tmp_path / "m.mar"), tmp_path / "out")
    text = (tmp_path / "out" / "config" / "config.properties").read_text()
    snapshot = kserve_wrapper_view(text)["model_snapshot"]
    assert snapshot["name"] == "startup.cfg" and snapshot["modelCount"] == 1
    entry = snapshot["models"]["ner_model"]["1.0"]
    assert entry["defaultVersion"] is True and entry["marName"] == "ner_model.mar"
    for key in ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout"):
        assert entry[key] == PROJECT_MODELS["1.0"][key]
    assert kserve_wrapper_view(text)["inference_address"] == "http://0.0.0.0:8085"


def test_the_archives_name_and_version_key_the_snapshot(tmp_path):
    build_layout(fake_mar(tmp_path / "m.mar", name="ner_model", version="2.0"), tmp_path / "out")
    snapshot = json.loads(read_properties(tmp_path / "out" / "config" / "config.properties")["model_snapshot"])
    assert list(snapshot["models"]["ner_model"]) == ["2.0"]
    assert snapshot["models"]["ner_model"]["2.0"]["batchSize"] == PROJECT_MODELS["1.0"]["batchSize"]


def test_the_mount_path_sets_the_paths_in_the_config(tmp_path):
    build_layout(fake_mar(tmp_path / "m.mar"), tmp_path / "out", mount_path="/models/ner/")
    properties = read_properties(tmp_path / "out" / "config" / "config.properties")
    assert properties["model_store"] == "/models/ner/model-store"
    assert properties["metrics_config"] == "/models/ner/config/metrics.yaml"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_mar", "no such archive"),
        ("not_a_zip", "is not a model archive"),
        ("output_not_empty", "exists and is not an empty directory"),
        ("relative_mount", "--mount-path must be absolute"),
        ("no_models_entry", "no models={'ner_model': ...} entry"),
    ],
)
def test_bad_inputs_are_named(tmp_path, setup, message):
    mar, output, config, mount = fake_mar(tmp_path / "m.mar"), tmp_path / "out", ROOT / "config.properties", "/mnt/m"
    if setup == "no_mar":
        mar = tmp_path / "missing.mar"
    elif setup == "not_a_zip":
        mar.write_text("not a zip")
    elif setup == "output_not_empty":
        output.mkdir()
        (output / "x").write_text("")
    elif setup == "relative_mount":
        mount = "mnt/models"
    else:
        config = tmp_path / "config.properties"
        config.write_text("inference_address=http://127.0.0.1:8080\n")
    with pytest.raises(LayoutError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_layout(mar, output, config, mount_path=mount)


def test_the_command_prints_what_it_wrote_and_fails_cleanly(tmp_path, capsys):
    mar = fake_mar(tmp_path / "m.mar")
    assert main(["--mar", str(mar), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out" / "config" / "config.properties") in out and "storageUri" in out
    assert main(["--mar", str(mar), "--output", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_entry_point_answers_help_and_only_calls_nertools():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kserve_layout.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: kserve_layout.py")
    source = (ROOT / "scripts" / "kserve_layout.py").read_text()
    assert "from nertools.kserve import main" in source and "raise SystemExit(main())" in source


def deploy_documents():
    import yaml

    return {path.name: yaml.safe_load(path.read_text()) for path in sorted((ROOT / "deploy" / "kserve").glob("*.yaml"))}


def test_the_kserve_examples_agree_with_the_layout():
    from nertools.kserve import INFERENCE_PORT, METRICS_PORT, MOUNT_PATH

    docs = deploy_documents()
    runtime = docs["serving-runtime.yaml"]
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == str(METRICS_PORT)
    (container,) = runtime["spec"]["containers"]
    assert [port["containerPort"] for port in container["ports"]] == [INFERENCE_PORT]
    assert {"name": "TS_CONFIG_FILE", "value": f"{MOUNT_PATH}/config/config.properties"} in container["env"]
    assert container["securityContext"]["runAsUser"] == 1000 and container["securityContext"]["runAsNonRoot"]
    assert set(runtime["spec"]["protocolVersions"]) == {"v1", "v2"}
    services = {name: doc for name, doc in docs.items() if doc["kind"] == "InferenceService"}
    assert set(services) == {"inferenceservice-v1.yaml", "inferenceservice-v2.yaml", "inferenceservice-canary.yaml"}
    protocols = set()
    for doc in services.values():
        predictor = doc["spec"]["predictor"]
        assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
        assert predictor["model"]["storageUri"].startswith("s3://")
        assert predictor["scaleMetric"] in {"cpu", "concurrency"} and predictor["scaleTarget"] > 0
        assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
        protocols.add(predictor["model"]["protocolVersion"])
    assert protocols == {"v1", "v2"}
    canary = services["inferenceservice-canary.yaml"]["spec"]["predictor"]
    assert 0 < canary["canaryTrafficPercent"] < 100
    assert (
        canary["model"]["storageUri"]
        != services["inferenceservice-v1.yaml"]["spec"]["predictor"]["model"]["storageUri"]
    )


def test_the_kserve_examples_request_the_cores_the_workers_use():
    import yaml

    threads = yaml.safe_load((ROOT / "handler" / "model_config.yaml").read_text())["handler"]["torch_threads"]
    cores = PROJECT_MODELS["1.0"]["maxWorkers"] * threads
    for name, doc in deploy_documents().items():
        if doc["kind"] == "InferenceService":
            resources = doc["spec"]["predictor"]["model"]["resources"]
            assert float(resources["requests"]["cpu"]) == float(resources["limits"]["cpu"]) == cores, name
