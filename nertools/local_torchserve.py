"""A TorchServe of the tools' and the tests' own: free ports, its own TMPDIR and working directory, readiness
polling, clean stop (``nertools.latency_floor`` measures on one; the integration tests serve their models on one)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from nertools.paths import ROOT
from nertools.ports import free_ports
from nertools.ready import wait_ready

VENV_BIN = Path(sys.executable).parent


class TorchServe:
    """One TorchServe (foreground, our child) serving the archives in ``model_store``, on free loopback ports."""

    def __init__(self, workdir: Path, model_store: Path, models: str, extra_config: str = "") -> None:
        self.workdir = workdir
        self.model_store = model_store
        self.ports = free_ports("inference", "management", "metrics", "grpc_inference", "grpc_management")
        self.inference = f"http://127.0.0.1:{self.ports['inference']}"
        self.management = f"http://127.0.0.1:{self.ports['management']}"
        self.metrics = f"http://127.0.0.1:{self.ports['metrics']}"
        self.tmpdir = workdir / "tmp"
        self.config = workdir / "config.properties"
        self.models = models
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "torchserve.out"

    def env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            TMPDIR=str(self.tmpdir),
            LOG_LOCATION=str(self.workdir / "logs"),
            METRICS_LOCATION=str(self.workdir / "logs"),
        )
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self, timeout: float = 180) -> TorchServe:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    f"inference_address={self.inference}",
                    f"management_address={self.management}",
                    f"metrics_address={self.metrics}",
                    # Every instance needs its own gRPC ports and worker sockets (java.io.tmpdir/.ts.sock.<port>),
                    # or a second instance, e.g. a running serve.sh, collides with this one.
                    "grpc_inference_address=127.0.0.1",
                    "grpc_management_address=127.0.0.1",
                    f"grpc_inference_port={self.ports['grpc_inference']}",
                    f"grpc_management_port={self.ports['grpc_management']}",
                    f"model_store={self.model_store}",
                    f"load_models={self.models}",
                    "disable_token_authorization=true",
                    "enable_model_api=true",
                    "metrics_mode=prometheus",
                    f"metrics_config={ROOT / 'handler' / 'metrics.yaml'}",
                    "install_py_dep_per_model=false",
                    "default_workers_per_model=1",
                    f"vmargs=-Xmx256m -XX:-UsePerfData -Djava.io.tmpdir={self.tmpdir}",
                    self.extra_config,
                ]
            )
            + "\n"
        )
        command = [
            str(VENV_BIN / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--model-store",
            str(self.model_store),
            "--ts-config",
            str(self.config),
            "--log-config",
            str(ROOT / "log4j2.xml"),
        ]
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.process = process
        name = self.models.split("=")[0]
        try:
            ready = wait_ready(self.management, name, timeout, alive=lambda: process.poll() is None)
        except BaseException:  # Ctrl-C while waiting: it runs in a session of its own, so it would stay
            self.stop()
            raise
        if not ready:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"TorchServe did not get a READY worker for {name} in {timeout}s:\n{tail}")
        return self

    def log_tail(self, lines: int = 60) -> str:
        texts = []
        for path in [self.log, self.workdir / "logs" / "model_log.log"]:
            if path.is_file():
                texts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def worker_pids(self) -> list[int]:
        """PIDs of the Python model workers (children of the Java frontend)."""
        import psutil

        if self.process is None:
            return []
        pids = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if "model_service_worker" in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # a killed worker stays a zombie until Java reaps it
                continue
        return pids

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            subprocess.run(
                [str(VENV_BIN / "torchserve"), "--stop", "--foreground"],
                cwd=self.workdir,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)
