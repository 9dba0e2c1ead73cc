"""Our official-layout ResBlock computes exactly what ComfyUI's openaimodel.ResBlock does with the same weights."""
from __future__ import annotations

import pytest
import torch

from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock as HostResBlock
from selfcascade.adapters.modules import ResBlock


@pytest.mark.parametrize("up", [True, False])
def test_resblock_matches_the_host_given_the_same_state_dict(up):
    channels, emb_dim = 64, 96
    host = HostResBlock(channels, emb_dim, dropout=0.0, dims=2, up=up)
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(value.shape, generator=generator) * 0.1 for key, value in host.state_dict().items()}
    host.load_state_dict(state)
    ours = ResBlock(channels, emb_dim, up=up)
    ours.load_state_dict(state)  # strict: the official key layout, index for index
    x = torch.randn((2, channels, 6, 5), generator=generator)
    emb = torch.randn((2, emb_dim), generator=generator)
    expected = host(x, emb)
    assert expected.shape == ((2, channels, 12, 10) if up else (2, channels, 6, 5))
    assert torch.equal(ours(x, emb), expected)
