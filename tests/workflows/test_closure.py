"""closure.bpmn: the term clock (条例14), 中止/终止 (条例24), expiry and release notice (条例23), 条例7.

The clock of the tests starts on 2026-03-02 01:00 UTC (09:00 Beijing). A term that starts on 2026-03-02 has
2029-03-02 as its last day and ends at midnight after it, Beijing time: 2029-03-02 16:00 UTC.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from app.cases.models import CaseStatus
from app.core.db import transaction
from app.engine import specs
from app.engine.models import InstanceStatus, Message, MessageStatus, MessageSubscription
from app.engine.serialization import load_state
from app.extensions import db
from tests.workflows.conftest import sent_payloads as messages

BEIJING_MIDNIGHT_UTC = 16  # 00:00 Beijing is 16:00 UTC the day before
TERM_START = date(2026, 3, 2)  # the day of reporting (条例14): the clock's today
TERM_END = datetime(2029, 3, 2, BEIJING_MIDNIGHT_UTC, tzinfo=UTC)  # end of the last day 2029-03-02


# --- helpers ------------------------------------------------------------------------------------------------


def start_term(flow, years=3, **fields):
    fields.setdefault("term_started_on", TERM_START)
    case = flow.new_case(**fields)
    flow.send(case, "term_started", {"years": years})
    assert flow.incidents() == []
    return case


def closure(flow, case):
    """The latest closure instance (each 中止 ends one and starts the next)."""
    return flow.instances(case, "closure")[-1]


def reached(instance, element_id) -> bool:
    """Whether the instance has completed the element (e.g. took the path to an end event)."""
    workflow = load_state(instance.state, specs.specs_of(instance.bundle_sha256))
    return any(t.task_spec.bpmn_id == element_id and t.state == TaskState.COMPLETED for t in workflow.get_tasks())


def waits_for(case, name) -> bool:
    """Whether a closure instance of the case is waiting for message ``name``."""
    rows = db.session.scalars(
        select(MessageSubscription.element_id).where(
            MessageSubscription.case_id == case.id, MessageSubscription.name == name
        )
    )
    return bool(list(rows))


def open_tasks(flow, case):
    """Open work of this diagram (others' diagrams may open work for the messages sent here)."""
    return sorted(item.element_id for item in flow.items(case) if item.process_key == "closure")


def clock_timers(flow, case):
    """Waiting timers of the closure instance: element id -> due at."""
    ours = {i.id for i in flow.instances(case, "closure")}
    return {t.element_id: t.due_at for t in flow.waiting_timers(case) if t.instance_id in ours}


def advance_to(flow, when: datetime) -> int:
    return flow.advance(seconds=(when - flow.clock.now()).total_seconds())


def facts(flow, case):
    return flow.reload(case).facts


def issue_notice(flow, case):
    notice = {
        "release_notice_no": "解戒字〔2029〕12号",
        "release_notice_issued_on": "2029-03-04",
        "notice_delivered_on": "2029-03-04",
        "street_notified_on": "2029-03-05",
    }
    flow.complete("issue_release_notice", notice, case=case)


def expire(flow, case):
    """Run the clock to the end of the term and issue the release notice."""
    advance_to(flow, clock_timers(flow, case)["term_expired"] + timedelta(minutes=1))
    issue_notice(flow, case)


# --- the term clock (条例14) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started_on", "years", "term_ends"),
    [
        (date(2026, 3, 2), 3, "2029-03-03T00:00:00+08:00"),
        (date(2025, 11, 20), 3, "2028-11-21T00:00:00+08:00"),
        (date(2026, 3, 2), 1, "2027-03-03T00:00:00+08:00"),  # a one-year rehabilitation (法48)
        (date(2024, 2, 29), 3, "2027-03-01T00:00:00+08:00"),  # no 29 Feb in 2027: 28 Feb is the last day
    ],
)
def test_tiaoli14_term_counts_from_the_report_day(flow, started_on, years, term_ends):
    """条例14: the term counts from term_started_on; the last day is the corresponding day years later."""
    case = start_term(flow, years=years, term_started_on=started_on)
    assert facts(flow, case)["term_ends"] == term_ends
    assert facts(flow, case)["term_paused_days"] == 0
    assert clock_timers(flow, case) == {"term_expired": datetime.fromisoformat(term_ends).astimezone(UTC)}
    assert closure(flow, case).status == InstanceStatus.RUNNING


def test_tiaoli14_term_without_start_day_counts_from_today(flow):
    case = start_term(flow, term_started_on=None)
    assert facts(flow, case)["term_ends"] == "2029-03-03T00:00:00+08:00"


# --- expiry (条例23) ---------------------------------------------------------------------------------------------


def test_tiaoli23_expiry_issues_release_notice_within_7_days(flow):
    """条例23/条例40: on expiry the case is closed and kept; the police serve the notice, tell the street in 7 days."""
    case = start_term(flow)
    advance_to(flow, TERM_END - timedelta(minutes=1))
    assert open_tasks(flow, case) == []
    assert flow.reload(case).status == CaseStatus.OPEN

    advance_to(flow, TERM_END + timedelta(minutes=1))
    notice = flow.item("issue_release_notice", case)
    assert notice.candidate_role == "police"  # the public security organ issues it (条例23)
    assert notice.legal_basis == "条例23/条例40"
    assert notice.due_at == flow.clock.now() + timedelta(days=7)
    assert [f["id"] for f in notice.form if f["required"]] == [
        "release_notice_no",
        "release_notice_issued_on",
        "notice_delivered_on",
        "street_notified_on",
    ]
    case = flow.reload(case)
    assert (case.status, case.close_reason) == (CaseStatus.CLOSED, "expired")  # the term is over: closed, kept
    assert messages(case, "term_ended") == []  # the case hears of it once the notice is out

    issue_notice(flow, case)
    case = flow.reload(case)
    assert case.status == CaseStatus.CLOSED
    assert case.close_reason == "expired"
    assert case.facts["release_notice_no"] == "解戒字〔2029〕12号"
    assert case.facts["street_notified_on"] == "2029-03-05"
    assert messages(case, "term_ended") == [{"outcome": "expired"}]
    [closed] = flow.audit("case_closed", case)
    assert closed.payload == {"reason": "expired", "old": "open"}
    assert clock_timers(flow, case) == {}  # no escalation once the notice is out


def test_tiaoli23_notice_not_issued_in_7_days_escalates_to_supervisor(flow):
    """条例23/条例40: 7 days pass without the notice: the supervisor follows up, the police task stays open."""
    case = start_term(flow)
    advance_to(flow, TERM_END + timedelta(minutes=1))
    assert clock_timers(flow, case)["release_notice_overdue"] == flow.clock.now() + timedelta(days=7)

    flow.advance(days=6)
    assert open_tasks(flow, case) == ["issue_release_notice"]
    flow.advance(days=1, minutes=1)
    assert open_tasks(flow, case) == ["follow_up_release_notice", "issue_release_notice"]
    follow_up = flow.item("follow_up_release_notice", case)
    assert follow_up.candidate_role == "supervisor"
    assert follow_up.legal_basis == "条例23/条例40"

    flow.complete("follow_up_release_notice", {"follow_up_action": "电话督促社区当日出具"}, case=case)
    issue_notice(flow, case)
    assert flow.reload(case).close_reason == "expired"
    assert messages(case, "term_ended") == [{"outcome": "expired"}]
    assert reached(closure(flow, case), "end_notice_followed_up")


# --- 中止 (条例24) ---------------------------------------------------------------------------------------------


def test_tiaoli24_suspension_pauses_term_clock(flow):
    """条例24: detained or arrested → suspended, the clock pauses; on release the term end moves by the days paused."""
    case = start_term(flow)
    flow.advance(days=100)
    flow.send(case, "case_suspended", {"reason": "行政拘留"})
    case = flow.reload(case)
    assert case.status == CaseStatus.SUSPENDED
    [suspended] = flow.audit("case_suspended", case)
    assert suspended.payload["reason"] == "行政拘留"

    flow.advance(days=20)
    flow.send(case, "case_resumed", {"reason": "拘留期满释放"})
    assert flow.incidents() == []
    case = flow.reload(case)
    assert case.status == CaseStatus.OPEN
    assert len(flow.audit("case_resumed", case)) == 1
    assert case.facts["term_ends"] == "2029-03-23T00:00:00+08:00"
    assert case.facts["term_paused_days"] == 20
    assert case.term_started_on == TERM_START
    assert clock_timers(flow, case) == {"term_expired": TERM_END + timedelta(days=20)}
    assert messages(case, "supervision_cycle") == [{"cycle": 1}]  # supervision starts again
    assert messages(case, "term_started")[-1] == {"years": 3, "paused_days": 20}
    first, second = flow.instances(case, "closure")
    assert (first.status, second.status) == (InstanceStatus.COMPLETED, InstanceStatus.RUNNING)

    advance_to(flow, TERM_END + timedelta(days=1))
    assert open_tasks(flow, case) == []  # the original end has passed: still running
    assert flow.reload(case).status == CaseStatus.OPEN
    advance_to(flow, TERM_END + timedelta(days=20, minutes=1))
    assert open_tasks(flow, case) == ["issue_release_notice"]


def test_tiaoli24_suspension_over_the_original_end_defers_expiry(flow):
    """条例24: the original end passes while suspended: nothing expires; the end comes after resumption."""
    case = start_term(flow, years=1)
    one_year = datetime(2027, 3, 2, BEIJING_MIDNIGHT_UTC, tzinfo=UTC)
    advance_to(flow, one_year - timedelta(days=10))
    flow.send(case, "case_suspended", {"reason": "逮捕"})
    flow.advance(days=30)
    assert [t for t in flow.audit("timer_fired", case) if t.payload["element_id"] == "term_expired"]
    case = flow.reload(case)
    assert case.status == CaseStatus.SUSPENDED and case.close_reason is None
    assert open_tasks(flow, case) == []

    flow.send(case, "case_resumed", {})
    first = flow.instances(case, "closure")[0]
    assert reached(first, "end_expiry_while_suspended") and reached(first, "end_resumed")
    assert clock_timers(flow, case) == {"term_expired": one_year + timedelta(days=30)}
    advance_to(flow, one_year + timedelta(days=30, minutes=1))
    assert open_tasks(flow, case) == ["issue_release_notice"]
    assert flow.reload(case).close_reason == "expired"


def test_tiaoli24_every_suspension_adds_its_days(flow):
    case = start_term(flow)
    for days_before, days_paused in ((30, 10), (200, 5)):
        flow.advance(days=days_before)
        flow.send(case, "case_suspended", {"reason": "刑事拘留"})
        flow.advance(days=days_paused)
        flow.send(case, "case_resumed", {})
    case = flow.reload(case)
    assert case.facts["term_paused_days"] == 15
    assert clock_timers(flow, case) == {"term_expired": TERM_END + timedelta(days=15)}
    assert messages(case, "supervision_cycle") == [{"cycle": 1}, {"cycle": 1}]
    assert len(flow.audit("case_suspended", case)) == 2


def test_tiaoli24_suspension_and_resumption_on_the_same_day_pauses_nothing(flow):
    case = start_term(flow)
    flow.send(case, "case_suspended", {"reason": "传唤"})
    flow.advance(hours=6)
    flow.send(case, "case_resumed", {})
    assert facts(flow, case)["term_paused_days"] == 0
    assert clock_timers(flow, case) == {"term_expired": TERM_END}


# --- 终止 (条例24) and isolation ------------------------------------------------------------------------------


def test_tiaoli24_termination_closes_case_with_reason(flow):
    """条例24: sentenced to prison or compulsory education → 终止: closed (reason terminated) and kept."""
    case = start_term(flow)
    flow.advance(days=400)
    flow.send(case, "case_terminated", {"reason": "判处有期徒刑一年"})
    case = flow.reload(case)
    assert case.status == CaseStatus.CLOSED
    assert case.close_reason == "terminated"
    assert case.facts["termination"] == {"reason": "判处有期徒刑一年"}
    assert messages(case, "term_ended") == [{"outcome": "terminated"}]
    assert closure(flow, case).status == InstanceStatus.COMPLETED
    assert reached(closure(flow, case), "end_terminated")
    assert clock_timers(flow, case) == {}


def test_tiaoli24_termination_while_suspended(flow):
    """条例24: a detention that ends in a sentence terminates the suspended case."""
    case = start_term(flow)
    flow.send(case, "case_suspended", {"reason": "刑事拘留"})
    flow.advance(days=60)
    flow.send(case, "case_terminated", {"reason": "强制教育"})
    case = flow.reload(case)
    assert case.status == CaseStatus.CLOSED
    assert case.close_reason == "terminated"
    assert messages(case, "term_ended") == [{"outcome": "terminated"}]
    assert closure(flow, case).status == InstanceStatus.COMPLETED


def isolate(flow, case):
    """What isolation_referral does: stage isolation, then isolation_started."""
    with transaction():
        flow.reload(case).stage = "isolation"
    flow.send(case, "isolation_started", {})


@pytest.mark.parametrize("suspended_first", [False, True], ids=["running", "suspended"])
def test_fa38_isolation_stops_the_community_term_quietly(flow, suspended_first):
    """法38: referral to compulsory isolation ends the term clock; the isolation process reports to the case."""
    case = start_term(flow, stage="supervision")
    if suspended_first:
        flow.send(case, "case_suspended", {"reason": "行政拘留"})
    flow.advance(days=50)
    isolate(flow, case)
    assert closure(flow, case).status == InstanceStatus.COMPLETED
    assert reached(closure(flow, case), "end_isolated")
    assert messages(case, "term_ended") == []
    assert flow.reload(case).close_reason is None
    assert clock_timers(flow, case) == {}
    assert not waits_for(case, "case_suspended") and not waits_for(case, "case_resumed")


def test_fa38_stale_isolation_message_does_not_stop_a_later_term(flow):
    """An isolation_started left over from an earlier isolation (stage is not isolation) leaves the clock running."""
    case = start_term(flow, stage="rehabilitation")
    flow.send(case, "isolation_started", {})
    assert closure(flow, case).status == InstanceStatus.RUNNING
    assert clock_timers(flow, case) == {"term_expired": TERM_END}
    assert waits_for(case, "isolation_started")  # the branch waits again
    isolate(flow, case)
    assert closure(flow, case).status == InstanceStatus.COMPLETED


def test_messages_outside_their_state_wait_for_a_receiver(flow):
    """case_resumed while the term runs is not for closure: it waits in the outbox, the clock is untouched."""
    case = start_term(flow)
    flow.send(case, "case_resumed", {})
    [row] = db.session.scalars(select(Message).where(Message.case_id == case.id, Message.name == "case_resumed"))
    assert row.status == MessageStatus.PENDING
    assert clock_timers(flow, case) == {"term_expired": TERM_END}


# --- 条例7: 3 years without relapse ------------------------------------------------------------------------------


def test_tiaoli7_three_years_without_relapse_leaves_dynamic_control(flow):
    """条例7: after a 3-year term without relapse the police confirm and the person leaves dynamic control."""
    case = start_term(flow)
    expire(flow, case)
    check = flow.item("confirm_left_control", case)
    assert check.candidate_role == "police"
    assert check.legal_basis == "条例7"
    assert clock_timers(flow, case) == {}  # the 3 years are already over

    flow.complete("confirm_left_control", {"no_relapse": True, "checked_on": "2029-03-10"}, case=case)
    case = flow.reload(case)
    assert case.facts["left_dynamic_control"] is True
    assert case.facts["left_dynamic_control_on"] == "2029-03-10"
    assert case.facts["abstinent_since"] == "2026-03-02"
    assert case.status == CaseStatus.CLOSED and case.close_reason == "expired"  # kept, with its reason
    assert closure(flow, case).status == InstanceStatus.COMPLETED
    assert reached(closure(flow, case), "end_left_control")
    [done] = [e for e in flow.audit("task_completed", case) if e.payload["element_id"] == "confirm_left_control"]
    assert done.payload["data"]["no_relapse"] is True


def test_tiaoli7_relapse_found_keeps_dynamic_control(flow):
    case = start_term(flow)
    expire(flow, case)
    flow.complete("confirm_left_control", {"no_relapse": False, "checked_on": "2029-03-10"}, case=case)
    case = flow.reload(case)
    assert case.facts["left_dynamic_control"] is False
    assert case.facts["relapsed"] is True
    assert closure(flow, case).status == InstanceStatus.COMPLETED
    assert reached(closure(flow, case), "end_still_controlled")


def test_tiaoli7_relapse_in_the_term_counts_three_years_from_the_relapse(flow):
    """条例7: a relapse during the term (facts relapsed/relapsed_on) restarts the 3 abstinent years."""
    case = start_term(flow, facts={"relapsed": True, "relapsed_on": "2027-06-01"})
    expire(flow, case)
    assert open_tasks(flow, case) == []
    due = datetime(2030, 6, 1, BEIJING_MIDNIGHT_UTC, tzinfo=UTC)  # end of 2030-06-01, Beijing time
    assert clock_timers(flow, case) == {"abstinence_period": due}
    assert "left_dynamic_control" not in facts(flow, case)

    advance_to(flow, due - timedelta(minutes=1))
    assert open_tasks(flow, case) == []
    advance_to(flow, due + timedelta(minutes=1))
    assert open_tasks(flow, case) == ["confirm_left_control"]
    flow.complete("confirm_left_control", {"no_relapse": True, "checked_on": "2030-06-05"}, case=case)
    assert facts(flow, case)["left_dynamic_control"] is True
    assert facts(flow, case)["abstinent_since"] == "2027-06-01"


def test_tiaoli7_shorter_rehabilitation_term_waits_for_three_abstinent_years(flow):
    """条例7 with 法48: a 1-year rehabilitation ends, but dynamic control lasts until 3 years without relapse."""
    case = start_term(flow, years=1)
    expire(flow, case)
    assert flow.reload(case).close_reason == "expired"
    assert clock_timers(flow, case) == {"abstinence_period": TERM_END}
    advance_to(flow, TERM_END + timedelta(minutes=1))
    assert open_tasks(flow, case) == ["confirm_left_control"]


@pytest.mark.parametrize("message", ["case_suspended", "case_terminated", "isolation_started"])
def test_tiaoli23_events_after_expiry_leave_the_closed_case_alone(flow, message):
    """After expiry the case stays closed with reason expired; a late 中止/终止/isolation changes nothing."""
    case = start_term(flow, years=1, stage="isolation")
    expire(flow, case)
    flow.send(case, message, {"reason": "迟到的登记"})
    assert flow.incidents() == []
    case = flow.reload(case)
    assert (case.status, case.close_reason) == (CaseStatus.CLOSED, "expired")
    assert messages(case, "term_ended") == [{"outcome": "expired"}]
    assert closure(flow, case).status == InstanceStatus.RUNNING  # still waiting for the 3 abstinent years (条例7)
    assert clock_timers(flow, case) == {"abstinence_period": TERM_END}
    assert waits_for(case, message)  # ignored; the branch waits again
