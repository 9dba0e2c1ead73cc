"""``GET /selfcascade/plan`` on the real server answers what the Python planner and schedule say."""
from __future__ import annotations

import comfy.model_sampling
import requests

from selfcascade.nodes.routes import register_routes
from selfcascade.sampling.plan import plan_from_settings
from selfcascade.sampling.schedule import pivot_sigmas


def plan(url: str, **query) -> dict:
    response = requests.get(f"{url}/selfcascade/plan", params=query, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_route_answers_the_planners_stages_and_steps(browser_server):
    answer = plan(browser_server.url, base_width=832, base_height=480, target_width=1664, target_height=960,
                  steps=30, scheduler="simple", k=0.6)
    expected = plan_from_settings(832, 480, 2.0, 1664, 960)
    stage_steps = len(pivot_sigmas(comfy.model_sampling.ModelSamplingDiscrete(), "simple", 30, 0.6)) - 1
    assert [(s["width"], s["height"]) for s in answer["stages"]] == [(s.width, s.height) for s in expected.stages]
    assert [(s["steps"], s["k"]) for s in answer["stages"]] == [(30, None), (stage_steps, 0.6)]
    assert answer["high_res"] == [{"k": 0.6, "steps": stage_steps}] and "no model is known" in answer["schedule"]


def test_route_gives_later_stages_their_own_k(browser_server):
    answer = plan(browser_server.url, base_width=512, base_height=512, scale_by=4, steps=50, k=0.7, later_k=0.5)
    assert [(s["width"], s["k"], s["steps"]) for s in answer["stages"][1:]] == [(1024, 0.7, 35), (2048, 0.5, 25)]
    assert answer["high_res"] == [{"k": 0.7, "steps": 35}, {"k": 0.5, "steps": 25}]


def test_route_rounds_and_says_so(browser_server):
    answer = plan(browser_server.url, base_width=1024, base_height=1024, target_width=2050, target_height=2050,
                  multiple=16)
    assert answer["stages"][-1] == {"width": 2048, "height": 2048, "k": 0.7, "steps": answer["high_res"][0]["steps"]}
    assert answer["notes"] == list(plan_from_settings(1024, 1024, 2.0, 2050, 2050, 16).notes)


def test_route_plans_an_upscale_from_the_input_image_and_a_smaller_target_as_one_pass(browser_server):
    answer = plan(browser_server.url, base_width=512, base_height=512, scale_by=4, steps=30, k=0.5, upscale=1)
    steps = len(pivot_sigmas(comfy.model_sampling.ModelSamplingDiscrete(), "normal", 30, 0.5)) - 1
    assert [(s["width"], s["steps"], s["k"]) for s in answer["stages"]] == [(512, 0, None), (1024, steps, 0.5),
                                                                           (2048, steps, 0.5)]
    smaller = plan(browser_server.url, base_width=512, base_height=512, target_width=256, target_height=256, upscale=1)
    assert [(s["width"], s["height"], s["k"]) for s in smaller["stages"]] == [(512, 512, None), (256, 256, 0.7)]
    assert smaller["notes"] == ["target 256x256 is not larger than the input 512x512: one pass at the target size, "
                                "no cascade"]
    # the KSampler's base is sampled: the same target there is a single stage with no cascade
    assert len(plan(browser_server.url, base_width=512, base_height=512, target_width=256, target_height=256)["stages"]) == 1


def test_route_without_a_base_gives_the_stage_steps_only(browser_server):
    answer = plan(browser_server.url, steps=50)
    assert answer["stages"] is None and answer["high_res"] == [{"k": 0.7, "steps": 35}]  # the paper's 35 of 50


def test_route_passes_on_the_planners_and_the_schedules_errors(browser_server):
    assert "exceeds the 16384 px side limit" in plan(browser_server.url, base_width=2048, base_height=2048,
                                                     scale_by=16)["error"]
    assert "needs a normal schedule of more than 10000 steps" in plan(browser_server.url, stage_steps=10000,
                                                                      k=0.01)["error"]
    assert plan(browser_server.url, k=1.5)["error"] == "k = 1.5 is outside its limits; choose 0.01 to 1.0."
    assert plan(browser_server.url, steps="many")["error"] == "steps = 'many' is not a whole number; choose 1 to 10000."


def test_registering_without_a_server_does_nothing():
    assert register_routes() is False  # in-process, as in unit tests: importing the pack must not fail


def test_route_plans_on_a_known_model_sampling_with_sigma_and_snr_per_stage(browser_server):
    from selfcascade.sampling.schedule import host_model_sampling, snr_of_sigma

    wan = host_model_sampling("FLOW", 8.0)
    for axis in ("percent", "snr"):
        answer = plan(browser_server.url, base_width=512, base_height=512, scale_by=4, steps=30, k=0.7, later_k=0.5,
                      k_axis=axis, sampling="FLOW", shift=8)
        for stage, k in zip(answer["stages"][1:], (0.7, 0.5)):
            sigmas = pivot_sigmas(wan, "normal", 30, k, axis=axis)
            assert (stage["steps"], stage["sigma"]) == (len(sigmas) - 1, float(sigmas[0]))
            assert stage["snr"] == snr_of_sigma(wan, float(sigmas[0]))
        assert answer["k_axis"] == axis and "FLOW schedule at shift 8" in answer["schedule"]
    unknown = plan(browser_server.url, base_width=512, base_height=512, k_axis="snr")
    assert "sigma" not in unknown["stages"][1] and "no model is known" in unknown["schedule"]
