"""Fixtures for tests through the real server: one ComfyUI per session, one WebSocket client per test.

Every test here is marked ``server``. ``comfy_server`` starts ComfyUI once, with this checkout and
the tiny test pack as its only custom nodes and a temporary ``upsampler_adapters`` folder
(``adapter_folder``), and always stops it. ``comfy`` is a ``harness.ComfyClient`` on it. When a
test that used the server fails, the server's log lines written during that test are added to the
failure report.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Iterator

import pytest

from harness import ComfyClient, ComfyServer

LOG_START = pytest.StashKey[int]()
SERVER_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(SERVER_TESTS):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def adapter_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session server's ``upsampler_adapters`` folder: tests drop adapter files here (unique names)."""
    return tmp_path_factory.mktemp("upsampler_adapters")


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory, adapter_folder: Path) -> Iterator[ComfyServer]:
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("comfy"),
                                  model_paths={"upsampler_adapters": str(adapter_folder)}) as server:
        yield server


@pytest.fixture
def comfy(comfy_server: ComfyServer, request: pytest.FixtureRequest) -> Iterator[ComfyClient]:
    comfy_server.check_alive()
    request.node.stash[LOG_START] = comfy_server.log_size()
    with ComfyClient(comfy_server.url) as client:
        yield client


@pytest.fixture(scope="session")
def shipped_node_ids() -> set[str]:
    """Ids of the nodes in every ``NODES`` list under ``nodes/``: new node modules are covered by themselves."""
    import selfcascade.nodes as package

    modules = [importlib.import_module(f"{package.__name__}.{info.name}")
               for info in pkgutil.iter_modules(package.__path__)]
    return {node.define_schema().node_id for module in modules for node in getattr(module, "NODES", [])}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("comfy_server")
    if report.failed and server is not None:
        report.sections.append(("ComfyUI server log", server.log_text(item.stash.get(LOG_START, 0))))
    return report
