"""Pivot Reschedule: the stage schedule is the model's own schedule cut where t <= K, for every family."""
import pytest
import torch

import comfy.model_sampling
import comfy.samplers
from selfcascade.sampling import schedule
from selfcascade.sampling.limits import MAX_STEPS
from selfcascade.sampling.schedule import (MAX_SCHEDULE_EVALUATIONS, ScheduleError, cut_sigma, full_schedule,
                                           pivot_sigmas)
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


class _Stopped(Exception):
    pass


@pytest.fixture
def schedule_calls(monkeypatch) -> list:
    """What the exact-count search did, in order: "check" for each stop check, the total for each schedule."""
    calls = []
    computed = schedule.full_schedule
    monkeypatch.setattr(schedule, "full_schedule", lambda *args: calls.append(args[2]) or computed(*args))
    return calls


@pytest.mark.parametrize("scheduler", comfy.samplers.SCHEDULER_NAMES)
@pytest.mark.parametrize("stage_steps, k", [(10000, 0.01), (3333, 0.37), (1019, 0.11), (305, 0.05), (35, 0.7),
                                            (800, 0.7), (1, 0.01), (9999, 0.99)])
def test_exact_count_search_is_bounded_and_checks_before_every_schedule(scheduler, stage_steps, k, schedule_calls):
    # the sampler's old search re-ran schedules of up to stage_steps / K steps 64 times (7 minutes
    # without an interrupt check for stage_steps 10000 at K 0.01); every search now stays inside
    # the limits and can be stopped before each schedule it computes
    ms = comfy.model_sampling.ModelSamplingDiscrete()
    try:
        sigmas = pivot_sigmas(ms, scheduler, 30, k, stage_steps, stop_check=lambda: schedule_calls.append("check"))
        assert len(sigmas) - 1 == stage_steps or scheduler in ("ddim_uniform",)  # ddim_uniform's grid skips counts
    except ScheduleError as refused:
        assert f"needs a {scheduler} schedule of more than {MAX_STEPS} steps" in str(refused)
        assert "lower stage_steps or raise K" in str(refused)
    totals = schedule_calls[1::2]
    assert schedule_calls[0::2] == ["check"] * len(totals) and len(totals) <= MAX_SCHEDULE_EVALUATIONS
    assert all(stage_steps - 1 < total <= MAX_STEPS for total in totals)


def test_the_first_guess_lands_for_schedules_uniform_in_time(schedule_calls):
    ms = comfy.model_sampling.ModelSamplingDiscrete()
    for stage_steps, k in [(35, 0.7), (7000, 0.7), (1019, 0.11), (3333, 0.37)]:
        schedule_calls.clear()
        assert len(pivot_sigmas(ms, "normal", 30, k, stage_steps, stop_check=lambda: None)) - 1 == stage_steps
        assert len(schedule_calls) <= 2


def test_a_stop_check_that_raises_stops_the_search_before_any_schedule(schedule_calls):
    def stop():
        raise _Stopped

    with pytest.raises(_Stopped):
        pivot_sigmas(comfy.model_sampling.ModelSamplingDiscrete(), "normal", 30, 0.01, 10000, stop_check=stop)
    assert schedule_calls == []


def test_schedules_longer_than_the_limit_are_refused():
    with pytest.raises(ScheduleError, match=f"a schedule has 1 to {MAX_STEPS} steps"):
        full_schedule(comfy.model_sampling.ModelSamplingDiscrete(), "normal", MAX_STEPS + 1)


def _flow(shift: float) -> comfy.model_sampling.ModelSamplingDiscreteFlow:
    class FlowSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass
    sampling = FlowSampling()
    sampling.set_parameters(shift=shift)
    return sampling


def test_the_papers_k_is_an_snr_of_0_09():
    # the table, computed from the host's own SD schedule: sigma 3.33 at t = 700
    assert schedule.paper_snr(0.7) == pytest.approx(0.090, abs=0.001)
    assert schedule.paper_snr(0.5) == pytest.approx(0.383, abs=0.002)
    assert schedule.paper_snr(0.3) > schedule.paper_snr(0.5) > schedule.paper_snr(0.7) > schedule.paper_snr(0.9)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_both_k_axes_coincide_on_sds_own_schedule(family):
    ms = build_model(family).get_model_object("model_sampling")
    for k in (0.3, 0.5, 0.7, 0.9):
        assert schedule.k_on_model_axis(ms, k, "snr") == pytest.approx(k, abs=1e-4)
        assert torch.equal(pivot_sigmas(ms, "normal", 50, k, axis="snr"), pivot_sigmas(ms, "normal", 50, k))


@pytest.mark.parametrize("shift, paper_k_on_model_axis", [(1.0, 0.77), (3.0, 0.53), (8.0, 0.29)])
def test_on_the_snr_axis_a_shifted_flow_model_is_cut_at_the_papers_noise_level(shift, paper_k_on_model_axis):
    ms = _flow(shift)
    assert schedule.k_on_model_axis(ms, 0.7, "snr") == pytest.approx(paper_k_on_model_axis, abs=0.01)
    for k in (0.3, 0.5, 0.7, 0.9):
        sigma = cut_sigma(ms, k, "snr")
        assert schedule.snr_of_sigma(ms, sigma) == pytest.approx(schedule.paper_snr(k), rel=1e-6)
    # the percent axis re-noises a shifted model harder than the paper: a lower SNR at the same K
    assert schedule.snr_of_sigma(ms, cut_sigma(ms, 0.7)) < schedule.paper_snr(0.7) or shift == 1.0


def test_snr_and_sigma_are_inverse_on_both_noise_mixtures():
    for ms in (comfy.model_sampling.ModelSamplingDiscrete(), _flow(3.0)):
        for sigma in (0.05, 0.5, 0.95):
            assert schedule.sigma_of_snr(ms, schedule.snr_of_sigma(ms, sigma)) == pytest.approx(sigma, rel=1e-9)


def test_an_snr_the_model_cannot_reach_cuts_at_its_noisiest_sigma():
    ms = _flow(3.0)
    assert schedule.k_on_model_axis(ms, 1.0, "snr") == pytest.approx(1.0, abs=1e-6)
    assert len(pivot_sigmas(ms, "normal", 20, 1.0, axis="snr")) == 21


def test_an_unknown_k_axis_is_refused_with_the_choices():
    with pytest.raises(ScheduleError, match="percent, snr"):
        cut_sigma(comfy.model_sampling.ModelSamplingDiscrete(), 0.7, "sigma")


def test_auto_k_axis_is_percent_on_sd_and_the_flow_constant_on_flow_models():
    assert schedule.K_AXIS_CHOICES == ("auto", *schedule.K_AXES)
    assert schedule.k_axis_of(comfy.model_sampling.ModelSamplingDiscrete(), "auto") == "percent"
    assert schedule.k_axis_of(_flow(3.0), "auto") == schedule.FLOW_K_AXIS
    assert schedule.k_axis_of(_flow(3.0), "snr") == "snr"
    flow = _flow(8.0)
    axis_sigmas = pivot_sigmas(flow, "normal", 30, 0.7, axis=schedule.FLOW_K_AXIS)
    assert torch.equal(pivot_sigmas(flow, "normal", 30, 0.7, axis="auto"), axis_sigmas)
