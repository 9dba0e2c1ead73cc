"""The plan route's answer for a known model sampling: the host's own schedule, sigma and SNR per stage."""
import pytest

from comfy_extras.nodes_model_advanced import ModelSamplingFlux, ModelSamplingSD3
from selfcascade.nodes.routes import PLAN_QUERY, SCHEDULE_NOTE, facts, plan_response
from selfcascade.sampling import limits, schedule
from selfcascade.sampling.families import DEMO
from selfcascade.sampling.schedule import pivot_sigmas
from tiny_pack.models import build_model


def answer(**query) -> dict:
    return plan_response(limits.parse_query({k: str(v) for k, v in query.items()}, PLAN_QUERY), lambda: None)


def stage_model_sampling(family: str, shift_node: str):
    model = build_model(family)
    if shift_node == "sd3":
        (model,) = ModelSamplingSD3().patch(model, 8.0)
    elif shift_node == "flux":
        (model,) = ModelSamplingFlux().patch(model, 1.15, 0.5, 1024, 1024)
    return model.get_model_object("model_sampling")


@pytest.mark.parametrize("k_axis", ["percent", "snr", "auto"])
@pytest.mark.parametrize("family, shift_node, sampling, shift", [
    ("wan", "sd3", "FLOW", 8.0), ("flux", "flux", "FLUX", 1.15), ("sd15", None, "EPS", 0.0)])
def test_a_known_sampling_plans_with_the_models_own_schedule_and_gives_sigma_and_snr(family, shift_node, sampling,
                                                                                    shift, k_axis):
    ms = stage_model_sampling(family, shift_node)
    result = answer(base_width=512, base_height=512, scale_by=4, steps=30, k=0.7, later_k=0.5, k_axis=k_axis,
                    sampling=sampling, shift=shift)
    for stage, k in zip(result["stages"][1:], (0.7, 0.5)):
        sigmas = pivot_sigmas(ms, "normal", 30, k, axis=k_axis)
        assert stage["steps"] == len(sigmas) - 1  # what the sampler will run on that model
        assert stage["sigma"] == pytest.approx(float(sigmas[0]), rel=1e-6)
        assert stage["snr"] == pytest.approx(schedule.snr_of_sigma(ms, float(sigmas[0])), rel=1e-6)
    assert result["high_res"][0]["sigma"] == result["stages"][1]["sigma"]
    assert result["k_axis"] == (schedule.k_axis_of(ms, k_axis))
    assert sampling in result["schedule"]


def test_on_the_snr_axis_a_shift_8_model_re_noises_to_the_papers_snr():
    result = answer(steps=1000, k=0.7, k_axis="snr", sampling="FLOW", shift=8)
    assert result["high_res"][0]["snr"] == pytest.approx(schedule.paper_snr(0.7), rel=0.05)
    percent = answer(steps=1000, k=0.7, k_axis="percent", sampling="FLOW", shift=8)
    assert percent["high_res"][0]["snr"] < 0.1 * result["high_res"][0]["snr"]  # the 0.003 against 0.090


def test_without_a_model_the_answer_is_todays_sd_schedule_and_says_so():
    result = answer(steps=50)
    assert result["high_res"] == [{"k": 0.7, "steps": 35}] and result["schedule"] == SCHEDULE_NOTE


@pytest.mark.parametrize("query, fragment", [
    ({"sampling": "STABLE_CASCADE"}, "sampling = 'STABLE_CASCADE' is not an option"),
    ({"sampling": "FLOW", "shift": "101"}, "shift = 101.0 is outside its limits"),
    ({"k_axis": "sigma"}, "k_axis = 'sigma' is not an option; choose one of auto, percent, snr"),
    ({"k_axis": "x" * 5000}, "is not an option"),
])
def test_bad_sampling_shift_and_axis_are_refused_naming_the_choices(query, fragment):
    with pytest.raises(limits.InputLimitError, match=fragment):
        limits.parse_query(query, PLAN_QUERY)


def test_family_facts_carry_the_sampling_only_where_the_plan_route_can_build_it():
    assert facts(DEMO)["sampling"] is None and facts(DEMO)["shift"] is None


@pytest.mark.parametrize("config_name, expected", [("Flux", "FLUX"), ("SD3", "FLOW"), ("WAN21_T2V", "FLOW"),
                                                   ("SD15", "EPS"), ("SDXL", "EPS"), ("ChromaRadiance", "FLUX")])
def test_the_model_type_is_the_one_the_hosts_loader_builds(config_name, expected):
    import comfy.supported_models
    from selfcascade.nodes.routes import model_type_of

    config_class = getattr(comfy.supported_models, config_name)
    config = config_class(dict(config_class.unet_config))
    assert model_type_of(config, {}, "") == expected
