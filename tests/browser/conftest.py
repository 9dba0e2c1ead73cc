"""One ComfyUI server and one Chromium page at a time for the browser tests, on each frontend variant.

The server is the test harness's (``tests/server/harness.py``): this checkout and the tiny test pack
as its custom nodes, plus an ``upsampler_adapters`` folder holding one adapter made for the tiny
SDXL model, two images in ``input/upsampler_training`` and a picture and a clip for Load Image and
Load Video in ``input``, so the tuned, training and upscale workflows run too, and a ``checkpoints``
folder holding the tiny Flux model saved as a checkpoint (``TINY_FLUX_CHECKPOINT``), whose family
the panel asks the family route for. ``page`` is the session's ``Frontend``; a test fails when the
page logged an error (known frontend noise aside), a warning from this pack's script or a 404 for
one of its files while it ran. With ``SELFCASCADE_SCREENSHOTS=1`` the tests also refresh the
committed pictures (see ``screenshots``).

Frontends: a test runs on the host's own frontend with the classic canvas unless it is marked
``@frontend.EVERY_FRONTEND`` (``frontend.VARIANTS``: the host's and the newest one from the package
registry, each with Nodes 2.0 off and on) or parametrises ``frontend`` itself. ``Browsers`` keeps one
server (per frontend) and one page (per variant) alive at a time; pytest runs the tests grouped by
variant, so each starts once.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from harness import ComfyServer  # noqa: E402

from frontend import HOST_FRONTEND, Frontend, Variant  # noqa: E402
from tiny_swap import (INPUT_IMAGE, INPUT_IMAGE_SIZE, INPUT_VIDEO, INPUT_VIDEO_FRAMES, INPUT_VIDEO_SIZE,  # noqa: E402
                       TINY_ADAPTER, TINY_FLUX_CHECKPOINT)
from tiny_pack.images import write_noise_images  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

def _tiny_adapter_folder(folder: Path) -> Path:
    from selfcascade.adapters.fileformat import save_adapter
    from selfcascade.adapters.modules import new_adapter
    from tiny_pack.models import build_model

    folder.mkdir(parents=True, exist_ok=True)
    save_adapter(folder / TINY_ADAPTER, new_adapter(build_model("sdxl")))
    return folder


def _checkpoint_folder(folder: Path) -> Path:
    import comfy.sd
    from tiny_pack.models import build_model

    folder.mkdir(parents=True, exist_ok=True)
    comfy.sd.save_checkpoint(str(folder / TINY_FLUX_CHECKPOINT), build_model("flux"))  # the host's own writer
    return folder


def _input_media(folder: Path) -> None:
    """What Load Image and Load Video open in the shipped upscale workflows: a picture and a short clip."""
    import av
    import torch
    from PIL import Image
    from tiny_pack.image_nodes import smooth_images

    folder.mkdir(parents=True, exist_ok=True)
    to_bytes = lambda images: (images * 255).round().to(torch.uint8).numpy()  # noqa: E731
    Image.fromarray(to_bytes(smooth_images(1, INPUT_IMAGE_SIZE, INPUT_IMAGE_SIZE, 3, seed=0))[0]).save(folder / INPUT_IMAGE)
    with av.open(str(folder / INPUT_VIDEO), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = INPUT_VIDEO_SIZE
        stream.pix_fmt = "yuv420p"
        for frame in to_bytes(smooth_images(INPUT_VIDEO_FRAMES, INPUT_VIDEO_SIZE, INPUT_VIDEO_SIZE, 3, seed=1)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


class Browsers:
    """The server and the page of the current variant; asking for another variant replaces them."""

    def __init__(self, workdir: Path, model_paths: dict[str, str]):
        self._workdir, self._model_paths = workdir, model_paths
        self._server: Optional[ComfyServer] = None
        self._server_root: Optional[Path] = None
        self._page: Optional[Frontend] = None
        self._variant: Optional[Variant] = None

    def server(self, variant: Variant) -> ComfyServer:
        if self._server is None or self._server_root != variant.root:
            self.close()
            server = ComfyServer.for_checkout(self._workdir, model_paths=self._model_paths,
                                              extra_args=variant.server_args())
            self._server, self._server_root = server.start(), variant.root
        return self._server

    def page(self, variant: Variant) -> Frontend:
        if self._page is None or self._variant != variant:
            server = self.server(variant)
            self._close_page()
            self._page, self._variant = Frontend(server.url, variant.settings), variant
            problems = self._page.problems()  # the extension sets itself up and plans the first workflow
            assert not problems, f"the page logged errors while opening on {variant.id}:\n" + "\n".join(problems)
        return self._page

    def _close_page(self) -> None:
        if self._page is not None:
            self._page.close()
            self._page = self._variant = None

    def close(self) -> None:
        self._close_page()
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="session")
def browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsers]:
    workdir = tmp_path_factory.mktemp("browser")
    adapters = _tiny_adapter_folder(workdir / "upsampler_adapters")
    write_noise_images(workdir / "input" / "upsampler_training", 2, size=(160, 160))  # where training looks by default
    _input_media(workdir / "input")
    checkpoints = _checkpoint_folder(workdir / "checkpoints")
    browsers = Browsers(workdir, {"upsampler_adapters": str(adapters), "checkpoints": str(checkpoints)})
    try:
        yield browsers
    finally:
        browsers.close()


@pytest.fixture(scope="session")
def frontend(request: pytest.FixtureRequest) -> Variant:
    """The variant of this test (``EVERY_FRONTEND``); session-scoped so that pytest groups tests by it."""
    return getattr(request, "param", HOST_FRONTEND)


@pytest.fixture(scope="session")
def browser_server(browsers: Browsers, frontend: Variant) -> ComfyServer:
    return browsers.server(frontend)


@pytest.fixture(scope="session")
def session_page(browsers: Browsers, frontend: Variant) -> Frontend:
    return browsers.page(frontend)


@pytest.fixture
def page(session_page: Frontend, browser_server: ComfyServer) -> Iterator[Frontend]:
    session_page.problems()  # what earlier tests left is theirs
    yield session_page
    browser_server.check_alive()
    problems = session_page.problems()
    assert not problems, "the page logged errors:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def screenshots() -> bool:
    """``SELFCASCADE_SCREENSHOTS=1``: the tests also write docs/images/*.png and workflows/*.jpg."""
    return os.environ.get("SELFCASCADE_SCREENSHOTS") == "1"
