"""A real Prometheus scrapes the test TorchServe; the PromQL of docs/METRICS.md parses and finds data there."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pytest
import requests
import yaml

from nertools.ports import free_port
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.support.prometheus_text import scrape, value

METRICS_DOC = ROOT / "docs" / "METRICS.md"
SCRAPE_CONFIG = ROOT / "docs" / "prometheus.yml"
INSTALL_HINT = "is not installed; run scripts/setup_test_deps.sh (Debian package prometheus)"


def doc_queries() -> list[str]:
    """The ```promql blocks of docs/METRICS.md, one query per block, so the doc and this test cannot drift."""
    blocks = re.findall(r"^```promql\n(.*?)^```", METRICS_DOC.read_text(), flags=re.M | re.S)
    return [block.strip() for block in blocks]


def require(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"`{command}` {INSTALL_HINT}")
    return path


class Prometheus:
    """One Prometheus (our child) scraping ``target`` with docs/prometheus.yml, intervals shortened to 1s."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.config = workdir / "prometheus.yml"
        self.log = workdir / "prometheus.log"
        config = yaml.safe_load(SCRAPE_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        [job] = [job for job in config["scrape_configs"] if job["job_name"] == "torchserve"]
        job["static_configs"][0]["targets"] = [target]
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Prometheus:
        command = [
            self.binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address={urlparse(self.url).netloc}",
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
        wait_explained(self.ready, "Prometheus /-/ready", self.log_tail, timeout)
        return self

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"Prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Evaluate an instant query: (labels, value) per series. A query Prometheus rejects fails the test."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{promql!r}: {body.get('errorType')}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(series["metric"], float(series["value"][1])) for series in data["result"]]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.is_file() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


T = TypeVar("T")


def wait_explained(condition: Callable[[], T], what: str, details: Callable[[], str], timeout: float = 60) -> T:
    """wait_until, with ``details()`` (Prometheus's log, what it holds) added to the failure."""
    try:
        return wait_until(condition, timeout, what, interval=0.25)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{details()}") from None


@pytest.fixture
def start_prometheus(tmp_path):
    """Starts Prometheus inside the test, so a missing binary FAILS the test instead of erroring its setup."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        prometheus = Prometheus(require("prometheus"), tmp_path, target)
        started.append(prometheus)
        return prometheus.start()

    yield start
    for prometheus in started:
        prometheus.stop()


# Counts Prometheus must agree on with TorchServe's own /metrics before the test reads anything else from it.
COUNTS = {
    'sum(ts_inference_requests_total{model_name="ner_model"})': lambda samples: value(
        samples, "ts_inference_requests_total", model_name="ner_model"
    ),
    'sum(NerRequests{Outcome="client_error"})': lambda samples: value(samples, "NerRequests", Outcome="client_error"),
}


def send_round(server) -> dict[str, float]:
    """Three good predictions and one bad; returns COUNTS as TorchServe's /metrics shows them once all four count."""
    before = scrape(server.metrics)
    url = f"{server.inference}/predictions/ner_model"
    for text in ["Angela Merkel met Tim Cook in Berlin.", "john smith flew to paris", "x " * 100]:
        assert requests.post(url, json={"text": text}, timeout=60).status_code == 200
    assert requests.post(url, json={"text": 1}, timeout=60).status_code == 400
    wanted = dict(zip(COUNTS, (4, 1), strict=True))

    def counted():
        # The frontend learns the handler's metrics from the worker's log, a moment after the response.
        after = scrape(server.metrics)
        moved = all(read(after) - read(before) >= wanted[promql] for promql, read in COUNTS.items())
        return {promql: read(after) for promql, read in COUNTS.items()} if moved else None

    return wait_until(counted, 60, "round of 4 requests on TorchServe's /metrics", interval=0.25)


def caught_up(prometheus: Prometheus, counts: dict[str, float]) -> None:
    """Wait until Prometheus has scraped ``counts``: every sample of that round is then stored."""

    def latest():
        return {promql: sum(v for _, v in prometheus.query(promql)) for promql in counts}

    wait_explained(
        lambda: all(got >= counts[promql] for promql, got in latest().items()),
        f"scrape of {counts}",
        lambda: f"Prometheus has {latest()}\n{prometheus.log_tail()}",
    )


def positive(prometheus: Prometheus, promql: str) -> list[tuple[dict[str, str], float]]:
    """The series of ``promql`` if there are some and all are > 0, else an empty list (keep polling)."""
    result = prometheus.query(promql)
    return result if result and all(v > 0 for _, v in result) else []


def test_prometheus_scrapes_torchserve_and_the_documented_queries_work(tiny_server, start_prometheus):
    prometheus = start_prometheus(urlparse(tiny_server.metrics).netloc)
    wait_explained(
        lambda: positive(prometheus, 'up{job="torchserve"}'), "successful scrape of TorchServe", prometheus.log_tail
    )

    # Round one makes every series exist (a counter appears with its first increment, and rate() does not count
    # that appearance); round two then moves every rate() of the documented queries.
    caught_up(prometheus, send_round(tiny_server))
    requests_total = positive(prometheus, 'ts_inference_requests_total{model_name="ner_model"}')
    client_errors = positive(prometheus, 'NerRequests{Outcome="client_error"}')
    assert requests_total and {labels["job"] for labels, _ in requests_total} == {"torchserve"}
    assert client_errors and {labels["ModelName"] for labels, _ in client_errors} == {"ner_model"}

    caught_up(prometheus, send_round(tiny_server))
    waiting: list[str] = []

    def of_this_model(series):
        # Only ner_model had traffic: another model on the shared server (a document lane an earlier test
        # registered) answers 0/0 = NaN while idle, as an idle model does in production.
        return [
            (labels, v)
            for labels, v in series
            if labels.get("model_name", labels.get("ModelName")) in (None, "ner_model")
        ]

    def all_answer():
        # A histogram's samples can trail its counter by one scrape: NaN (0/0) until then, so wait for finite.
        results = {promql: of_this_model(prometheus.query(promql)) for promql in doc_queries()}
        waiting[:] = [
            promql for promql, series in results.items() if not series or not all(math.isfinite(v) for _, v in series)
        ]
        return None if waiting else results

    results = wait_explained(
        all_answer, "data for every query of docs/METRICS.md", lambda: f"queries still empty or NaN: {waiting}"
    )
    for promql, series in results.items():
        assert all(v >= 0 for _, v in series), (promql, series)
    ratio = next(series for promql, series in results.items() if 'Outcome="client_error"' in promql)
    assert all(v > 0 for _, v in ratio), "round two's bad request is in the client error ratio"


def test_metrics_doc_has_the_queries_the_live_test_runs():
    queries = doc_queries()
    assert len(queries) >= 6
    for metric in (
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "NerInferenceSeconds_bucket",
        "NerRequests{",
        "NerEntitiesPerRequest_sum",
        "NerRequestsPerBatch_count",
    ):
        assert any(metric in promql for promql in queries), metric
    assert all("\n\n" not in promql for promql in queries), "one query per ```promql block"


def test_scrape_config_in_docs_is_valid():
    checked = subprocess.run(
        [require("promtool"), "check", "config", str(SCRAPE_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "torchserve" and job["static_configs"][0]["targets"] == ["127.0.0.1:8082"]
    assert config["global"]["scrape_interval"] == "15s"
