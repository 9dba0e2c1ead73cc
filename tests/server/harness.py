"""The test harness: ``scripts/comfy_headless.py`` (the product's headless ComfyUI driver) plus the tiny pack.

Why: tests run our nodes where users run them, in the host's own server. The server, client, graph
and result code is the product's (the main job uses it too); what is test-only lives here: the
server of ``ComfyServer.for_checkout`` also loads ``tests/tiny_pack`` (tiny real models), which the
product never registers. Used by the ``tests/server`` and ``tests/browser`` fixtures.

Everything ``comfy_headless`` documents is re-exported under the same names (``ComfyServer``,
``ComfyClient``, ``Graph``, ``Node``, ``RunResult``, ``PromptRejected``, ``ExecutionFailed``,
``ExecutionError``, ``ServerError``, ``PACK_NAME``, ``REPO``); see that module's docstring.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import comfy_headless  # noqa: E402
from comfy_headless import (  # noqa: E402, F401 (re-exported for the tests)
    PACK_NAME, ComfyClient, ComfyError, ExecutionError, ExecutionFailed, Graph, Node, PromptRejected, RunFailed,
    RunResult, ServerError,
)

TINY_PACK = REPO / "tests" / "tiny_pack"


class ComfyServer(comfy_headless.ComfyServer):
    """The product's headless server; ``for_checkout`` adds the tiny test pack to this checkout."""

    @classmethod
    def for_checkout(cls, workdir: Path, **options) -> ComfyServer:
        return super().for_checkout(workdir, extra_packs={"tiny_pack": TINY_PACK}, **options)
