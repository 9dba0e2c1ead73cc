"""The real ComfyUI frontend in headless Chromium, driven from Python through ``driver.mjs``.

``Frontend(url)`` prepares the server's settings (no tutorial, no update toasts), starts one
Chromium page on the app and waits until the app is ready. ``evaluate(js, arg)`` calls a JavaScript
function's source in the page with a JSON-able argument and returns its JSON-able result; the page
helpers of ``page.js`` are on ``window.selfcascadeTest``. ``problems()`` returns console and page
errors since the last call, known frontend noise filtered out. ``screenshot(path, clip)`` writes a
PNG or JPEG. Needs ``scripts/provision_browser.sh`` (Chromium and playwright-core).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Optional

import requests

HERE = Path(__file__).resolve().parent
PAGE_HELPERS = (HERE / "page.js").read_text()
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Notification.ShowVersionUpdates": False,
            "Comfy.Minimap.Visible": False}


class FrontendError(RuntimeError):
    """The page threw, or the driver died; the message carries the page's stack."""


class Frontend:
    def __init__(self, url: str):
        if not (HERE / "node_modules" / "playwright-core").is_dir():
            raise FrontendError("playwright-core is missing: run scripts/provision_browser.sh")
        for name, value in SETTINGS.items():
            requests.post(f"{url}/api/settings/{name}", json=value, timeout=30).raise_for_status()
        self._driver = subprocess.Popen(["node", str(HERE / "driver.mjs")], cwd=HERE, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self._call("open", url=url)
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
