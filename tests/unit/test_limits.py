"""The one definition of input limits: query parsing, value checks, file names, and the node schemas that read it."""
import math

import numpy as np
import pytest

from selfcascade.nodes.cascade_nodes import PivotReschedule, SelfCascadeKSampler
from selfcascade.nodes.routes import PLAN_QUERY
from selfcascade.nodes.upscale_nodes import SelfCascadeUpscale
from selfcascade.sampling import limits
from selfcascade.sampling.limits import InputLimitError, check_file_name, parse_query


def test_absent_or_empty_query_values_take_the_nodes_defaults():
    settings = parse_query({"steps": "50", "k": "0.5", "scale_by": "", "unknown": "ignored"}, PLAN_QUERY)
    assert settings["steps"] == 50 and settings["k"] == 0.5
    assert settings["scale_by"] == 2.0 and settings["stage_steps"] == 0 and settings["scheduler"] == "normal"
    assert "unknown" not in settings


@pytest.mark.parametrize("name, raw, message", [
    ("steps", "100000", "steps = 100000 is outside its limits; choose 1 to 10000."),
    ("steps", "1000000", "steps = 1000000 is outside its limits; choose 1 to 10000."),
    ("stage_steps", "1000000000", "stage_steps = 1000000000 is outside its limits; choose 0 to 10000."),
    ("steps", "many", "steps = 'many' is not a whole number; choose 1 to 10000."),
    ("steps", "30.5", "steps = '30.5' is not a whole number"),
    ("multiple", "0", "multiple = 0 is outside its limits; choose 1 to 64."),
    ("multiple", "-8", "multiple = -8 is outside its limits"),
    ("scale_by", "inf", "scale_by = inf is not a finite number; choose 0.0 to 16.0."),
    ("scale_by", "1e308", "scale_by = 1e+308 is outside its limits"),
    ("k", "nan", "k = nan is not a finite number; choose 0.01 to 1.0."),
    ("k", "1e-300", "k = 1e-300 is outside its limits; choose 0.01 to 1.0."),
    ("base_width", "16385", "base_width = 16385 is outside its limits; choose 0 to 16384."),
])
def test_values_outside_their_limits_are_refused_naming_the_setting_and_its_range(name, raw, message):
    with pytest.raises(InputLimitError) as refused:
        parse_query({name: raw}, PLAN_QUERY)
    assert message in str(refused.value)


def test_long_text_is_refused_by_its_length_before_it_is_parsed():
    with pytest.raises(InputLimitError) as refused:
        parse_query({"steps": "9" * 4000}, PLAN_QUERY)  # int() of it would parse; the limit never lets it get there
    assert "is too long for a number" in str(refused.value) and "(4000 characters)" in str(refused.value)
    assert len(str(refused.value)) < 120
    with pytest.raises(InputLimitError, match="scheduler is 65 characters long"):
        parse_query({"scheduler": "x" * 65}, PLAN_QUERY)


@pytest.mark.parametrize("limit, value", [(limits.K, math.nan), (limits.STEPS, 2.5), (limits.STEPS, True),
                                          (limits.SCALE_BY, -math.inf), (limits.TARGET_WIDTH, 16392),
                                          (limits.K, "0.7")])
def test_values_a_prompt_can_carry_past_the_hosts_min_max_are_refused(limit, value):
    with pytest.raises(InputLimitError, match=f"^{limit.name} = "):
        limit.check(value)


@pytest.mark.parametrize("limit, value", [(limits.STEPS, 30), (limits.TARGET_WIDTH, 1024.0), (limits.K, 1),
                                          (limits.K, np.float32(0.5)), (limits.STEPS, np.int64(20))])
def test_numbers_linked_nodes_may_send_pass_as_they_are(limit, value):
    assert limit.check(value) is value


def test_node_schemas_take_their_bounds_from_the_limits():
    sampler = SelfCascadeKSampler.INPUT_TYPES()["required"]
    reschedule = PivotReschedule.INPUT_TYPES()["required"]
    for limit in limits.CASCADE:
        options = sampler[limit.name][1]
        assert (options["default"], options["min"], options["max"]) == (limit.default, limit.low, limit.high)
    for limit in (limits.STEPS, limits.K, limits.STAGE_STEPS):
        options = reschedule[limit.name][1]
        assert (options["default"], options["min"], options["max"]) == (limit.default, limit.low, limit.high)
    assert {limit.name for limit in limits.CASCADE} <= {field.name for field in PLAN_QUERY}


def test_upscale_takes_the_cascade_inputs_with_the_same_bounds():
    upscale = SelfCascadeUpscale.INPUT_TYPES()["required"]
    for limit in limits.CASCADE:
        assert (upscale[limit.name][1]["min"], upscale[limit.name][1]["max"]) == (limit.low, limit.high)
    assert upscale["k"][1]["default"] == 0.5  # its own default: the first pivot is the user's image


def test_sides_are_bounded_by_the_hosts_max_resolution():
    import nodes

    assert limits.MAX_SIDE == nodes.MAX_RESOLUTION
    assert {limits.TARGET_WIDTH.high, limits.TARGET_HEIGHT.high, limits.BASE_WIDTH.high} == {nodes.MAX_RESOLUTION}


@pytest.mark.parametrize("name", ["sd15-2x", "a", "A.b_c-1", "x" * 100, "v1.5"])
def test_plain_file_names_are_accepted(name):
    assert check_file_name(name, "save name") == name


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "a\\b", "..", "a\x00b", "a\nb", "x" * 101, "ä", "a b"])
def test_other_file_names_are_refused_stating_the_rule(name):
    with pytest.raises(InputLimitError) as refused:
        check_file_name(name, "save name")
    assert "is not a plain file name: use 1 to 100 characters from A-Z, a-z, 0-9" in str(refused.value)
    assert "\x00" not in str(refused.value) and "\n" not in str(refused.value)
    assert len(str(refused.value)) < 300
