"""Upgrade under load with the project's CLI: register v2, canary, set-default, scale, unregister v1.

A steady stream of concurrent requests on the unversioned endpoint must see no failure, and every response must
come from the version that was the default while it was served (X-NER-Model-Version tells which answered).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from nerserve.protocol import document_lane
from nertools.local_torchserve import TorchServe
from nertools.torchserve import read_properties
from tests.support.instances import instance_env
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.support.tiny_models import build_hf_checkpoint
from tests.support.torchserve import build_archive

CLIENTS = 6
LANE = document_lane("ner_model")
TEXTS = ["Angela Merkel met Tim Cook in Berlin.", "john smith flew to paris", "Mary took aspirin in London"]


@pytest.fixture(scope="module")
def versioned_server(tmp_path_factory, java_available):
    workdir = tmp_path_factory.mktemp("versions")
    store = workdir / "model_store"
    build_archive(build_hf_checkpoint(workdir / "v1", seed=0), store, version="1.0", versioned=True)
    build_archive(build_hf_checkpoint(workdir / "v2", seed=1), store, version="2.0", versioned=True)
    version = {"marName": "ner_model_v1.0.mar", "minWorkers": 1, "maxWorkers": 1, "responseTimeout": 120}
    models = {  # the model and its document lane, as config.properties serves them
        "ner_model": {"1.0": {**version, "batchSize": 8, "maxBatchDelay": 20}},
        LANE: {"1.0": {**version, "batchSize": 2, "maxBatchDelay": 5}},
    }
    loaded = f"ner_model=ner_model_v1.0.mar,{LANE}=ner_model_v1.0.mar"
    server = TorchServe(workdir, store, loaded, extra_config=f"models={json.dumps(models)}").start()
    yield server
    server.stop()


def manage(server, *args, check=True):
    """scripts/manage.py as an operator runs it, against ``server``."""
    command = [
        sys.executable,
        str(ROOT / "scripts" / "manage.py"),
        "--management",
        server.management,
        "--inference",
        server.inference,
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


class Load:
    """Clients posting to /predictions/ner_model in a loop, recording (start, end, status, version)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.records: list[tuple[float, float, int, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(CLIENTS)]

    def run(self, index: int) -> None:
        session = requests.Session()
        n = index
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(self.url, json={"text": TEXTS[n % len(TEXTS)]}, timeout=120)
                status, version = response.status_code, response.headers.get("X-NER-Model-Version", "")
            except requests.RequestException as err:
                status, version = -1, type(err).__name__
            with self.lock:
                self.records.append((started, time.monotonic(), status, version))
            n += 1

    def answered(self) -> int:
        with self.lock:
            return len(self.records)

    def run_for(self, requests: int, timeout: float = 120) -> None:
        """Wait until ``requests`` more requests have been answered: the load runs across the step that follows."""
        target = self.answered() + requests
        wait_until(lambda: self.answered() >= target, timeout, f"{requests} more answered requests", interval=0.02)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=180)


def test_zero_downtime_upgrade(versioned_server):
    server = versioned_server
    with Load(f"{server.inference}/predictions/ner_model") as load:
        load.run_for(30)
        manage(
            server,
            "register",
            str(server.model_store / "ner_model_v2.0.mar"),
            "--version",
            "2.0",
            "--batch-size",
            "8",
            "--max-batch-delay",
            "20",
            "--workers",
            "1",
        )
        canary = manage(server, "canary", "ner_model", "2.0", *sum((["--text", t] for t in TEXTS), []), check=False)
        assert canary.returncode in (0, 1), canary.stderr  # 1: the two random models disagree, as they should
        assert "texts give the same entities" in canary.stdout
        load.run_for(CLIENTS * 2)
        switch_started = time.monotonic()
        manage(server, "set-default", "ner_model", "2.0")
        switch_done = time.monotonic()
        load.run_for(CLIENTS * 2)
        manage(server, "scale", "ner_model", "--min", "2", "--max", "2")
        refused = manage(server, "unregister", "ner_model", "2.0", check=False)
        assert refused.returncode == 2 and "default version" in refused.stderr
        manage(server, "unregister", "ner_model", "1.0")
        load.run_for(30)
    records = load.records
    failed = [r for r in records if r[2] != 200]
    assert len(records) > 50, f"only {len(records)} requests were sent"
    assert not failed, f"{len(failed)} of {len(records)} requests failed: {failed[:5]}"
    before = [r for r in records if r[1] < switch_started]
    after = [r for r in records if r[0] > switch_done]
    assert before and after
    assert {r[3] for r in before} == {"1.0"}
    assert {r[3] for r in after} == {"2.0"}
    listed = json.loads(manage(server, "--json", "list").stdout)
    # The lane followed every step but the scale, with its own batching.
    assert [(r["name"], r["version"], r["default"], r["ready_workers"], r["batch_size"]) for r in listed] == [
        ("ner_model", "2.0", True, 2, 8),
        (LANE, "2.0", True, 1, 2),
    ]
    lane_answer = requests.post(f"{server.inference}/predictions/{LANE}", json={"text": TEXTS[0]}, timeout=60)
    assert lane_answer.status_code == 200 and lane_answer.headers["X-NER-Model-Version"] == "2.0"
    ready = manage(server, "ready", "ner_model")
    assert "2 READY" in ready.stdout
    # The closing note of the upgrade issue quotes these numbers.
    print(
        f"\nzero-downtime switch: {len(records)} requests, {len(failed)} failed, "
        f"{len(before)} served by 1.0 before the switch, {len(after)} by 2.0 after it"
    )


def test_cli_errors_are_clear(versioned_server):
    server = versioned_server
    missing = manage(server, "describe", "no_such_model", check=False)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr
    bad_workers = manage(server, "register", "x.mar", "--workers", "0", check=False)
    assert bad_workers.returncode == 2 and "at least 1" in bad_workers.stderr
    zero_delay = manage(server, "register", "x.mar", "--max-batch-delay", "0", check=False)
    assert zero_delay.returncode == 2 and "100 ms" in zero_delay.stderr
    wrong_version = manage(
        server, "register", str(server.model_store / "ner_model_v2.0.mar"), "--version", "3.0", check=False
    )
    assert wrong_version.returncode == 2 and "holds version 2.0" in wrong_version.stderr
    unreachable = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "manage.py"), "--management", "http://127.0.0.1:9", "--json", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 2 and json.loads(unreachable.stderr)["error"].startswith("cannot reach")
    not_ready = manage(server, "ready", "no_such_model", check=False)
    assert not_ready.returncode == 1


def run_script(name, env, *args, timeout=600):
    """scripts/NAME as an operator runs it, with ``env`` (one instance's ports and state dirs)."""
    return subprocess.run(
        [str(ROOT / "scripts" / name), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def served_versions(management, model="ner_model"):
    return {
        entry["modelVersion"]: entry for entry in requests.get(f"{management}/models/{model}/all", timeout=30).json()
    }


def test_the_upgraded_version_survives_a_restart(tmp_path, classic_checkpoint, java_available):
    """The README's walk-through (2.0 registered, made default, 1.0 removed), then stop.sh && serve.sh: 2.0 again."""
    env, ports, _ = instance_env(tmp_path)
    env["NER_STATE_DIR"] = str(tmp_path / "state")  # manage.py finds the served state beside it, as serve.sh does
    state_file = tmp_path / "served_state.json"
    management, inference = f"http://127.0.0.1:{ports['management']}", f"http://127.0.0.1:{ports['inference']}"
    store = Path(env["NER_MODEL_STORE"])
    build_archive(build_hf_checkpoint(tmp_path / "v2", seed=1), store, version="2.0", versioned=True)

    def manage_here(*args):
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "manage.py"), "--management", management, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        assert "warning" not in result.stderr, result.stderr
        return result

    try:
        first = run_script("serve.sh", env, "--model", str(classic_checkpoint))
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "served state: none recorded yet" in first.stdout and state_file.is_file()
        # The login hint says where the key is; the key itself is never printed.
        key = (tmp_path / "gateway" / "api_key").read_text().strip()
        assert f"/  (paste the key from {tmp_path / 'gateway' / 'api_key'})" in first.stdout
        assert key and key not in first.stdout + first.stderr

        manage_here(
            "register",
            str(store / "ner_model_v2.0.mar"),
            "--version",
            "2.0",
            "--workers",
            "1",
            "--batch-size",
            "4",
            "--max-batch-delay",
            "5",
        )
        manage_here("set-default", "ner_model", "2.0")
        manage_here("unregister", "ner_model", "1.0", "--drain-seconds", "0")
        for model in ("ner_model", LANE):
            recorded = json.loads(state_file.read_text())["models"][model]
            assert recorded["default"] == "2.0" and list(recorded["versions"]) == ["2.0"], model

        stopped = run_script("stop.sh", env, timeout=120)
        assert "TorchServe stopped" in stopped.stdout
        second = run_script("serve.sh", env, "--model", str(classic_checkpoint))
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert "served state restored" in second.stdout
        assert "register ner_model 2.0" in second.stdout and "unregister ner_model 1.0" in second.stdout
        response = requests.post(f"{inference}/predictions/ner_model", json={"text": TEXTS[0]}, timeout=60)
        assert response.status_code == 200 and response.headers["X-NER-Model-Version"] == "2.0"
        versions = served_versions(management)
        assert list(versions) == ["2.0"]
        assert (versions["2.0"]["batchSize"], versions["2.0"]["maxBatchDelay"]) == (4, 5)
        lane = served_versions(management, LANE)
        lane_config = json.loads(read_properties(ROOT / "config.properties")["models"])[LANE]["1.0"]
        assert list(lane) == ["2.0"]  # the lane followed, keeping the batching config.properties gives it
        assert (lane["2.0"]["batchSize"], lane["2.0"]["maxBatchDelay"]) == (
            lane_config["batchSize"],
            lane_config["maxBatchDelay"],
        )
        gone = requests.post(f"{inference}/predictions/ner_model/1.0", json={"text": TEXTS[0]}, timeout=60)
        assert gone.status_code == 404

        # A recorded archive that is gone: a clear refusal before anything starts, and --fresh as the way out.
        run_script("stop.sh", env, timeout=120)
        (store / "ner_model_v2.0.mar").unlink()
        refused = run_script("serve.sh", env, "--model", str(classic_checkpoint))
        assert refused.returncode != 0 and "starting TorchServe" not in refused.stdout
        assert "ner_model 2.0: ner_model_v2.0.mar is not in" in refused.stderr and "--fresh" in refused.stderr
        fresh = run_script("serve.sh", env, "--model", str(classic_checkpoint), "--fresh")
        assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
        assert "--fresh: forgot the served state" in fresh.stdout
        assert list(served_versions(management)) == ["1.0"]
        assert json.loads(state_file.read_text())["models"]["ner_model"]["default"] == "1.0"
    finally:
        run_script("stop.sh", env, timeout=120)
