"""Run a real ComfyUI headless and drive it over HTTP and WebSocket, the way its frontend does.

Why: the main job (``scripts/main_job.py``) runs a workflow exactly as a user's Queue button would,
in the host's own server, with this checkout loaded by the host's own custom-node loader. The test
harness (``tests/server/harness.py``) re-exports this module and adds the test-only tiny pack;
nothing here knows about tests.

API
- ``ComfyServer.for_checkout(workdir, model_paths=None, output_dir=None, cpu=True, extra_args=(),
  extra_packs=None)``: a server whose custom nodes are this checkout (as ``ComfyUI-SelfCascade``)
  plus ``extra_packs`` (folder name -> path). ``ComfyServer(custom_nodes_dir, workdir, ...)`` serves
  any custom-nodes folder. Use it as a context manager (or ``start()`` / ``stop()``); ``start()``
  returns once the HTTP API answers. Attributes: ``url``, ``output_dir`` (``workdir/output`` unless
  given), ``log_path``, ``pid``; ``log_text(since=0)``, ``log_size()`` and ``log_tail()`` read the
  captured server log (stdout and stderr). Model folders are added with ``model_paths={"checkpoints":
  "/abs/dir"}``: the host reads them in place, nothing is copied.
- ``Graph``: builds API-format prompts: ``g = Graph(); m = g.node("CheckpointLoaderSimple",
  ckpt_name=...); g.node("KSampler", model=m, ...)``. A ``Node`` as an input links its output 0;
  ``m.out(i)`` links output ``i``. ``g.prompt`` is the dict that ``/prompt`` takes.
- ``ComfyClient(url, timeout_s=600)``: one WebSocket per client; ``close()`` it, or use ``with``.
  ``run(prompt) -> RunResult`` queues, follows ``/ws`` until ``executing`` with ``node: null``
  (at most ``timeout_s``), reads ``/history``; raises ``ExecutionFailed`` (node id, type, message,
  traceback) or ``PromptRejected`` (HTTP 400 with ``node_errors``). ``expect_validation_error(prompt)
  -> PromptRejected`` and ``expect_execution_error(prompt) -> ExecutionError`` raise ``RunFailed``
  when the prompt does not fail that way. ``events(prompt_id)`` yields the prompt's ``/ws`` events
  ``(type, data)`` until it is done. Also ``queue``, ``wait``, ``history``, ``object_info``, ``view``.
- ``RunResult``: ``prompt_id``, ``outputs`` (node id -> UI dict from ``/history``) and readers of
  what output nodes wrote: ``files(node_id, kind)``, ``latent(node_id)`` (SaveLatent's tensor),
  ``images(node_id)`` (SaveImage and PreviewImage as PIL images), ``text(node_id)`` (UI text).
- Every error is a ``ComfyError`` whose message says what the host said; ``ServerError`` ends with
  the server log's tail.

Needs ``requests`` and ``websocket-client`` (``requirements-dev.txt``) in the host's Python.
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import requests
import safetensors.torch
import torch
import websocket
from PIL import Image

from _bootstrap import find_comfyui

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "ComfyUI-SelfCascade"  # the folder name ComfyUI-Manager gives a git clone of this repo
START_TIMEOUT_S = 180
# One intra-op thread: small models gain nothing from more, and on a busy 2-core machine a second
# OpenMP thread that is descheduled stalls every parallel region (seen: 30-100x slower steps).
SERVER_ENV = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
LOG_TAIL_CHARS = 6000


class ComfyError(RuntimeError):
    """Something the host reported: the server failed, or a prompt was refused or failed."""


class ServerError(ComfyError):
    """The server did not start or died; the message ends with its log."""


class RunFailed(ComfyError):
    """A prompt did not end the way the caller expected (status, outputs, or a missing error)."""


class PromptRejected(ComfyError):
    """``/prompt`` answered 400: the prompt failed validation before anything ran."""

    def __init__(self, body: dict):
        self.body = body
        self.error: dict = body.get("error", {})
        self.node_errors: dict = body.get("node_errors", {})
        self.lines = [f"prompt rejected: {self.error.get('message', '?')} {self.error.get('details', '')}".rstrip()]
        for node_id, entry in self.node_errors.items():
            for error in entry.get("errors", []):
                self.lines.append(f"  node {node_id} ({entry.get('class_type')}): {error.get('type')}: "
                                  f"{error.get('message')} {error.get('details', '')}".rstrip())
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True)
class ExecutionError:
    """The host's ``execution_error`` event: which node failed, and how."""

    node_id: str
    node_type: str
    exception_type: str
    message: str
    traceback: str

    @classmethod
    def from_event(cls, data: dict) -> ExecutionError:
        return cls(str(data.get("node_id")), str(data.get("node_type")), str(data.get("exception_type")),
                   str(data.get("exception_message", "")).strip(), "".join(data.get("traceback") or []))

    def summary(self) -> str:
        return f"node {self.node_id} ({self.node_type}): {self.exception_type}: {self.message}"


class ExecutionFailed(ComfyError):
    def __init__(self, prompt_id: str, error: ExecutionError):
        self.error = error
        super().__init__(f"prompt {prompt_id} failed in {error.summary()}\n{error.traceback}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def link_custom_nodes(directory: Path, packs: dict[str, Path]) -> Path:
    """A custom-nodes folder holding only links to ``packs`` (folder name -> pack directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in packs.items():
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return directory


class ComfyServer:
    """One ``main.py`` process with private folders (output, input, temp, user) under ``workdir``."""

    def __init__(self, custom_nodes_dir: Path, workdir: Path, model_paths: Optional[dict[str, str]] = None,
                 output_dir: Optional[Path] = None, cpu: bool = True, extra_args: tuple[str, ...] = ()):
        self.workdir = Path(workdir).resolve()
        self.comfyui = find_comfyui()
        self.output_dir = Path(output_dir).resolve() if output_dir else self.workdir / "output"
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._paths = {"custom_nodes": str(Path(custom_nodes_dir).resolve()), **(model_paths or {})}
        self._cpu = cpu
        self._extra_args = extra_args
        self._process: Optional[subprocess.Popen] = None

    @classmethod
    def for_checkout(cls, workdir: Path, extra_packs: Optional[dict[str, Path]] = None, **options) -> ComfyServer:
        packs = {PACK_NAME: REPO, **(extra_packs or {})}
        return cls(link_custom_nodes(Path(workdir) / "custom_nodes", packs), workdir, **options)

    def command(self) -> list[str]:
        folders = {"output": self.output_dir, **{name: self.workdir / name for name in ("input", "temp", "user")}}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "extra_model_paths.yaml"
        config.write_text(json.dumps({"selfcascade_headless": self._paths}, indent=2))  # JSON is YAML
        return [sys.executable, str(self.comfyui / "main.py"), *(["--cpu"] if self._cpu else []),
                "--listen", "127.0.0.1", "--port", str(self.port), "--extra-model-paths-config", str(config),
                *(arg for name, folder in folders.items() for arg in (f"--{name}-directory", str(folder))),
                # a private file: an in-memory database logs thread errors on every prompt (0.3.75)
                "--database-url", f"sqlite:///{self.workdir / 'comfyui.db'}", *self._extra_args]

    def start(self) -> ComfyServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(self.command(), cwd=self.comfyui, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env={**os.environ, **SERVER_ENV})
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"ComfyUI did not answer within {START_TIMEOUT_S} s\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The server's process id, e.g. to read its memory in ``/proc``."""
        self.check_alive()
        return self._process.pid

    def check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            code = None if self._process is None else self._process.returncode
            raise ServerError(f"ComfyUI is not running (exit code {code})\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", errors="replace")

    def log_tail(self) -> str:
        return f"--- ComfyUI log ({self.log_path}), last part ---\n{self.log_text()[-LOG_TAIL_CHARS:]}"

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@dataclass(frozen=True)
class Node:
    id: str

    def out(self, index: int) -> list:
        return [self.id, index]


@dataclass
class Graph:
    prompt: dict[str, dict] = field(default_factory=dict)

    def node(self, class_type: str, **inputs: Any) -> Node:
        node = Node(str(len(self.prompt) + 1))
        linked = {name: value.out(0) if isinstance(value, Node) else value for name, value in inputs.items()}
        self.prompt[node.id] = {"class_type": class_type, "inputs": linked}
        return node


@dataclass
class RunResult:
    prompt_id: str
    outputs: dict[str, dict]
    client: ComfyClient = field(repr=False)

    def files(self, node_id: str, kind: str) -> list[dict]:
        entries = self.outputs.get(str(node_id), {}).get(kind)
        if not entries:
            raise RunFailed(f"node {node_id} has no '{kind}' output; outputs: {self.outputs}")
        return entries

    def latent(self, node_id: str, index: int = 0) -> torch.Tensor:
        """The tensor a SaveLatent node wrote."""
        data = self.client.view(self.files(node_id, "latents")[index])
        return safetensors.torch.load(data)["latent_tensor"]

    def images(self, node_id: str) -> list[Image.Image]:
        return [Image.open(io.BytesIO(self.client.view(entry))) for entry in self.files(node_id, "images")]

    def text(self, node_id: str) -> str:
        return "\n".join(self.files(node_id, "text"))


class ComfyClient:
    def __init__(self, url: str, timeout_s: float = 600):
        self.url = url
        self.timeout_s = timeout_s
        self.client_id = uuid.uuid4().hex
        self._ws = websocket.create_connection(f"ws{url.removeprefix('http')}/ws?clientId={self.client_id}",
                                               timeout=timeout_s)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def get(self, path: str, **params) -> requests.Response:
        response = requests.get(f"{self.url}{path}", params=params, timeout=60)
        response.raise_for_status()
        return response

    def object_info(self) -> dict:
        return self.get("/object_info").json()

    def history(self, prompt_id: str) -> dict:
        return self.get(f"/history/{prompt_id}").json()[prompt_id]

    def view(self, file_ref: dict) -> bytes:
        """A file an output node wrote, by its ``{"filename", "subfolder", "type"}`` entry."""
        return self.get("/view", filename=file_ref["filename"], subfolder=file_ref.get("subfolder", ""),
                        type=file_ref.get("type", "output")).content

    def queue(self, prompt: dict | Graph) -> str:
        prompt = prompt.prompt if isinstance(prompt, Graph) else prompt
        response = requests.post(f"{self.url}/prompt", json={"prompt": prompt, "client_id": self.client_id},
                                 timeout=60)
        if response.status_code == 400:
            raise PromptRejected(response.json())
        response.raise_for_status()
        return response.json()["prompt_id"]

    def events(self, prompt_id: str) -> Iterator[tuple[str, dict]]:
        """The prompt's ``/ws`` events as ``(type, data)``, up to ``executing`` with ``node: null`` (done)."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                frame = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            if not isinstance(frame, str):
                continue  # binary preview images
            message = json.loads(frame)
            data = message.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            yield message["type"], data
            if message["type"] == "executing" and data.get("node") is None:
                return
        raise TimeoutError(f"prompt {prompt_id} did not finish within {self.timeout_s} s")

    def wait(self, prompt_id: str) -> Optional[ExecutionError]:
        """Follow ``/ws`` until the prompt is done; its execution error, if any."""
        error = None
        for kind, data in self.events(prompt_id):
            if kind == "execution_error":
                error = ExecutionError.from_event(data)
        return error

    def run(self, prompt: dict | Graph) -> RunResult:
        prompt_id = self.queue(prompt)
        error = self.wait(prompt_id)
        if error is not None:
            raise ExecutionFailed(prompt_id, error)
        entry = self.history(prompt_id)
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            raise RunFailed(f"prompt {prompt_id} ended with status {status}")
        return RunResult(prompt_id, entry.get("outputs", {}), self)

    def expect_validation_error(self, prompt: dict | Graph) -> PromptRejected:
        try:
            prompt_id = self.queue(prompt)
        except PromptRejected as rejected:
            return rejected
        self.wait(prompt_id)
        raise RunFailed(f"prompt {prompt_id} was accepted; a validation error was expected")

    def expect_execution_error(self, prompt: dict | Graph) -> ExecutionError:
        prompt_id = self.queue(prompt)
        error = self.wait(prompt_id)
        if error is None:
            raise RunFailed(f"prompt {prompt_id} ran without error; an execution error was expected")
        return error
