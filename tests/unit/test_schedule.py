"""Pivot Reschedule: the stage schedule is the model's own schedule cut where t <= K, for every family."""
import pytest
import torch

import comfy.samplers
from selfcascade.sampling.schedule import ScheduleError, cut_sigma, full_schedule, pivot_sigmas
from tiny_pack.models import FAMILIES, build_model


@pytest.fixture(scope="module", params=FAMILIES)
def model_sampling(request):
    return build_model(request.param).get_model_object("model_sampling")


def test_paper_setting_keeps_35_of_50_steps_on_sd15():
    ms = build_model("sd15").get_model_object("model_sampling")
    sigmas = pivot_sigmas(ms, "normal", 50, 0.7)
    assert len(sigmas) - 1 == 35
    assert int(ms.timestep(sigmas[0])) <= 700 < int(ms.timestep(full_schedule(ms, "normal", 50)[14]))


@pytest.mark.parametrize("scheduler", ["normal", "karras", "simple", "sgm_uniform", "beta"])
def test_cut_is_a_tail_of_the_full_schedule_starting_at_or_below_k(model_sampling, scheduler):
    full = full_schedule(model_sampling, scheduler, 30)
    sigmas = pivot_sigmas(model_sampling, scheduler, 30, 0.7)
    sigma_k = cut_sigma(model_sampling, 0.7)
    assert torch.equal(full[-len(sigmas):], sigmas)
    assert float(sigmas[0]) <= sigma_k * (1 + 1e-4)
    dropped = full[: len(full) - len(sigmas)]
    assert len(dropped) == 0 or float(dropped[-1]) > sigma_k
    assert float(sigmas[-1]) == 0.0


def test_k_is_a_fraction_of_the_models_own_time_axis(model_sampling):
    # the axis ComfyUI's schedulers are uniform in (for shifted flow models: before the shift),
    # so K = 0.7 keeps 35 of 50 steps of the normal schedule in every family
    t_max = model_sampling.timestep(torch.tensor(float(model_sampling.sigma_max)))
    expected = float(model_sampling.sigma(0.7 * t_max))
    assert cut_sigma(model_sampling, 0.7) == pytest.approx(expected, rel=1e-3)
    assert len(pivot_sigmas(model_sampling, "normal", 50, 0.7)) - 1 == 35


def test_full_strength_is_the_whole_schedule(model_sampling):
    assert torch.equal(pivot_sigmas(model_sampling, "normal", 20, 1.0), full_schedule(model_sampling, "normal", 20))


@pytest.mark.parametrize("stage_steps", [1, 7, 20, 60])
def test_stage_steps_override_gives_exactly_that_many_steps_below_k(model_sampling, stage_steps):
    sigmas = pivot_sigmas(model_sampling, "normal", 50, 0.7, stage_steps)
    assert len(sigmas) - 1 == stage_steps
    assert float(sigmas[0]) <= cut_sigma(model_sampling, 0.7) * (1 + 1e-4)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.01])
def test_k_outside_unit_interval_is_refused(model_sampling, strength):
    with pytest.raises(ScheduleError, match=r"outside \(0, 1\]"):
        pivot_sigmas(model_sampling, "normal", 20, strength)


def test_bad_counts_and_names_are_refused(model_sampling):
    with pytest.raises(ScheduleError, match="at least 1 step"):
        pivot_sigmas(model_sampling, "normal", 0, 0.7)
    with pytest.raises(ScheduleError, match="unknown scheduler"):
        pivot_sigmas(model_sampling, "nope", 20, 0.7)
    assert set(comfy.samplers.SCHEDULER_NAMES) >= {"normal", "karras"}
