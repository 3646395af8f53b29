"""employment.bpmn: 条例18 employment help, §2.9 placement practice (care centre, matching, 1/3/6-month follow-ups)."""

from datetime import UTC, datetime, timedelta

import pytest

from app import engine
from app.core.db import transaction
from app.engine.models import InstanceStatus
from tests.workflows.conftest import WORKFLOWS
from tests.workflows.conftest import sent_payloads as messages

ASSESSMENT = {"skills": "厨师 cook", "health": "healthy", "work_capacity": "able", "wants_training": False}
MATCH = {"placement_site_type": "sunshine_station", "placement_site": "拱北阳光驿站", "position": "厨工"}


def open_employment(flow, case):
    return sorted(i.element_id for i in flow.items(case) if i.process_key == "employment")


def statuses(flow, case):
    return [i.status for i in flow.instances(case, "employment")]


def start_employment(flow, payload=None):
    case = flow.new_case()
    flow.send(case, "employment_requested", payload or {})
    return case


def place(flow, case, placed_on="2026-03-02", assess=True):
    if assess:
        flow.complete("assess_needs", ASSESSMENT, case)
    flow.complete("match_placement", MATCH, case)
    flow.complete("record_placement", {"placed_on": placed_on, "contract_signed": True, "monthly_income": 2800}, case)


def follow_up_timer(flow, case):
    [timer] = [t for t in flow.waiting_timers(case) if t.element_id == "wait_follow_up"]
    return timer


def advance_to(flow, when: datetime) -> int:
    """Move the clock to ``when`` (and let the worker run); returns timers fired."""
    return flow.advance(seconds=(when - flow.clock.now()).total_seconds())


def reach_follow_up(flow, case, due: datetime):
    """Wait until the follow-up falls due: nothing before, the follow-up task right after."""
    assert follow_up_timer(flow, case).due_at == due
    assert advance_to(flow, due - timedelta(minutes=1)) == 0
    assert advance_to(flow, due + timedelta(minutes=1)) == 1
    assert open_employment(flow, case) == ["follow_up"]


def test_tiaoli18_needs_assessment_then_matching_and_placement(flow):
    """条例18: employment help starts with a needs assessment; able people are matched and placed."""
    case = start_employment(flow)
    assessment = flow.item("assess_needs", case)
    assert assessment.candidate_role == "caseworker" and assessment.legal_basis == "条例18"
    assert assessment.due_at == flow.clock.now() + timedelta(days=15)
    flow.complete("assess_needs", ASSESSMENT, case)
    match = flow.item("match_placement", case)
    assert match.candidate_role == "cadre" and match.legal_basis == "条例18"
    assert {o["id"] for o in next(f for f in match.form if f["id"] == "placement_site_type")["options"]} >= {
        "sunshine_station",
        "placement_base",
    }
    flow.complete("match_placement", MATCH, case)
    flow.complete("record_placement", {"placed_on": "2026-03-02"}, case)

    facts = flow.reload(case).facts
    assert facts["employed"] is True and facts["employment_status"] == "placed"
    assert facts["placement_site"] == "拱北阳光驿站" and facts["placement_site_type"] == "sunshine_station"
    assert facts["placed_on"] == "2026-03-02" and facts["placement_attempt"] == 1
    assert facts["retained_months"] == 0 and facts["follow_up_months"] == [1, 3, 6]
    assert follow_up_timer(flow, case).due_at == datetime(2026, 4, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("health", ["ill", "disabled"])
def test_dehong_care_centre_for_people_who_cannot_work(flow, health):
    """Dehong 关爱中心 (条例18 social assistance): ill or disabled people go to a care centre, not to work."""
    case = start_employment(flow)
    flow.complete("assess_needs", {"health": health, "work_capacity": "unable"}, case)
    referral = flow.item("refer_care_centre", case)
    assert referral.candidate_role == "caseworker" and referral.legal_basis == "条例18"
    flow.complete("refer_care_centre", {"care_centre": "德宏关爱中心", "care_referred_on": "2026-03-04"}, case)

    facts = flow.reload(case).facts
    assert facts["employment_status"] == "care_centre" and facts["employed"] is False
    assert facts["care_centre"] == "德宏关爱中心" and facts["work_capacity"] == "unable"
    assert "placement_site" not in facts
    assert statuses(flow, case) == [InstanceStatus.COMPLETED]
    assert flow.waiting_timers(case) == []


def test_placed_and_retained_through_1_3_6_month_follow_ups(flow):
    """§2.9: follow-ups at 1, 3 and 6 months after placement; retained at each → stable employment."""
    case = start_employment(flow)
    place(flow, case, placed_on="2026-03-02")
    for months, due in [(1, datetime(2026, 4, 2, 1, tzinfo=UTC)), (3, datetime(2026, 6, 2, 1, tzinfo=UTC))]:
        reach_follow_up(flow, case, due)
        item = flow.item("follow_up", case)
        assert item.candidate_role == "cadre" and item.legal_basis == "条例18"
        assert item.due_at == flow.clock.now() + timedelta(days=7)
        flow.complete("follow_up", {"job_status": "retained", "follow_up_notes": "稳定 stable"}, case)
        facts = flow.reload(case).facts
        assert facts["retained_months"] == months and facts["employment_status"] == "retained"
        assert statuses(flow, case) == [InstanceStatus.RUNNING]

    reach_follow_up(flow, case, datetime(2026, 9, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "retained"}, case)
    facts = flow.reload(case).facts
    assert facts["retained_months"] == 6 and facts["employed"] is True and facts["last_follow_up_month"] == 6
    assert statuses(flow, case) == [InstanceStatus.COMPLETED]
    assert messages(case, "employment_requested") == [{}]  # only the request that started it
    assert flow.waiting_timers(case) == []


def test_job_lost_at_3_month_follow_up_starts_re_placement(flow):
    """§2.9: lost job → re-placement, as a fresh instance (employment_requested, attempt 2) that goes to matching."""
    case = start_employment(flow)
    place(flow, case, placed_on="2026-03-02")
    reach_follow_up(flow, case, datetime(2026, 4, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "retained"}, case)
    reach_follow_up(flow, case, datetime(2026, 6, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "lost", "job_lost_reason": "旷工被辞退 dismissed"}, case)

    facts = flow.reload(case).facts
    assert facts["employed"] is False and facts["employment_status"] == "lost"
    assert facts["retained_months"] == 1 and facts["last_follow_up_month"] == 3
    assert facts["job_lost_reason"] == "旷工被辞退 dismissed"
    assert messages(case, "employment_requested")[1:] == [
        {"attempt": 2, "follow_up_months": "1,3,6", "previous_site": "拱北阳光驿站"}
    ]
    first, second = flow.instances(case, "employment")
    assert first.status == InstanceStatus.COMPLETED and second.status == InstanceStatus.RUNNING
    assert second.parent_instance_id == first.id
    assert open_employment(flow, case) == ["match_placement"]  # no second needs assessment

    flow.complete("match_placement", {"placement_site_type": "placement_base", "placement_site": "中山安置基地"}, case)
    flow.complete("record_placement", {"placed_on": "2026-06-10"}, case)
    facts = flow.reload(case).facts
    assert facts["placement_attempt"] == 2 and facts["placement_site"] == "中山安置基地"
    assert facts["employed"] is True and facts["retained_months"] == 0
    assert follow_up_timer(flow, case).due_at == datetime(2026, 7, 10, 1, tzinfo=UTC)


def test_repeated_job_loss_goes_to_supervisor_review_not_another_placement(flow):
    """Bounded re-placement: the last allowed attempt lost → the supervisor reviews the plan."""
    case = start_employment(flow, {"attempt": 3})
    assert open_employment(flow, case) == ["match_placement"]
    place(flow, case, placed_on="2026-03-02", assess=False)
    reach_follow_up(flow, case, datetime(2026, 4, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "lost"}, case)

    review = flow.item("review_repeated_loss", case)
    assert review.candidate_role == "supervisor" and review.legal_basis == "条例18"
    assert messages(case, "employment_requested") == [{"attempt": 3}]  # no fourth attempt
    flow.complete("review_repeated_loss", {"review_decision": "转关爱中心 refer to care"}, case)
    assert statuses(flow, case) == [InstanceStatus.COMPLETED]


def test_follow_up_overdue_escalates_to_supervisor(flow):
    """A follow-up not done within 7 days of falling due → supervisor; the follow-up stays open."""
    case = start_employment(flow)
    place(flow, case)
    reach_follow_up(flow, case, datetime(2026, 4, 2, 1, tzinfo=UTC))
    [overdue] = [t for t in flow.waiting_timers(case) if t.element_id == "follow_up_overdue"]
    assert overdue.due_at == flow.clock.now() + timedelta(days=7)
    assert flow.advance(days=6, hours=23) == 0
    assert flow.advance(hours=2) == 1
    assert open_employment(flow, case) == ["escalate_follow_up", "follow_up"]
    escalation = flow.item("escalate_follow_up", case)
    assert escalation.candidate_role == "supervisor" and escalation.legal_basis == "条例18"

    flow.complete("escalate_follow_up", {"escalation_instruction": "本周内完成随访 follow up this week"}, case)
    flow.complete("follow_up", {"job_status": "retained"}, case)
    assert flow.reload(case).facts["retained_months"] == 1
    # the next follow-up is still planned from the start date, not from the late follow-up
    assert follow_up_timer(flow, case).due_at == datetime(2026, 6, 2, 1, tzinfo=UTC)


def test_follow_up_months_from_the_request_are_honoured(flow):
    """Provincial practice is configuration: a request may carry its own follow-up months."""
    case = start_employment(flow, {"follow_up_months": "4, 2"})
    place(flow, case, placed_on="2026-03-02")
    assert flow.reload(case).facts["follow_up_months"] == [2, 4]
    reach_follow_up(flow, case, datetime(2026, 5, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "retained"}, case)
    reach_follow_up(flow, case, datetime(2026, 7, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "retained"}, case)
    assert flow.reload(case).facts["retained_months"] == 4
    assert statuses(flow, case) == [InstanceStatus.COMPLETED]


def test_province_changes_the_default_follow_up_months_by_redeploying(flow):
    """A province edits employment_settings (default_follow_up_months) and deploys a new version."""
    source = (WORKFLOWS / "employment.bpmn").read_text(encoding="utf-8")
    assert 'default_follow_up_months = "1,3,6"' in source
    changed = source.replace('default_follow_up_months = "1,3,6"', 'default_follow_up_months = "2,12"')
    with transaction():
        result = engine.deploy([engine.SourceFile(name="employment.bpmn", content=changed)])
    assert [d.version for d in result.deployed] == [2]

    case = start_employment(flow)
    place(flow, case, placed_on="2026-03-02")
    assert flow.reload(case).facts["follow_up_months"] == [2, 12]
    reach_follow_up(flow, case, datetime(2026, 5, 2, 1, tzinfo=UTC))
    flow.complete("follow_up", {"job_status": "retained"}, case)
    assert follow_up_timer(flow, case).due_at == datetime(2027, 3, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("placed_on", "months", "due"),
    [
        ("2026-03-31", "1", datetime(2026, 4, 30, 1, tzinfo=UTC)),  # no 31 April: the month's last day
        ("2026-11-30", "3", datetime(2027, 2, 28, 1, tzinfo=UTC)),  # across the year end
        ("2026-12-15", "1", datetime(2027, 1, 15, 1, tzinfo=UTC)),
        ("2027-01-31", "1", datetime(2027, 2, 28, 1, tzinfo=UTC)),
    ],
)
def test_follow_up_falls_on_the_same_day_calendar_months_later(flow, placed_on, months, due):
    case = start_employment(flow, {"follow_up_months": months})
    place(flow, case, placed_on=placed_on)
    assert follow_up_timer(flow, case).due_at == due


@pytest.mark.parametrize("months", ["0,3", "1,30", "1,2,3,4,5,6,7", "x"])
def test_bad_follow_up_months_stop_with_an_incident(flow, months):
    """At most 6 follow-ups, each 1–24 months: the follow-up loop stays bounded."""
    case = start_employment(flow, {"follow_up_months": months})
    [instance] = flow.instances(case, "employment")
    assert instance.status == InstanceStatus.INCIDENT
    assert open_employment(flow, case) == []


def test_placement_recorded_late_opens_the_overdue_follow_up_at_once(flow):
    """A start date already more than a month back: the 1-month follow-up is due now."""
    case = start_employment(flow)
    place(flow, case, placed_on="2026-01-15")
    flow.run_worker()
    assert open_employment(flow, case) == ["follow_up"]
    flow.complete("follow_up", {"job_status": "retained"}, case)
    assert follow_up_timer(flow, case).due_at == datetime(2026, 4, 15, 1, tzinfo=UTC)
