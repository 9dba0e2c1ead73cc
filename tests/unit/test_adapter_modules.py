"""Upsampler modules: sizes, the level layout read from unet_config (or a DiT's depth), no-op at init, dtype
following."""
from __future__ import annotations

import pytest
import torch

from selfcascade.adapters.modules import (DIT_LITE, DIT_TIME_DIM, LITE, OFFICIAL_SDXL, OFFICIAL_SDXL_POINTS, AdapterSpec,
                                          DiTUpsamplers, LiteUpsamplers, OfficialUpsamplers, build_module, dit_layout,
                                          timestep_sinusoid, tokens_to_grid, unet_layout)

SDXL_CONFIG = {"model_channels": 320, "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4]}
SD15_CONFIG = {"model_channels": 320, "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4]}
SDXL_WIDTHS = (320, 640, 1280, 1280)


def test_sdxl_layout_is_input_blocks_3_6_8_and_middle():
    layout = unet_layout(SDXL_CONFIG)
    assert layout.points == OFFICIAL_SDXL_POINTS == (("input", 3), ("input", 6), ("input", 8), ("middle", 0))
    assert layout.channels == SDXL_WIDTHS
    assert layout.emb_dim == 1280


def test_sd15_layout_has_a_point_per_level_and_int_num_res_blocks_equals_list():
    layout = unet_layout(SD15_CONFIG)
    assert layout.points == (("input", 3), ("input", 6), ("input", 9), ("input", 11), ("middle", 0))
    assert layout.channels == (320, 640, 1280, 1280, 1280)
    assert unet_layout({**SD15_CONFIG, "num_res_blocks": [2, 2, 2, 2]}) == layout
    uneven = unet_layout({**SD15_CONFIG, "num_res_blocks": [1, 3, 2, 2]})
    assert uneven.points[:2] == (("input", 2), ("input", 6))


def test_lite_parameter_count_at_sdxl_widths():
    with torch.device("meta"):
        module = LiteUpsamplers(SDXL_WIDTHS, 1280)
    # shared Linear(1280->16) = 20,496; per point 2 blocks of (9C + 220) plus C scales
    assert sum(p.numel() for p in module.parameters()) == 89_136 < 100_000


def test_official_parameter_count_at_sdxl_widths():
    with torch.device("meta"):
        module = OfficialUpsamplers(SDXL_WIDTHS, 1280)
    assert sum(p.numel() for p in module.parameters()) == 145_457_280  # 18C^2 + 1287C per ResBlock


def _features(channels, size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, size, size, generator=generator) for c in channels]


def test_untrained_lite_adapter_outputs_exact_zeros_at_twice_the_size():
    module = LiteUpsamplers((32, 64), 128)
    outputs = module(_features((32, 64)), torch.randn(2, 128))
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 8, 8), (2, 64, 8, 8)]
    assert all(torch.count_nonzero(o) == 0 for o in outputs)


def test_lite_scale_is_the_only_zero_so_training_moves_it_first_and_then_the_inner_layers():
    module = LiteUpsamplers((32,), 128)
    module(_features((32,)), torch.randn(2, 128))[0].square().sum().backward()
    assert module.upsamplers[0].scale.grad is not None
    with torch.no_grad():
        module.upsamplers[0].scale.fill_(0.1)
    module.zero_grad()
    module(_features((32,), seed=1), torch.randn(2, 128))[0].square().sum().backward()
    assert module.upsamplers[0].blocks[0].reduce.weight.grad.abs().sum() > 0
    assert module.time_proj.weight.grad.abs().sum() > 0


def test_untrained_official_upsampler_is_a_nearest_copy():
    module = OfficialUpsamplers((32,), 128)
    feature = _features((32,))[0]
    upsampled = module([feature], torch.randn(2, 128))[0]
    assert torch.equal(upsampled, feature.repeat_interleave(2, -1).repeat_interleave(2, -2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fp32_weights_compute_in_the_input_dtype_and_stay_fp32(dtype):
    module = LiteUpsamplers((32,), 128)
    with torch.no_grad():
        module.upsamplers[0].scale.fill_(1.0)
    features = [f.to(dtype) for f in _features((32,))]
    output = module(features, torch.randn(2, 128, dtype=dtype))[0]
    assert output.dtype == dtype and torch.isfinite(output).all()
    assert all(p.dtype == torch.float32 for p in module.parameters())


def test_build_module_refuses_an_unknown_variant():
    spec = AdapterSpec("huge", "sdxl", (32,), 128, "skip", (("input", 3),))
    with pytest.raises(ValueError, match="unknown adapter variant 'huge'"):
        build_module(spec)


def test_build_module_dispatches_on_variant():
    spec = AdapterSpec(LITE, "sdxl", (32,), 128, "skip", (("input", 3),))
    assert isinstance(build_module(spec), LiteUpsamplers)
    official = AdapterSpec(OFFICIAL_SDXL, "sdxl", (32, 32, 32, 32), 128, "backbone", OFFICIAL_SDXL_POINTS)
    assert isinstance(build_module(official), OfficialUpsamplers)


FLUX_DEV = {"depth": 19, "depth_single_blocks": 38, "hidden_size": 3072}


def test_dit_layout_takes_the_first_half_of_the_block_stack_in_up_to_four_equal_chunks():
    layout = dit_layout(FLUX_DEV)
    assert layout.points == (("double_block", 6), ("double_block", 13), ("single_block", 1), ("single_block", 9))
    assert layout.channels == (3072,) * 4
    flux2 = dit_layout({"depth": 8, "depth_single_blocks": 48, "hidden_size": 6144})
    assert flux2.points == (("double_block", 6), ("single_block", 5), ("single_block", 12), ("single_block", 19))
    assert dit_layout({"depth": 1, "depth_single_blocks": 2, "hidden_size": 8}).points == (
        ("double_block", 0), ("single_block", 0))
    with pytest.raises(ValueError, match="no blocks"):
        dit_layout({"depth": 0, "depth_single_blocks": 0, "hidden_size": 8})


def test_dit_lite_parameter_count_at_flux_width():
    with torch.device("meta"):
        module = DiTUpsamplers((3072,) * 4)
    # shared Linear(256->16) = 4,112; per point 2 blocks of (9C + 220) plus C scales
    assert sum(p.numel() for p in module.parameters()) == 4_112 + 4 * (2 * (9 * 3072 + 220) + 3072) < 250_000


def _tokens(channels, grid, batch=2, seed=0):
    return torch.randn(batch, grid[0] * grid[1], channels, generator=torch.Generator().manual_seed(seed))


def test_untrained_dit_adapter_outputs_exact_zero_tokens_on_the_target_grid():
    module = DiTUpsamplers((32, 32))
    outputs = module([_tokens(32, (3, 4)), _tokens(32, (3, 4), seed=1)], torch.tensor([0.5, 0.9]), (3, 4), (6, 7))
    assert [tuple(o.shape) for o in outputs] == [(2, 42, 32)] * 2
    assert all(torch.count_nonzero(o) == 0 for o in outputs)


def test_dit_tokens_are_laid_out_row_major_as_flux_makes_them():
    tokens = torch.arange(6, dtype=torch.float32)[None, :, None].expand(1, 6, 5)  # token i holds i, width 5
    grid = tokens_to_grid(tokens, (2, 3))
    assert grid.shape == (1, 5, 2, 3)
    assert torch.equal(grid[0, 0], torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]))


def test_dit_adapter_is_time_aware_and_learns_through_its_scale_first():
    module = DiTUpsamplers((32,))
    with torch.no_grad():
        module.upsamplers[0].scale.fill_(1.0)
    tokens = _tokens(32, (4, 4))
    early, late = (module([tokens], torch.full((2,), t), (4, 4), (8, 8))[0] for t in (0.9, 0.1))
    assert not torch.equal(early, late)
    fresh = DiTUpsamplers((32,))
    fresh([tokens], torch.full((2,), 0.5), (4, 4), (8, 8))[0].square().sum().backward()
    assert fresh.upsamplers[0].scale.grad is not None  # zero output, but the scale gets a gradient
    assert torch.equal(timestep_sinusoid(torch.tensor([0.0]), DIT_TIME_DIM)[0, :128], torch.ones(128))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dit_adapter_computes_in_the_tokens_dtype_and_stays_fp32(dtype):
    module = DiTUpsamplers((32,))
    with torch.no_grad():
        module.upsamplers[0].scale.fill_(1.0)
    output = module([_tokens(32, (4, 4)).to(dtype)], torch.full((2,), 0.5), (4, 4), (8, 8))[0]
    assert output.dtype == dtype and torch.isfinite(output).all()
    assert all(p.dtype == torch.float32 for p in module.parameters())


def test_build_module_builds_the_dit_variant():
    spec = AdapterSpec(DIT_LITE, "flux", (64,), DIT_TIME_DIM, "backbone", (("double_block", 0),))
    assert isinstance(build_module(spec), DiTUpsamplers) and spec.dit
    assert "dit-lite upsampler adapter for flux" in spec.summary() and "at double 0" in spec.summary()
