"""``GET /selfcascade/plan``: the stage plan for the web extension, from the one Python planner.

The browser shows the Self-Cascade KSampler's stages while the user edits it. It asks this route
instead of re-implementing the planner in JavaScript. Query (all optional except where noted):
``base_width``/``base_height`` (pixels; leave both out when the base comes from an unknown latent),
``scale_by``, ``target_width``, ``target_height``, ``steps``, ``scheduler``, ``k``, ``later_k``,
``stage_steps`` and ``multiple`` (the model's size multiple, 8 unless known), as on the node.

The answer is ``{"stages": [{"width", "height", "steps", "k"}, ...] or null, "high_res": [{"k",
"steps"}, ...], "notes", "schedule"}``: ``stages`` starts with the base (``k`` null); ``high_res``
is the first high-resolution stage's K and steps, then the later stages' when they differ. Settings the planner rejects answer ``{"error": message}`` with its own message; that
is an answer, not a failed request, so it comes with status 200 (the browser logs every 4xx as an error).
"""
from __future__ import annotations

import sys

import comfy.model_sampling
from aiohttp import web

from ..sampling.cascade import CascadeSettings
from ..sampling.plan import PlanError, plan_from_settings
from ..sampling.schedule import ScheduleError, pivot_sigmas
from . import family_route

ROUTE = "/selfcascade/plan"
SCHEDULE_NOTE = ("steps per stage follow the SD-style discrete schedule, as no model is known here; "
                 "the sampler cuts its own model's schedule when it runs")
# name -> (parser, default when absent); defaults are the Self-Cascade KSampler's
_FIELDS = {
    "base_width": (int, 0), "base_height": (int, 0), "scale_by": (float, 2.0), "target_width": (int, 0),
    "target_height": (int, 0), "steps": (int, 30), "scheduler": (str, "normal"), "k": (float, 0.7),
    "later_k": (float, 0.0), "stage_steps": (int, 0), "multiple": (int, 8),
}


def _settings(query) -> dict:
    settings = {}
    for name, (parse, default) in _FIELDS.items():
        raw = query.get(name, "")
        try:
            settings[name] = parse(raw) if raw != "" else default
        except ValueError:
            raise PlanError(f"{name} = '{raw}' is not a number.") from None
    return settings


def plan_response(query) -> dict:
    """The JSON answer for a query mapping (``request.query`` or a plain dict of strings)."""
    s = _settings(query)
    model_sampling = comfy.model_sampling.ModelSamplingDiscrete()  # SD1.x/SDXL's schedule: no model is known
    settings = CascadeSettings(0, s["steps"], 1.0, "euler", s["scheduler"], s["k"], stage_steps=s["stage_steps"],
                               later_k=s["later_k"])
    ks = [settings.k_of_stage(1)] + ([settings.k_of_stage(2)] if settings.k_of_stage(2) != settings.k_of_stage(1) else [])
    steps_of_k = {k: len(pivot_sigmas(model_sampling, s["scheduler"], s["steps"], k, s["stage_steps"])) - 1 for k in ks}
    answer = {"stages": None, "high_res": [{"k": k, "steps": steps_of_k[k]} for k in ks], "notes": [],
              "schedule": SCHEDULE_NOTE}
    if s["base_width"] > 0 and s["base_height"] > 0:
        plan = plan_from_settings(s["base_width"], s["base_height"], s["scale_by"], s["target_width"],
                                  s["target_height"], s["multiple"])
        answer["stages"] = [{"width": plan.base.width, "height": plan.base.height, "steps": s["steps"], "k": None}]
        answer["stages"] += [{"width": size.width, "height": size.height, "k": settings.k_of_stage(index),
                              "steps": steps_of_k[settings.k_of_stage(index)]}
                             for index, size in enumerate(plan.stages[1:], start=1)]
        answer["notes"] = list(plan.notes)
    return answer


async def get_plan(request: web.Request) -> web.Response:
    try:
        return web.json_response(plan_response(request.query))
    except (PlanError, ScheduleError) as error:
        return web.json_response({"error": str(error)})


def register_routes() -> bool:
    """Add this route and ``/selfcascade/family`` to the running ComfyUI server; False (nothing done) without one."""
    server = sys.modules.get("server")  # the host's server.py, imported by main.py before custom nodes
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    instance.routes.get(ROUTE)(get_plan)
    instance.routes.get(family_route.ROUTE)(family_route.get_family)
    return True
