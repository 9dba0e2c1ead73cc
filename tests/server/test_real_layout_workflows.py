"""The shipped SD1.5 workflow (its API export) through the real server on a real-layout SD1.5 checkpoint.

The checkpoint has the released SD1.5 layout and random weights (benchmarks/real_layout.py; cached in
the user's cache folder, so written once per machine): CheckpointLoaderSimple reads it as a user's
file, and the cascade runs at full width, 256 -> 512 px in 2 + 2 steps (about two CPU-minutes).
"""
from __future__ import annotations

from typing import Iterator

import pytest

from harness import ComfyClient, ComfyServer
from selfcascade.benchmarks import real_layout, shipped_workflows

CHECKPOINT = real_layout.CHECKPOINT_NAMES["sd15"]


@pytest.fixture(scope="module")
def real_layout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    real_layout.ensure_checkpoint("sd15")
    checkpoints = real_layout.model_folders()["checkpoints"]
    with ComfyServer.for_checkout(tmp_path_factory.mktemp("real_layout"),
                                  model_paths={"checkpoints": str(checkpoints)}) as server:
        yield server


@pytest.mark.slow
def test_shipped_sd15_workflow_runs_on_a_real_layout_checkpoint(real_layout_server: ComfyServer):
    with ComfyClient(real_layout_server.url) as client:
        run = shipped_workflows.run_sd15(client, CHECKPOINT, base=256, target=512, steps=2)
    assert run.native_px == 512  # the pack's family table sees SD1.5's native size on the loaded MODEL
    assert run.stages == ["base: 256x256, 2 steps", "stage 1: 512x512, K 0.70, 2 steps"]
    assert run.image_size == (512, 512)
    assert run.changes == [  # nothing else of the shipped file changed
        f"CheckpointLoaderSimple ckpt_name: 'v1-5-pruned-emaonly.safetensors' → '{CHECKPOINT}'",
        "EmptyLatentImage width: 512 → 256", "EmptyLatentImage height: 512 → 256",
        "SelfCascadeKSampler steps: 50 → 2", "SelfCascadeKSampler scale_by: 4 → 2.0"]
    log = real_layout_server.log_text()  # the loader names any key the layout lacks or adds
    assert "model_type EPS" in log and not any(text in log for text in ("unet missing", "unet unexpected", "VAE keys"))
