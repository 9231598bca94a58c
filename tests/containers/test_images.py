"""The two images, built from nothing by scripts/build_images.sh into a podman store of the session's own, run the
way docs/DEPLOY.md says: on a user network, gateway pointed at the model server by name, read-only root file systems
with a tmpfs /tmp, non-root, healthy only once the model has a READY worker, stopped by SIGTERM in seconds."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from websockets.asyncio.client import connect

from nertools.ports import free_port, free_ports
from tests.support.podman import BuiltImages, Podman
from tests.support.polling import wait_until

pytestmark = pytest.mark.container

MERKEL = "Angela Merkel met Tim Cook in Berlin."
EXPECTED = [("PER", "Angela Merkel"), ("PER", "Tim Cook"), ("LOC", "Berlin")]
KEY_ID, SECRET = "tester", "container-secret-0123456789"
# What `docker run --read-only` needs as well: podman would add a tmpfs /tmp by itself, docker does not.
READ_ONLY = ("--read-only", "--tmpfs", "/tmp:rw,mode=1777")
READY_TIMEOUT_S = 300
STOP_LIMIT_S = 10


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def entities(body: dict) -> list[tuple[str, str]]:
    return [(entity["label"], entity["text"]) for entity in body["entities"]]


@dataclass(frozen=True)
class Pair:
    podman: Podman
    server: str
    gateway: str
    inference: str
    management: str
    gateway_url: str
    start_to_healthy_s: float


def wait_healthy(podman: Podman, container: str, timeout: float) -> None:
    def healthy() -> bool:
        state = podman.output("inspect", "--format", "{{.State.Status}}", container)
        if state != "running":
            raise AssertionError(f"{container} is {state}:\n{podman.logs(container)}")
        return podman.healthy(container)

    try:
        wait_until(healthy, timeout, f"{container} healthy", interval=1.0)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{podman.logs(container)}") from None


def stop_seconds(podman: Podman, container: str) -> float:
    """``podman stop`` (SIGTERM, SIGKILL after STOP_LIMIT_S): how long it took, asserting no SIGKILL was needed."""
    started = time.monotonic()
    podman.run("stop", "-t", str(STOP_LIMIT_S), container, timeout=60)
    elapsed = time.monotonic() - started
    code = podman.output("inspect", "--format", "{{.State.ExitCode}}", container)
    assert code != "137", f"{container} was killed (SIGKILL) after {elapsed:.1f} s, not stopped by SIGTERM"
    return elapsed


@pytest.fixture(scope="module")
def pair(images: BuiltImages) -> Iterator[Pair]:
    podman = images.podman
    network = unique("ner-net")
    server, gateway = unique("ner-model-server"), unique("ner-gateway")
    ports = free_ports("inference", "management", "gateway")
    podman.run("network", "create", network)
    try:
        started = time.monotonic()
        with podman.container(
            server,
            "--network",
            network,
            *READ_ONLY,
            "-p",
            f"127.0.0.1:{ports['inference']}:8080",
            "-p",
            f"127.0.0.1:{ports['management']}:8081",
            images.server,
        ):
            wait_healthy(podman, server, READY_TIMEOUT_S)
            start_to_healthy = time.monotonic() - started
            with podman.container(
                gateway,
                "--network",
                network,
                *READ_ONLY,
                "-p",
                f"127.0.0.1:{ports['gateway']}:8000",
                "-e",
                f"NER_GATEWAY_INFERENCE_URL=http://{server}:8080",
                "-e",
                f"NER_GATEWAY_MANAGEMENT_URL=http://{server}:8081",
                "-e",
                f"NER_GATEWAY_API_KEYS={KEY_ID}:{SECRET}",
                images.gateway,
            ):
                wait_healthy(podman, gateway, 120)
                yield Pair(
                    podman=podman,
                    server=server,
                    gateway=gateway,
                    inference=f"http://127.0.0.1:{ports['inference']}",
                    management=f"http://127.0.0.1:{ports['management']}",
                    gateway_url=f"http://127.0.0.1:{ports['gateway']}",
                    start_to_healthy_s=start_to_healthy,
                )
    finally:
        podman.run("network", "rm", "-f", network, check=False)


def test_both_images_are_tagged_with_the_version_and_latest_and_keep_their_healthcheck(images):
    for image in (images.server, images.gateway):
        name, _, version = image.rpartition(":")
        assert version and images.podman.run("image", "exists", f"{name}:latest").returncode == 0
        info = json.loads(images.podman.output("image", "inspect", image))[0]
        assert info["Config"]["User"] == "1000:1000"
        assert info["Healthcheck"]["Test"][0] == "CMD", "docker format keeps the HEALTHCHECK"
        assert info["Config"]["Entrypoint"][0].startswith("/"), "exec-form entry point"
    exposed = json.loads(images.podman.output("image", "inspect", images.server))[0]["Config"]["ExposedPorts"]
    assert set(exposed) == {"8080/tcp", "8081/tcp", "8082/tcp"}


def test_the_server_image_has_no_cuda_and_no_development_tools(images):
    listing = images.podman.output("run", "--rm", "--entrypoint", "/opt/venv/bin/pip", images.server, "list")
    names = {line.split()[0].lower() for line in listing.splitlines()[2:]}
    assert {"torch", "torchserve", "bert-ner-serve"} <= names
    assert not any(name.startswith("nvidia") for name in names)
    assert not names & {"pytest", "ruff", "mypy", "playwright", "matplotlib"}
    assert "+cpu" in images.podman.output(
        "run",
        "--rm",
        "--entrypoint",
        "/opt/venv/bin/python",
        images.server,
        "-c",
        "import torch; print(torch.__version__)",
    )


def test_the_pair_serves_the_merkel_sentence_through_torchserve_and_the_gateway_websocket(pair):
    response = requests.post(f"{pair.inference}/predictions/ner_model", json={"text": MERKEL}, timeout=60)
    assert response.status_code == 200, response.text
    assert entities(response.json()) == EXPECTED

    async def over_websocket() -> dict:
        url = pair.gateway_url.replace("http://", "ws://") + "/ws/entities"
        async with connect(url, proxy=None, subprotocols=["ner.v1", f"bearer.{KEY_ID}.{SECRET}"]) as ws:
            await ws.send(json.dumps({"id": "m", "text": MERKEL}))
            return json.loads(await ws.recv())

    reply = asyncio.run(over_websocket())
    assert reply["id"] == "m" and entities(reply) == EXPECTED
    ready = requests.get(f"{pair.gateway_url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready_workers"] >= 1


def test_containers_run_as_uid_1000_on_a_read_only_root(pair):
    for container in (pair.server, pair.gateway):
        assert pair.podman.output("exec", container, "id", "-u") == "1000"
        assert pair.podman.output("exec", container, "whoami") == "ner"
        # As root, so that file permissions are not what refuses the write.
        denied = pair.podman.run("exec", "--user", "0", container, "touch", "/opt/ner/x", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        pair.podman.run("exec", container, "touch", "/tmp/writable")


def test_health_means_a_ready_model_worker_not_a_live_frontend(images, tmp_path):
    """A server whose configuration (TS_CONFIG_FILE, mounted) loads no model: /ping says Healthy, HEALTHCHECK not."""
    podman = images.podman
    image_config = podman.output("run", "--rm", "--entrypoint", "cat", images.server, "/opt/ner/config.properties")
    no_model = [line for line in image_config.splitlines() if not line.startswith(("load_models=", "models="))]
    (tmp_path / "empty.properties").write_text("\n".join(no_model) + "\n", encoding="utf-8")
    (tmp_path / "store").mkdir()
    # Readable by the container's UID 1000 (pytest's temp directories are private to their owner).
    for path in (tmp_path, tmp_path / "store", tmp_path / "empty.properties"):
        path.chmod(0o755)
    port = free_port()
    with podman.container(
        unique("ner-no-model"),
        *READ_ONLY,
        "-v",
        f"{tmp_path}:/config:ro,Z",
        "-v",
        f"{tmp_path / 'store'}:/models:ro,Z",
        "-e",
        "TS_CONFIG_FILE=/config/empty.properties",
        "-p",
        f"127.0.0.1:{port}:8080",
        images.server,
    ) as container:

        def ping() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ping, READY_TIMEOUT_S, "TorchServe's /ping", interval=0.5)
        assert not podman.healthy(container)
        listed = requests.get(f"http://127.0.0.1:{port}/predictions/ner_model", timeout=5)
        assert listed.status_code == 404  # the baked-in archive was replaced by the mounted (empty) store


def test_the_healthy_server_has_a_ready_worker(pair):
    description = requests.get(f"{pair.management}/models/ner_model", timeout=10).json()
    assert any(worker["status"] == "READY" for worker in description[0]["workers"])
    assert pair.podman.healthy(pair.server)


def test_sigterm_stops_both_containers_in_under_ten_seconds(pair):
    # The gateway first: stopping the server first would leave the gateway unready, not affect its stop.
    for container in (pair.gateway, pair.server):
        assert stop_seconds(pair.podman, container) < STOP_LIMIT_S
