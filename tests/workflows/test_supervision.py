"""supervision.bpmn: one cycle of dynamic control (动态管控, 法35/条例19) and its decision tables.

One cycle = points (scoring.dmn) → tier (tier.dmn) → interval (test_schedule.dmn) → drug test and face-to-face
check → violations reported (条例20/21) → the next cycle starts as a new instance (supervision_cycle, cycle + 1).
"""

from datetime import date, timedelta

import pytest

from app import engine
from app.cases.models import CaseStatus
from app.core.db import transaction
from app.engine.models import InstanceStatus
from tests.workflows.conftest import sent_payloads as messages

BASELINE = "基础分 baseline"
STABLE = {"negative_streak": 3}  # three negative tests in a row and no points: blue
YEAR_1 = date(2026, 1, 5)  # the test clock starts on 2026-03-02


# --- helpers ------------------------------------------------------------------------------------------------


def start(flow, case, cycle=1):
    flow.send(case, "supervision_cycle", {"cycle": cycle})
    assert flow.incidents() == []


def check(flow, case, result="negative", method="in_person", **answers):
    flow.complete("drug_test_check", {"result": result, "method": method, **answers}, case=case)
    assert flow.incidents() == []


def violations(case):
    return messages(case, "violation_reported")


def sent_names(flow, case):
    return [event.payload["name"] for event in flow.audit("message_sent", case)]


def cycles(flow, case):
    """The ``cycle`` number each supervision_cycle message carried."""
    return [payload["cycle"] for payload in messages(case, "supervision_cycle")]


def open_tasks(flow, case):
    """Open work of this diagram (the violation process may open its own work for the reports sent here)."""
    return sorted(item.element_id for item in flow.items(case) if item.process_key == "supervision")


def fired(flow, case):
    """Element ids of this diagram's timers that fired, in order."""
    ours = {i.id for i in flow.instances(case, "supervision")}
    return [e.payload["element_id"] for e in flow.audit("timer_fired", case) if e.instance_id in ours]


def cycle_timers(flow, case):
    """Waiting timers of this diagram's instances: element id -> (due at, interrupting)."""
    ours = {i.id for i in flow.instances(case, "supervision")}
    return {t.element_id: (t.due_at, t.interrupting) for t in flow.waiting_timers(case) if t.instance_id in ours}


def running_cycles(flow, case):
    return [i for i in flow.instances(case, "supervision") if i.status == InstanceStatus.RUNNING]


def supervised_case(flow, **fields):
    fields.setdefault("stage", "supervision")
    fields.setdefault("term_started_on", YEAR_1)
    return flow.new_case(**fields)


# --- the cycle chain ----------------------------------------------------------------------------------------


def test_fa35_negative_test_starts_the_next_cycle_with_cycle_plus_one(flow):
    """法35/条例19: a negative test ends the cycle; the next one starts as a new short instance (cycle + 1)."""
    case = supervised_case(flow)
    start(flow, case, cycle=4)
    check(flow, case, "negative", tested_on="2026-03-02", notes="谈话正常")

    first, second = flow.instances(case, "supervision")
    assert first.status == InstanceStatus.COMPLETED
    assert second.status == InstanceStatus.RUNNING
    assert second.parent_instance_id == first.id
    assert cycles(flow, case) == [4, 5]
    assert violations(case) == []
    assert open_tasks(flow, case) == ["drug_test_check"]
    facts = flow.reload(case).facts
    assert facts["last_test_result"] == "negative"
    assert facts["last_test_on"] == "2026-03-02"
    assert facts["negative_streak"] == 1


def test_fa35_check_is_a_caseworker_task_due_at_the_interval(flow):
    """法35/条例19: the check is the caseworker's, cites its article and is due when the interval runs out."""
    case = supervised_case(flow)
    start(flow, case)
    item = flow.item("drug_test_check", case)
    assert item.candidate_role == "caseworker"
    assert item.legal_basis == "法35/条例19"
    assert item.due_at == flow.clock.now() + timedelta(days=30)
    fields = {f["id"]: f for f in item.form}
    assert [o["id"] for o in fields["result"]["options"]] == ["negative", "positive", "refused", "missed"]
    assert [o["id"] for o in fields["method"]["options"]] == ["in_person", "remote"]
    assert fields["test_photo"]["type"] == "file"


def test_chongqing_remote_check_in_with_photo_is_recorded(flow):
    """Chongqing app: a remote check-in with an uploaded home-test photo counts as the cycle's test."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "negative", method="remote", test_photo="uploads/selftest-0302.jpg")
    assert cycles(flow, case) == [1, 2]
    assert violations(case) == []
    completed = flow.audit("task_completed", case)[-1]
    assert completed.payload["data"]["test_photo"] == "uploads/selftest-0302.jpg"
    assert completed.payload["data"]["method"] == "remote"


def test_tiaoli21_positive_test_reports_drug_use(flow):
    """条例21 / 法38: a positive test is drug use during the term: reported with evidence, and the cycle goes on."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "positive", tested_on="2026-03-02", notes="吗啡阳性")

    assert "violation_reported" in sent_names(flow, case)
    [report] = violations(case)
    assert report["violation_kind"] == "drug_use"
    assert report["cycle"] == 1
    assert "positive" in report["evidence"] and "吗啡阳性" in report["evidence"]
    assert cycles(flow, case) == [1, 2]
    assert flow.reload(case).facts["positive_tests"] == 1


@pytest.mark.parametrize("result", ["refused", "missed"])
def test_tiaoli20_refused_or_missed_test_is_reported_as_refusal(flow, result):
    """条例20: evading or refusing a test is reported (kind refusal) so the violation process can count to 3."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, result, notes="拒绝采样" if result == "refused" else "联系不上")

    [report] = violations(case)
    assert report["violation_kind"] == "refusal"
    assert result in report["evidence"]
    assert cycles(flow, case) == [1, 2]
    assert flow.reload(case).facts["negative_streak"] == 0


# --- clocks -------------------------------------------------------------------------------------------------


def test_fa35_overdue_check_escalates_to_the_supervisor(flow):
    """法35/条例19: a check not done by its due day opens an overdue work order for the supervisor (禁毒办)."""
    case = supervised_case(flow)
    start(flow, case)
    flow.advance(days=29)
    assert fired(flow, case) == []
    assert open_tasks(flow, case) == ["drug_test_check"]

    flow.advance(days=1, minutes=1)
    assert fired(flow, case) == ["check_overdue"]
    assert open_tasks(flow, case) == ["drug_test_check", "overdue_check"]
    assert flow.item("overdue_check", case).candidate_role == "supervisor"

    check(flow, case, "negative")  # late, within the grace period: an ordinary check
    assert violations(case) == []
    assert cycles(flow, case) == [1, 2]
    flow.complete("overdue_check", {"follow_up": "已督促社工上门", "caseworker_contacted": True}, case=case)
    assert [i.status for i in flow.instances(case, "supervision")] == [InstanceStatus.COMPLETED, InstanceStatus.RUNNING]


def test_tiaoli20_check_not_done_within_grace_period_counts_as_missed(flow):
    """条例20: no check by the end of the grace period (30 + 7 days for yellow): missed, reported as refusal."""
    case = supervised_case(flow)
    start(flow, case)
    flow.advance(days=30, minutes=1)
    flow.advance(days=6)
    assert fired(flow, case) == ["check_overdue"]
    assert violations(case) == []

    flow.advance(days=1)
    assert fired(flow, case) == ["check_overdue", "check_missed"]
    [report] = violations(case)
    assert report["violation_kind"] == "refusal"
    assert "missed" in report["evidence"]
    assert flow.reload(case).facts["last_test_result"] == "missed"
    assert [e.payload["element_id"] for e in flow.audit("task_cancelled", case)] == ["drug_test_check"]
    # the supervisor's work order stays open; the next cycle has started
    assert open_tasks(flow, case) == ["drug_test_check", "overdue_check"]
    assert cycles(flow, case) == [1, 2]
    assert flow.incidents() == []


def test_chongqing_red_tier_is_checked_every_10_days(flow):
    """Chongqing 三色: after a positive test the person is red and seen face-to-face every 10 days (每旬)."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "positive")

    assert flow.reload(case).tier == "red"
    item = flow.item("drug_test_check", case)
    assert item.due_at == flow.clock.now() + timedelta(days=10)
    assert cycle_timers(flow, case) == {
        "check_overdue": (flow.clock.now() + timedelta(days=10), False),
        "check_missed": (flow.clock.now() + timedelta(days=13), True),
    }
    flow.advance(days=10, minutes=1)
    assert fired(flow, case) == ["check_overdue"]
    assert "overdue_check" in open_tasks(flow, case)


# --- leave of the county ------------------------------------------------------------------------------------


def test_fa35_unapproved_absence_is_reported_with_its_days(flow):
    """法35/条例19, 条例20: leaving the county 3+ days without a written, approved report is an absence."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "negative", left_county=True)
    assert open_tasks(flow, case) == ["leave_report"]
    assert flow.item("leave_report", case).legal_basis == "法35/条例19"

    flow.complete("leave_report", {"days_away": 12, "destination": "昆明", "written_report": False}, case=case)
    [report] = violations(case)
    assert report["violation_kind"] == "absence"
    assert report["absence_days"] == 12
    assert "昆明" in report["evidence"]
    assert cycles(flow, case) == [1, 2]


@pytest.mark.parametrize(
    ("days_away", "written_report", "leave_approved"),
    [(5, True, True), (2, False, False)],
    ids=["reported_and_approved", "under_3_days"],
)
def test_fa35_reported_or_short_leave_is_no_violation(flow, days_away, written_report, leave_approved):
    """法35/条例19: a written, approved report, or a trip under 3 days, is no violation."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "negative", left_county=True)
    flow.complete(
        "leave_report",
        {
            "days_away": days_away,
            "destination": "广州",
            "written_report": written_report,
            "leave_approved": leave_approved,
        },
        case=case,
    )
    assert violations(case) == []
    assert cycles(flow, case) == [1, 2]


def test_fa35_positive_test_and_absence_in_one_cycle_are_both_reported(flow):
    """条例20/21: one cycle can report drug use and an unapproved absence; each is its own event."""
    case = supervised_case(flow)
    start(flow, case)
    check(flow, case, "positive", left_county=True)
    flow.complete("leave_report", {"days_away": 4, "destination": "深圳"}, case=case)
    assert [v["violation_kind"] for v in violations(case)] == ["drug_use", "absence"]
    assert cycles(flow, case) == [1, 2]


# --- cases not under supervision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        (CaseStatus.SUSPENDED, "supervision"),
        (CaseStatus.CLOSED, "supervision"),
        (CaseStatus.OPEN, "isolation"),
    ],
    ids=["suspended", "closed", "other_stage"],
)
def test_tiaoli24_case_not_under_supervision_ends_the_cycle_without_a_next_one(flow, status, stage):
    """条例24: a suspended (中止) or closed case, or one past supervision, gets no check and no next cycle."""
    case = supervised_case(flow, status=status, stage=stage)
    start(flow, case)
    [instance] = flow.instances(case, "supervision")
    assert instance.status == InstanceStatus.COMPLETED
    assert open_tasks(flow, case) == []
    assert cycles(flow, case) == [1]
    assert flow.reload(case).tier is None


def test_rehabilitation_stage_is_supervised_too(flow):
    """法48 / 条例37–40: community rehabilitation has the same check-ins as community treatment."""
    case = supervised_case(flow, stage="rehabilitation")
    start(flow, case)
    assert open_tasks(flow, case) == ["drug_test_check"]


def test_tiaoli24_check_falling_due_while_suspended_is_not_counted(flow):
    """条例24: when the case is suspended mid-cycle, the overdue and missed clocks count nothing and stop."""
    case = supervised_case(flow)
    start(flow, case)
    with transaction():
        flow.reload(case).status = CaseStatus.SUSPENDED
    flow.advance(days=40)
    assert fired(flow, case) == ["check_overdue", "check_missed"]

    assert violations(case) == []
    assert open_tasks(flow, case) == []
    assert cycles(flow, case) == [1]
    assert [i.status for i in flow.instances(case, "supervision")] == [InstanceStatus.COMPLETED]
    assert cycle_timers(flow, case) == {}


def resume(flow, case, days_suspended):
    """条例24 as closure does it: suspend, and on release reopen the case and start supervision again (cycle 1)."""
    with transaction():
        flow.reload(case).status = CaseStatus.SUSPENDED
    flow.advance(days=days_suspended)
    with transaction():
        flow.reload(case).status = CaseStatus.OPEN
    start(flow, case, cycle=1)


def test_tiaoli24_resumed_term_supersedes_the_unfinished_cycle(flow):
    """条例24: resumed within the old cycle, the old check is neither escalated nor counted as missed."""
    case = supervised_case(flow)
    start(flow, case)  # due day 30, missed on day 37
    flow.advance(days=5)
    resume(flow, case, days_suspended=5)  # new cycle on day 10: due day 40, missed day 47
    old, new = running_cycles(flow, case)
    assert len([i for i in flow.items(case) if i.element_id == "drug_test_check"]) == 2

    flow.advance(days=27, minutes=1)  # day 37: the old cycle's clocks have run out
    assert fired(flow, case) == ["check_overdue", "check_missed"]
    assert violations(case) == []
    assert running_cycles(flow, case) == [new]
    assert open_tasks(flow, case) == ["drug_test_check"]
    assert cycles(flow, case) == [1, 1]

    check(flow, case, "negative")
    assert cycles(flow, case) == [1, 1, 2]


def test_tiaoli24_superseded_cycle_done_late_starts_no_second_chain(flow):
    """条例24: a check of a superseded cycle still counts, but only the current cycle starts the next one."""
    case = supervised_case(flow)
    start(flow, case)
    resume(flow, case, days_suspended=3)
    old, new = running_cycles(flow, case)
    [old_item] = [i for i in flow.items(case) if i.instance_id == old.id]
    with transaction():
        engine.complete_work_item(old_item.id, {"result": "refused", "method": "in_person"})

    assert [v["violation_kind"] for v in violations(case)] == ["refusal"]  # the test was refused: it counts
    assert cycles(flow, case) == [1, 1]  # ... but no second chain
    assert running_cycles(flow, case) == [new]
    check(flow, case, "negative")
    assert cycles(flow, case) == [1, 1, 2]
    assert len(running_cycles(flow, case)) == 1


# --- decision tables, row by row ----------------------------------------------------------------------------


SCORING_ROWS = [
    ("score_baseline", {}, {}, [], 0),
    ("score_last_positive", {"last_test_result": "positive"}, {}, ["近期尿检阳性 recent positive test"], 40),
    ("score_last_missed", {"last_test_result": "missed"}, {}, ["近期漏检/拒检 recent missed or refused test"], 20),
    ("score_last_refused", {"last_test_result": "refused"}, {}, ["近期漏检/拒检 recent missed or refused test"], 20),
    ("score_repeat_positive", {"positive_tests": 2}, {}, ["多次阳性 repeated positive tests"], 20),
    ("score_refusals", {}, {"refusal_count": 1}, ["拒检记录 refusals on record"], 10),
    (
        "score_refusals_many",
        {},
        {"refusal_count": 2},
        ["拒检记录 refusals on record", "拒检≥2 close to the 条例20 threshold"],
        20,
    ),
    ("score_absence", {}, {"absence_count": 1, "absence_days": 5}, ["擅自离县 unauthorised absence"], 15),
    ("score_unemployed", {"employment": "unemployed"}, {}, ["无业 unemployed"], 10),
    (
        "score_employed",
        {"employment": "employed", "family_support": "none"},
        {},
        ["在业 employed", "无家庭支持 no family support"],
        5,
    ),
    ("score_family_none", {"family_support": "none"}, {}, ["无家庭支持 no family support"], 15),
    ("score_family_weak", {"family_support": "weak"}, {}, ["家庭支持弱 weak family support"], 5),
    ("score_family_good", {"family_support": "good"}, {}, ["家庭支持良好 good family support"], 0),
    (
        "score_clean_streak",
        {"negative_streak": 6, "family_support": "none", "employment": "unemployed"},
        {},
        ["连续6次阴性 six negative tests in a row", "无家庭支持 no family support", "无业 unemployed"],
        10,
    ),
]


@pytest.mark.parametrize(("row", "facts", "columns", "items", "points"), SCORING_ROWS, ids=[r[0] for r in SCORING_ROWS])
def test_guiyang_scoring_rows(flow, row, facts, columns, items, points):
    """Guiyang 积分 (scoring.dmn, COLLECT): each matching points item is collected and summed into risk_points."""
    case = supervised_case(flow, facts=facts, **columns)
    start(flow, case)
    saved = flow.reload(case).facts
    assert sorted(saved["score_items"]) == sorted([BASELINE, *items])
    assert saved["risk_points"] == points


TIER_ROWS = [
    ("tier_red_positive", {"last_test_result": "positive"}, {}, "red", "近期尿检阳性 recent positive test"),
    (
        "tier_red_points",
        {"last_test_result": "negative", "negative_streak": 1, "employment": "unemployed", "family_support": "none"},
        {"refusal_count": 2, "absence_count": 1},
        "red",
        "积分≥50 50 points or more",
    ),
    ("tier_yellow_missed", {"last_test_result": "missed"}, {}, "yellow", "近期漏检/拒检 recent missed or refused test"),
    ("tier_yellow_points", {"negative_streak": 5, "family_support": "none"}, {}, "yellow", "积分≥15 15 points or more"),
    (
        "tier_yellow_not_yet_stable",
        {"last_test_result": "negative", "negative_streak": 2},
        {},
        "yellow",
        "尚未稳定 fewer than 3 negative tests in a row",
    ),
    ("tier_blue", {"last_test_result": "negative", "negative_streak": 3}, {}, "blue", "稳定 stable"),
]


@pytest.mark.parametrize(("row", "facts", "columns", "tier", "reason"), TIER_ROWS, ids=[r[0] for r in TIER_ROWS])
def test_chongqing_tier_rows(flow, row, facts, columns, tier, reason):
    """Chongqing 三色量化 (tier.dmn, FIRST): the cycle computes the tier, saves it and audits the change."""
    case = supervised_case(flow, facts=facts, **columns)
    start(flow, case)
    saved = flow.reload(case)
    assert saved.tier == tier
    assert saved.facts["tier_reason"] == reason
    [changed] = flow.audit("tier_changed", case)
    assert changed.payload == {"old": None, "new": tier}


SCHEDULE_ROWS = [
    ("schedule_red", {"last_test_result": "positive"}, YEAR_1, "red", 10, 3),
    ("schedule_yellow", {}, date(2024, 1, 5), "yellow", 30, 7),
    ("schedule_blue_year1", STABLE, YEAR_1, "blue", 30, 7),
    ("schedule_blue_year2", STABLE, date(2025, 1, 5), "blue", 60, 10),
    ("schedule_blue_year3", STABLE, date(2024, 1, 5), "blue", 90, 15),
    ("schedule_blue_no_term_start", STABLE, None, "blue", 30, 7),  # no term start yet: year 1
]


@pytest.mark.parametrize(
    ("row", "facts", "term_started_on", "tier", "interval", "grace"), SCHEDULE_ROWS, ids=[r[0] for r in SCHEDULE_ROWS]
)
def test_fa35_test_schedule_rows(flow, row, facts, term_started_on, tier, interval, grace):
    """法35/条例19 (test_schedule.dmn): monthly in year 1, two-monthly in year 2, quarterly in year 3; red 10 days."""
    case = supervised_case(flow, facts=facts, term_started_on=term_started_on)
    start(flow, case)
    now = flow.clock.now()
    assert flow.reload(case).tier == tier
    assert flow.item("drug_test_check", case).due_at == now + timedelta(days=interval)
    assert cycle_timers(flow, case) == {
        "check_overdue": (now + timedelta(days=interval), False),
        "check_missed": (now + timedelta(days=interval + grace), True),
    }


# --- a whole term -------------------------------------------------------------------------------------------


def test_fa33_three_year_term_of_36_monthly_cycles_stays_flat(flow):
    """法33: a 3-year term is 36 monthly cycles; each is its own short instance, so nothing grows."""
    case = supervised_case(flow, refusal_count=1)  # 10 points + unemployed + no family support: stays yellow
    start(flow, case)
    sizes = []
    for n in range(1, 37):
        [instance] = running_cycles(flow, case)
        sizes.append(len(instance.state))
        item = flow.item("drug_test_check", case)
        assert item.due_at == flow.clock.now() + timedelta(days=30), n
        flow.advance(days=29)
        check(flow, case, "negative", employment="unemployed", family_support="none")
    assert cycles(flow, case) == list(range(1, 38))
    instances = flow.instances(case, "supervision")
    assert len(instances) == 37
    assert all(i.status == InstanceStatus.COMPLETED for i in instances[:36])
    assert flow.reload(case).tier == "yellow"
    assert flow.reload(case).facts["negative_streak"] == 36
    # The state of cycle 36 is the size of cycle 2's: it changes only when a new points item starts to match
    # (the sixth negative test in a row), then differs only by digits of dates and times (a few dozen bytes: a
    # state that grew per cycle would add hundreds of bytes each time).
    assert max(sizes) <= sizes[1] * 1.02, sizes
    assert max(sizes[7:]) - min(sizes[7:]) <= sizes[7] * 0.005, sizes
    assert set(cycle_timers(flow, case)) == {"check_overdue", "check_missed"}
    assert fired(flow, case) == []
    assert violations(case) == []
    assert flow.incidents() == []
