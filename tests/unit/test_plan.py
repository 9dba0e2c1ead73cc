"""The stage planner, pinned: sizes, stage counts, rounding, limits."""
import pytest

from selfcascade.sampling.plan import PlanError, plan_stages, stage_count, StageSize, target_from_scale


def sizes(plan):
    return [(s.width, s.height) for s in plan.stages]


@pytest.mark.parametrize("base, target, expected", [
    ((512, 512), (1024, 1024), [(512, 512), (1024, 1024)]),                       # 4x area: R = 1
    ((512, 512), (2048, 2048), [(512, 512), (1024, 1024), (2048, 2048)]),         # 16x: R = 2
    ((512, 512), (4096, 4096), [(512, 512), (1024, 1024), (2048, 2048), (4096, 4096)]),  # 64x: R = 3
    ((1024, 576), (2048, 1152), [(1024, 576), (2048, 1152)]),                    # 16:9
    ((576, 1024), (2304, 4096), [(576, 1024), (1152, 2048), (2304, 4096)]),      # 9:16, two stages
    ((768, 256), (3072, 1024), [(768, 256), (1536, 512), (3072, 1024)]),         # 3:1
    ((1024, 1024), (1536, 1536), [(1024, 1024), (1536, 1536)]),                  # 2.25x area: one stage
])
def test_plans(base, target, expected):
    assert sizes(plan_stages(*base, *target)) == expected


def test_every_stage_at_most_doubles_each_side_and_lands_on_target():
    for base, target in [((512, 512), (1920, 1080)), ((512, 512), (4096, 512)), ((1024, 1024), (2048, 768)),
                         ((640, 448), (3000, 2000))]:
        plan = plan_stages(*base, *target)
        stages = plan.stages
        assert (stages[-1].width, stages[-1].height) == (round(target[0] / 8) * 8, round(target[1] / 8) * 8)
        for a, b in zip(stages, stages[1:]):
            assert b.width <= 2 * a.width + 8 and b.height <= 2 * a.height + 8


def test_stage_count_is_ceil_log4_of_area():
    assert stage_count(StageSize(512, 512), StageSize(1024, 1024)) == 1
    assert stage_count(StageSize(512, 512), StageSize(1032, 1032)) == 2
    assert stage_count(StageSize(512, 512), StageSize(2048, 2048)) == 2
    assert stage_count(StageSize(512, 512), StageSize(512, 512)) == 0


def test_odd_sizes_are_rounded_and_reported():
    plan = plan_stages(512, 512, 1001, 1003)
    assert (plan.target.width, plan.target.height) == (1000, 1000)
    assert any("rounded to 1000x1000" in note for note in plan.notes)
    plan16 = plan_stages(1024, 1024, 2050, 2040, multiple=16)
    assert (plan16.target.width, plan16.target.height) == (2048, 2048)


def test_target_at_or_below_base_is_a_single_stage():
    for target in [(512, 512), (256, 256), (1024, 256)]:
        plan = plan_stages(512, 512, *target)
        assert sizes(plan) == [(512, 512)]
        assert any("single stage" in note for note in plan.notes)


def test_limits_are_errors_before_compute():
    with pytest.raises(PlanError, match="16384 px side limit"):
        plan_stages(1024, 1024, 20000, 1024)
    with pytest.raises(PlanError, match="stages"):
        plan_stages(8, 8, 16384, 16384)
    with pytest.raises(PlanError, match="positive"):
        plan_stages(0, 512, 1024, 1024)


def test_scale_factor_targets():
    assert target_from_scale(512, 768, 2.0) == (1024, 1536)
    assert target_from_scale(1024, 1024, 1.5, 16) == (1536, 1536)
    with pytest.raises(PlanError, match="above 0"):
        target_from_scale(512, 512, 0.0)
