"""rehabilitation.bpmn: community rehabilitation after release (法48, 条例37–39, 必送必接).

条例37: ordered for up to 3 years; 条例38: report within 15 days and sign the 社区康复协议, refusal recorded;
条例39: the help given (agreement fields).

The process ends once the agreement is signed and supervision (supervision_cycle) and the term clock
(term_started → closure) have started; the end of the term reaches the case from closure (term_ended).
"""

from datetime import date, timedelta

import pytest

from app.engine.models import InstanceStatus
from tests.workflows.conftest import sent_payloads as messages

HANDOVER = {"received_on": "2026-03-02", "received_by": "李社工", "handover_receipt_no": "渝必接〔2026〕031号"}
AGREEMENT = {
    "rehabilitation_agreement_no": "康复协议〔2026〕7号",
    "agreement_signed_on": "2026-03-06",
    "person_signed": True,
    "counselling": True,
    "employment_assistance": True,
    "police_officer": "王警官",
}


# --- helpers ------------------------------------------------------------------------------------------------


def open_tasks(flow, case):
    """Open work of this diagram (supervision and others open their own work for the messages sent here)."""
    return sorted(item.element_id for item in flow.items(case) if item.process_key == "rehabilitation")


def rehabilitation(flow, case):
    [instance] = flow.instances(case, "rehabilitation")
    return instance


def request(flow, years=3, **fields):
    """A person released from compulsory isolation is ordered to community rehabilitation (法48)."""
    fields.setdefault("stage", "isolation")
    case = flow.new_case(**fields)
    flow.send(case, "rehabilitation_requested", {"years": years})
    assert flow.incidents() == []
    return case


def report(flow, case, reported_on="2026-03-05"):
    flow.complete("register_rehab_report", {"reported_on": reported_on, "current_address": "南岸区1号"}, case=case)


def sign(flow, case, **changes):
    flow.complete("sign_rehab_agreement", {**AGREEMENT, **changes}, case=case)


def police_review(flow, case, good_reason=False):
    flow.complete(
        "record_rehab_refusal", {"finding": "电话联系不上，家属称外出务工", "good_reason": good_reason}, case=case
    )


# --- 必送必接 ---------------------------------------------------------------------------------------------------


def test_bisongbijie_handover_acknowledged_with_receipt(flow):
    """必送必接 (Chongqing): the receiving community acknowledges the in-person handover with a receipt number."""
    case = request(flow)
    task = flow.item("acknowledge_handover", case)
    assert task.candidate_role == "caseworker"
    assert task.due_at == flow.clock.now() + timedelta(days=3)
    assert [f["id"] for f in task.form if f["required"]] == ["received_on", "received_by", "handover_receipt_no"]

    flow.complete("acknowledge_handover", {**HANDOVER, "released_from": "重庆市强制隔离戒毒所"}, case=case)
    facts = flow.reload(case).facts
    assert facts["handover_receipt_no"] == "渝必接〔2026〕031号"
    assert facts["received_by"] == "李社工"
    assert facts["released_from"] == "重庆市强制隔离戒毒所"
    assert open_tasks(flow, case) == ["register_rehab_report"]


def test_bisongbijie_unacknowledged_handover_escalates_to_supervisor(flow):
    """必送必接: a handover not acknowledged in 3 days goes to the narcotics-control office; the task stays open."""
    case = request(flow)
    flow.advance(days=2)
    assert open_tasks(flow, case) == ["acknowledge_handover"]
    flow.advance(days=1, minutes=1)
    assert open_tasks(flow, case) == ["acknowledge_handover", "follow_up_handover"]
    assert flow.item("follow_up_handover", case).candidate_role == "supervisor"

    flow.complete("follow_up_handover", {"handover_follow_up": "联系戒毒所核实，已补办交接"}, case=case)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    assert open_tasks(flow, case) == ["register_rehab_report"]


# --- report, agreement, start (法48, 条例37) ---------------------------------------------------------------------


def test_tiaoli38_report_and_agreement_start_supervision_and_term_clock(flow):
    """法48/条例38: report within 15 days, sign the 社区康复协议; then the same supervision and term clock apply."""
    case = request(flow, years=2)
    released = flow.clock.now()
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    flow.advance(days=3)
    task = flow.item("register_rehab_report", case)
    assert task.legal_basis == "条例38"
    assert task.due_at == released + timedelta(days=15)  # 15 days from release, not from the handover
    report(flow, case, "2026-03-05")
    assert flow.item("sign_rehab_agreement", case).legal_basis == "条例38"
    sign(flow, case)
    assert flow.incidents() == []

    case = flow.reload(case)
    assert case.stage == "rehabilitation"
    assert case.term_started_on == date(2026, 3, 5)  # the term counts from the report (as 条例14)
    assert case.facts["rehabilitation_years"] == 2
    assert case.facts["rehabilitation_agreement_no"] == "康复协议〔2026〕7号"
    assert case.measure.value == "community_rehabilitation"  # the column, read back by case.load
    assert case.facts["counselling"] is True
    assert [a.payload["new"] for a in flow.audit("stage_changed", case)] == ["rehabilitation"]

    assert messages(case, "term_started") == [{"years": 2}]
    assert messages(case, "supervision_cycle")[0] == {"cycle": 1}
    assert messages(case, "rehabilitation_finished") == [{"outcome": "started"}]
    assert rehabilitation(flow, case).status == InstanceStatus.COMPLETED
    # the term clock runs for the rehabilitation term, from the report day
    [clock] = flow.instances(case, "closure")
    assert clock.status == InstanceStatus.RUNNING
    assert case.facts["term_ends"] == "2028-03-06T00:00:00+08:00"


@pytest.mark.parametrize(("requested", "years"), [(1, 1), (2, 2), (3, 3), (5, 3), (None, 3)])
def test_fa48_rehabilitation_term_is_at_most_3_years(flow, requested, years):
    """法48/条例37: community rehabilitation lasts at most 3 years (3 when the order gives none)."""
    case = request(flow, years=requested)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    report(flow, case)
    sign(flow, case)
    assert messages(case, "term_started") == [{"years": years}]


def test_fa48_violation_during_rehabilitation_is_counted(flow):
    """法48: the violation rules of community treatment apply; a refused test of a rehabilitation case is counted."""
    case = request(flow)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    report(flow, case)
    sign(flow, case)
    flow.send(case, "violation_reported", {"violation_kind": "refusal", "evidence": "拒绝尿检，民警记录在案"})
    assert flow.incidents() == []
    assert len(flow.instances(case, "violation")) == 1
    assert flow.reload(case).refusal_count == 1
    [counted] = flow.audit("violation_recorded", case)
    assert counted.payload["kind"] == "refusal"


# --- refusing rehabilitation (条例38) -----------------------------------------------------------------------------


def test_tiaoli38_no_report_in_15_days_records_refused_rehabilitation(flow):
    """条例38: not reporting within 15 days of the order is refusing rehabilitation: police review, fact recorded."""
    case = request(flow)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    flow.advance(days=14)
    assert open_tasks(flow, case) == ["register_rehab_report"]
    flow.advance(days=1, minutes=1)
    assert open_tasks(flow, case) == ["record_rehab_refusal"]
    review = flow.item("record_rehab_refusal", case)
    assert review.candidate_role == "police"
    assert review.legal_basis == "条例38"

    police_review(flow, case, good_reason=False)
    case = flow.reload(case)
    assert case.facts["refused_rehabilitation"] is True
    assert messages(case, "rehabilitation_finished") == [{"outcome": "refused"}]
    assert messages(case, "term_started") == []
    assert case.term_started_on is None
    assert rehabilitation(flow, case).status == InstanceStatus.COMPLETED


def test_tiaoli38_handover_late_still_counts_15_days_from_release(flow):
    """条例38: the 15 days run from the order (release); a handover acknowledged late does not extend them."""
    case = request(flow)
    flow.advance(days=16)
    flow.complete("follow_up_handover", {"handover_follow_up": "已督办"}, case=case)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    assert open_tasks(flow, case) == ["record_rehab_refusal"]


def test_tiaoli38_refusing_the_agreement_is_refusing_rehabilitation(flow):
    case = request(flow)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    report(flow, case)
    sign(flow, case, person_signed=False)
    assert open_tasks(flow, case) == ["record_rehab_refusal"]
    police_review(flow, case, good_reason=False)
    assert flow.reload(case).facts["refused_rehabilitation"] is True
    assert messages(case, "rehabilitation_finished") == [{"outcome": "refused"}]


def test_tiaoli38_good_reason_gives_a_new_15_days(flow):
    """条例38: with a good reason (e.g. in hospital) the person gets a new 15 days; nothing is recorded against them."""
    case = request(flow)
    flow.complete("acknowledge_handover", HANDOVER, case=case)
    flow.advance(days=15, minutes=1)
    police_review(flow, case, good_reason=True)
    task = flow.item("register_rehab_report", case)
    assert task.due_at == flow.clock.now() + timedelta(days=15)
    assert "refused_rehabilitation" not in flow.reload(case).facts

    flow.advance(days=10)
    report(flow, case, "2026-03-27")
    sign(flow, case)
    case = flow.reload(case)
    assert case.term_started_on == date(2026, 3, 27)
    assert messages(case, "rehabilitation_finished") == [{"outcome": "started"}]
