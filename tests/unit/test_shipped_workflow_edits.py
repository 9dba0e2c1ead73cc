"""The edits that let the shipped SD1.5 and SDXL workflows run on this CPU: exactly these, nothing else."""
from __future__ import annotations

import pytest

from selfcascade.benchmarks.shipped_workflows import (EditedPrompt, save_sampler_output, sd15_prompt, sdxl_adapter_prompt,
                                                      stage_lines)


def test_sdxl_adapter_workflow_edits_are_sizes_steps_and_the_checkpoint_name():
    edited = sdxl_adapter_prompt("sdxl.safetensors", base=256, target=512, steps=3)
    shipped = EditedPrompt.load("sdxl_tuned_official_adapter").prompt
    assert [change.line() for change in edited.changes] == [
        "CheckpointLoaderSimple ckpt_name: 'sd_xl_base_1.0.safetensors' → 'sdxl.safetensors'",
        "SelfCascadeBaseLatent target_width: 2048 → 512", "SelfCascadeBaseLatent target_height: 2048 → 512",
        "EmptyLatentImage (added, id 10) inputs: None → {'width': 256, 'height': 256, 'batch_size': 1}",
        "SelfCascadeKSampler latent_image: ['6', 0] → ['10', 0]", "SelfCascadeKSampler steps: 30 → 3"]
    sampler = edited.inputs("SelfCascadeKSampler")
    assert sampler["upsampler_adapter"] == shipped[edited.node_id("SelfCascadeKSampler")]["inputs"]["upsampler_adapter"]
    assert edited.inputs("SelfCascadeLoadUpsamplerAdapter")["adapter_name"] == "upsampler_only.pth"
    assert EditedPrompt.load("sdxl_tuned_official_adapter").prompt == shipped  # the file itself is untouched


def test_an_observation_and_a_removed_link_are_recorded_and_copies_are_independent():
    edited = sd15_prompt("sd15.safetensors")
    plain = edited.copy()
    save_id = save_sampler_output(plain, "x")
    plain.unlink("SelfCascadeKSampler", "positive")
    assert save_id not in edited.prompt and "positive" in edited.inputs("SelfCascadeKSampler")
    assert plain.changes[len(edited.changes):][1].line() == "SelfCascadeKSampler positive: ['3', 0] → None"


def test_a_missing_input_or_an_ambiguous_node_is_named():
    edited = sd15_prompt("sd15.safetensors")
    with pytest.raises(ValueError, match="has no input 'size'"):
        edited.set("EmptyLatentImage", "size", 3)
    with pytest.raises(ValueError, match="expected one CLIPTextEncode node, found 2"):
        edited.node_id("CLIPTextEncode")


def test_stage_lines_drop_the_seconds():
    report = "base: 256x256, 2 steps, 9.10 s\nstage 1: 512x512, K 0.70, 2 steps, 55.00 s\nnote"
    assert stage_lines(report) == ["base: 256x256, 2 steps", "stage 1: 512x512, K 0.70, 2 steps"]
