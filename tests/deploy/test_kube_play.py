"""`podman kube play` of deploy/kubernetes/base (the kinds podman runs, nertools.manifests.kube_play): the model
server becomes READY by its own startup probe's command, serves POST /predictions/ner_model, the gateway pod
reaches it by name and serves its WebSocket, and `podman kube down` removes both pods."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect

from nertools.manifests import kube_play, render, to_yaml
from nertools.ports import free_ports
from tests.support.paths import ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.container

MERKEL = "Angela Merkel met Tim Cook in Berlin."
# The model server's READY takes 10-20 s on 2 CPUs; the margin is for a loaded CI machine.
READY_TIMEOUT_S = 240


def http_status(url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


async def ask_over_websocket(url: str, token: str) -> dict:
    async with connect(url, proxy=None, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"id": "merkel", "text": MERKEL}))
        return json.loads(await asyncio.wait_for(ws.recv(), timeout=60))


def test_kube_play_serves_predictions_and_the_gateway_websocket_then_kube_down_removes_it(images, tmp_path):
    podman = images.podman
    ports = free_ports("inference", "http")
    key_id, secret = "kubeplay", secrets.token_urlsafe(32)
    played = kube_play(render(ROOT / "deploy" / "kubernetes" / "base"), ports, api_keys=f"{key_id}:{secret}")
    play_file = tmp_path / "play.yaml"
    play_file.write_text(to_yaml(played), encoding="utf-8")
    # A network of our own: it resolves pod names, which is how the gateway finds the model server here.
    network = f"ner-kube-play-{secrets.token_hex(4)}"
    podman.run("network", "create", network)
    server_container = "ner-model-server-model-server"  # podman names a pod's containers <pod>-<container>
    try:
        podman.run("kube", "play", "--network", network, str(play_file), timeout=120)
        server = next(r for r in played if r["metadata"]["name"] == "ner-model-server")
        probe = server["spec"]["containers"][0]["startupProbe"]["exec"]["command"]

        def ready() -> bool:
            return podman.run("exec", server_container, *probe, check=False, timeout=30).returncode == 0

        try:
            wait_until(ready, READY_TIMEOUT_S, "the model server's startup probe", interval=1.0)
        except AssertionError:
            raise AssertionError(podman.logs(server_container)) from None

        prediction = urllib.request.Request(
            f"http://127.0.0.1:{ports['inference']}/predictions/ner_model",
            data=json.dumps({"text": MERKEL}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(prediction, timeout=60) as response:
            entities = json.load(response)["entities"]
        assert ("PER", "Angela Merkel") in {(e["label"], e["text"]) for e in entities}

        gateway = f"127.0.0.1:{ports['http']}"
        wait_until(lambda: http_status(f"http://{gateway}/ready") == 200, 120, "the gateway's /ready", interval=0.5)
        reply = asyncio.run(ask_over_websocket(f"ws://{gateway}/ws/entities", f"{key_id}.{secret}"))
        assert reply["id"] == "merkel"
        assert ("PER", "Angela Merkel") in {(e["label"], e["text"]) for e in reply["entities"]}
        assert http_status(f"http://{gateway}/v1/labels") == 401  # the keys are in force: no key, no answer
    finally:
        down = podman.run("kube", "down", str(play_file), check=False, timeout=180)
        remaining = podman.output("pod", "ps", "-q")
        podman.run("network", "rm", "-f", network, check=False)
    assert down.returncode == 0, down.stderr
    assert remaining == ""
