"""The real ComfyUI frontend in headless Chromium, driven from Python through ``driver.mjs``.

``Frontend(url, settings)`` prepares the server's settings (no tutorial, no update toasts, plus
``settings``, e.g. Nodes 2.0 on), starts one Chromium page on the app and waits until the app is
ready. ``evaluate(js, arg)`` calls a JavaScript function's source in the page with a JSON-able
argument and returns its JSON-able result; the page helpers of ``page.js`` are on
``window.selfcascadeTest``. ``problems()`` returns, since the last call, console and page errors
(known frontend noise filtered out), every console warning whose stack names a script of this pack
(the frontend's deprecation warnings included) and every 404 for one of its files (scripts, help
pages). ``hover(x, y)`` moves the mouse; ``screenshot(path, clip)`` writes a PNG or JPEG. Needs
``scripts/provision_browser.sh`` (Chromium and playwright-core).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from comfy_headless import PACK_NAME, REPO

HERE = Path(__file__).resolve().parent
PAGE_HELPERS = (HERE / "page.js").read_text()
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Notification.ShowVersionUpdates": False,
            "Comfy.Minimap.Visible": False}


class FrontendError(RuntimeError):
    """The page threw, or the driver died; the message carries the page's stack."""


@dataclass(frozen=True)
class Variant:
    """A frontend the browser tests run on: its version, where the server serves it from (``None``: the
    host's own, which the host pins) and whether "Nodes 2.0" (Vue nodes) draws the graph."""

    version: str
    root: Optional[Path]
    nodes2: bool

    @property
    def id(self) -> str:
        return f"{self.version}-{'nodes2' if self.nodes2 else 'classic'}"

    @property
    def settings(self) -> dict[str, Any]:
        return {"Comfy.VueNodes.Enabled": self.nodes2}

    def server_args(self) -> tuple[str, ...]:
        if self.root is None:
            return ()
        if not (self.root / "index.html").exists():
            raise FrontendError(f"frontend {self.version} is not installed at {self.root}: run scripts/provision_browser.sh")
        return ("--front-end-root", str(self.root))


def _newer_frontend() -> tuple[str, Path]:
    """Version and static folder of the newer frontend ``scripts/provision_browser.sh`` installs."""
    pins = [line for line in (HERE / "frontend-requirements.txt").read_text().splitlines() if "==" in line]
    root = REPO / ".host" / "frontends" / "newer" / "comfyui_frontend_package" / "static"
    return pins[0].split("==")[1].strip(), root


HOST_FRONTEND = Variant(metadata.version("comfyui-frontend-package"), None, nodes2=False)
NEWER = Variant(*_newer_frontend(), nodes2=False)
# the newest first and the host's classic canvas last: tests that do not ask for a variant get that one,
# and pytest groups tests by variant in this order, so the page carries on into them
VARIANTS = (NEWER, Variant(NEWER.version, NEWER.root, True), Variant(HOST_FRONTEND.version, None, True), HOST_FRONTEND)
# a test module's `pytestmark`: each of its tests runs on every variant (the `frontend` fixture of conftest.py)
EVERY_FRONTEND = pytest.mark.parametrize("frontend", VARIANTS, indirect=True, ids=lambda variant: variant.id)


class Frontend:
    def __init__(self, url: str, settings: Optional[dict[str, Any]] = None):
        if not (HERE / "node_modules" / "playwright-core").is_dir():
            raise FrontendError("playwright-core is missing: run scripts/provision_browser.sh")
        for name, value in {**SETTINGS, **(settings or {})}.items():
            requests.post(f"{url}/api/settings/{name}", json=value, timeout=30).raise_for_status()
        self._driver = subprocess.Popen(["node", str(HERE / "driver.mjs")], cwd=HERE, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self._call("open", url=url, watch=f"/extensions/{PACK_NAME}/")
            self.evaluate(PAGE_HELPERS)
        except BaseException:
            self.close()
            raise

    def _call(self, op: str, **request: Any) -> Any:
        self._driver.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self._driver.stdin.flush()
        line = self._driver.stdout.readline()
        if not line:
            raise FrontendError(f"the browser driver exited (code {self._driver.poll()}) during '{op}'")
        answer = json.loads(line)
        if not answer["ok"]:
            raise FrontendError(answer["error"])
        return answer["value"]

    def evaluate(self, js: str, arg: Any = None) -> Any:
        return self._call("evaluate", js=js, arg=arg)

    def helper(self, name: str, *args: Any) -> Any:
        """Call ``window.selfcascadeTest[name](...args)`` in the page."""
        return self.evaluate("([name, args]) => window.selfcascadeTest[name](...args)", [name, list(args)])

    def hover(self, x: float, y: float) -> None:
        self._call("hover", x=x, y=y)

    def press(self, key: str) -> None:
        self._call("press", key=key)

    def screenshot(self, path: Path, clip: Optional[dict] = None, quality: Optional[int] = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._call("screenshot", path=str(path), clip=clip, quality=quality)
        return path

    def problems(self) -> list[str]:
        return self._call("problems")

    def close(self) -> None:
        if self._driver.poll() is None:
            try:
                self._call("close")
            except FrontendError:
                pass
            self._driver.stdin.close()
            try:
                self._driver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()

    def __enter__(self) -> Frontend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
