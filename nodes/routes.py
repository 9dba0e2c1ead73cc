"""``GET /selfcascade/plan``: the stage plan for the web extension, from the one Python planner.

The browser shows the Self-Cascade KSampler's stages while the user edits it. It asks this route
instead of re-implementing the planner in JavaScript. Query (all optional except where noted):
``base_width``/``base_height`` (pixels; leave both out when the base comes from an unknown latent),
``scale_by``, ``target_width``, ``target_height``, ``steps``, ``scheduler``, ``pivot_strength``,
``stage_steps`` and ``multiple`` (the model's size multiple, 8 unless known), as on the node.

The answer is ``{"stages": [{"width", "height", "steps"}, ...] or null, "stage_steps", "notes",
"schedule"}``. Settings the planner rejects answer ``{"error": message}`` with its own message; that
is an answer, not a failed request, so it comes with status 200 (the browser logs every 4xx as an error).
"""
from __future__ import annotations

import sys

import comfy.model_sampling
from aiohttp import web

from ..sampling.plan import PlanError, plan_from_settings
from ..sampling.schedule import ScheduleError, pivot_sigmas

ROUTE = "/selfcascade/plan"
SCHEDULE_NOTE = ("steps per stage follow the SD-style discrete schedule, as no model is known here; "
                 "the sampler cuts its own model's schedule when it runs")
# name -> (parser, default when absent); defaults are the Self-Cascade KSampler's
_FIELDS = {
    "base_width": (int, 0), "base_height": (int, 0), "scale_by": (float, 2.0), "target_width": (int, 0),
    "target_height": (int, 0), "steps": (int, 30), "scheduler": (str, "normal"), "pivot_strength": (float, 0.7),
    "stage_steps": (int, 0), "multiple": (int, 8),
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
    stage_steps = len(pivot_sigmas(model_sampling, s["scheduler"], s["steps"], s["pivot_strength"],
                                   s["stage_steps"])) - 1
    answer = {"stages": None, "stage_steps": stage_steps, "notes": [], "schedule": SCHEDULE_NOTE}
    if s["base_width"] > 0 and s["base_height"] > 0:
        plan = plan_from_settings(s["base_width"], s["base_height"], s["scale_by"], s["target_width"],
                                  s["target_height"], s["multiple"])
        answer["stages"] = [{"width": size.width, "height": size.height,
                             "steps": s["steps"] if index == 0 else stage_steps}
                            for index, size in enumerate(plan.stages)]
        answer["notes"] = list(plan.notes)
    return answer


async def get_plan(request: web.Request) -> web.Response:
    try:
        return web.json_response(plan_response(request.query))
    except (PlanError, ScheduleError) as error:
        return web.json_response({"error": str(error)})


def register_routes() -> bool:
    """Add the route to the running ComfyUI server; False (nothing done) in a process without one."""
    server = sys.modules.get("server")  # the host's server.py, imported by main.py before custom nodes
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    instance.routes.get(ROUTE)(get_plan)
    return True
