"""``GET /selfcascade/plan``: the stage plan for the web extension, from the one Python planner.

The browser shows the Self-Cascade KSampler's stages while the user edits it. It asks this route
instead of re-implementing the planner in JavaScript. Query (all optional): ``base_width``/
``base_height`` (pixels; leave both out when the base comes from an unknown latent), ``scale_by``,
``target_width``, ``target_height``, ``steps``, ``scheduler``, ``k``, ``later_k``, ``stage_steps``
and ``multiple`` (the model's size multiple, 8 unless known), as on the node; ``upscale=1`` plans
for Self-Cascade Upscale: the base is its input image (encoded, not sampled: 0 steps), and a target
not larger than it is one pass at the target size.

The answer is ``{"stages": [{"width", "height", "steps", "k"}, ...] or null, "high_res": [{"k",
"steps"}, ...], "notes", "schedule"}``: ``stages`` starts with the base (``k`` null); ``high_res``
is the first high-resolution stage's K and steps, then the later stages' when they differ. Settings
outside their limits, or that the planner rejects, answer ``{"error": message}`` with the message
of the check that refused them; that is an answer, not a failed request, so it comes with status 200
(the browser logs every 4xx as an error).

Every browser tab talks to the same single-process server, so nothing here may hold its event
loop: the query is checked against ``sampling/limits.py`` on the loop (microseconds, before any
parsing of long text), and the schedules (at most ``MAX_STEPS`` steps each, a bounded search) are
computed by ``answer_off_loop`` on the pack's one route thread under a deadline; a route of the
pack with more than arithmetic to do can use it the same way.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import comfy.model_sampling
from aiohttp import web

from ..sampling import limits
from ..sampling.cascade import CascadeSettings
from ..sampling.plan import plan_from_settings
from ..sampling.schedule import StopCheck, pivot_sigmas
from . import family_route

ROUTE = "/selfcascade/plan"
ROUTE_TIME_LIMIT_S = 5.0  # the longest a route answer may take; well above a plan at the limits (< 1 s idle)
SCHEDULE_NOTE = ("steps per stage follow the SD-style discrete schedule, as no model is known here; "
                 "the sampler cuts its own model's schedule when it runs")
TOO_SLOW = (f"the server could not plan these settings within {ROUTE_TIME_LIMIT_S:g} s (it may be busy); "
            "the plan is checked again when a setting changes, or lower steps or stage_steps")
PLAN_QUERY = (limits.BASE_WIDTH, limits.BASE_HEIGHT, *limits.CASCADE, limits.SIZE_MULTIPLE, limits.SCHEDULER,
              limits.UPSCALE_PLAN)

_route_thread: Optional[ThreadPoolExecutor] = None


class _DeadlinePassed(Exception):
    """Raised inside a route's work when its deadline has passed: the answer is no longer awaited."""


def _route_worker() -> ThreadPoolExecutor:
    """One thread for all of the pack's route work: requests queue behind each other instead of
    multiplying the CPU load, and a request that waited past its deadline is dropped unrun."""
    global _route_thread
    if _route_thread is None:
        _route_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfcascade-route")
    return _route_thread


async def answer_off_loop(compute: Callable[[StopCheck], dict], too_slow: str = TOO_SLOW,
                          time_limit_s: float = ROUTE_TIME_LIMIT_S) -> web.Response:
    """``compute(stop_check)`` on the route thread, answered as JSON within ``time_limit_s``.

    ``compute`` calls ``stop_check()`` between its steps; past the deadline that raises, so abandoned
    work ends too. A ``ValueError`` (the pack's input errors) is answered as ``{"error": message}``;
    so is running out of time (``too_slow``) and, logged with its traceback, any other failure.
    """
    deadline = time.monotonic() + time_limit_s

    def stop_check() -> None:
        if time.monotonic() > deadline:
            raise _DeadlinePassed

    job = asyncio.get_running_loop().run_in_executor(_route_worker(), compute, stop_check)
    try:
        answer = await asyncio.wait_for(job, time_limit_s)
    except (asyncio.TimeoutError, _DeadlinePassed):
        answer = {"error": too_slow}
    except ValueError as error:
        answer = {"error": str(error)}
    except Exception as error:  # a bug: log it for the server's owner, answer the browser all the same
        logging.exception("Self-Cascade: a route failed")
        answer = {"error": f"the server could not answer ({type(error).__name__}); its log has the details"}
    return web.json_response(answer)


def plan_response(settings: dict, stop_check: StopCheck) -> dict:
    """The JSON answer for settings already checked by ``limits.parse_query(query, PLAN_QUERY)``."""
    s = settings
    model_sampling = comfy.model_sampling.ModelSamplingDiscrete()  # SD1.x/SDXL's schedule: no model is known
    cascade = CascadeSettings(0, s["steps"], 1.0, "euler", s["scheduler"], s["k"], stage_steps=s["stage_steps"],
                              later_k=s["later_k"])
    ks = [cascade.k_of_stage(1)] + ([cascade.k_of_stage(2)] if cascade.k_of_stage(2) != cascade.k_of_stage(1) else [])
    steps_of_k = {k: len(pivot_sigmas(model_sampling, s["scheduler"], s["steps"], k, s["stage_steps"], stop_check)) - 1
                  for k in ks}
    answer = {"stages": None, "high_res": [{"k": k, "steps": steps_of_k[k]} for k in ks], "notes": [],
              "schedule": SCHEDULE_NOTE}
    if s["base_width"] > 0 and s["base_height"] > 0:
        upscale = s["upscale"] == 1
        plan = plan_from_settings(s["base_width"], s["base_height"], s["scale_by"], s["target_width"],
                                  s["target_height"], s["multiple"], limits.MAX_SIDE, single_pass=upscale)
        answer["stages"] = [{"width": plan.base.width, "height": plan.base.height, "steps": 0 if upscale else s["steps"],
                             "k": None}]
        answer["stages"] += [{"width": size.width, "height": size.height, "k": cascade.k_of_stage(index),
                              "steps": steps_of_k[cascade.k_of_stage(index)]}
                             for index, size in enumerate(plan.stages[1:], start=1)]
        answer["notes"] = list(plan.notes)
    return answer


async def get_plan(request: web.Request) -> web.Response:
    try:
        settings = limits.parse_query(request.query, PLAN_QUERY)
    except limits.InputLimitError as error:
        return web.json_response({"error": str(error)})
    return await answer_off_loop(lambda stop_check: plan_response(settings, stop_check))


def register_routes() -> bool:
    """Add this route and ``/selfcascade/family`` to the running ComfyUI server; False (nothing done) without one."""
    server = sys.modules.get("server")  # the host's server.py, imported by main.py before custom nodes
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return False
    instance.routes.get(ROUTE)(get_plan)
    instance.routes.get(family_route.ROUTE)(family_route.get_family)
    return True
