"""Test session set-up: the real ComfyUI host on sys.path and this repo loaded as ``selfcascade``.

The host is ``$COMFYUI_PATH`` when set, else the tree ``scripts/provision_host.py`` made in
``.host/ComfyUI`` (see ``scripts/_bootstrap.py``). Tests write ``from selfcascade.sampling import plan``
and ``from tiny_pack.models import build_model``.
"""
from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent / "scripts"))

from _bootstrap import bootstrap  # noqa: E402

COMFYUI = bootstrap()

# Tiny models gain nothing from intra-op threads, and the host server shares the two cores.
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def one_thread():
    """One intra-op thread for this test whatever ran before it (results that were logged with one thread
    repeat only with one; two threads fighting over two shared cores are slower than one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
