"""intake.bpmn: 条例13 delivery, 条例14 15-day report clock, 法38 refusal, 条例17 working group, Guiyang routing."""

from datetime import date

import pytest

from app.engine.models import Message
from app.extensions import db

INTERVIEW = {"household_registration": "广东珠海", "current_address": "拱北 1 号", "employment": "unemployed"}


def _messages(name):
    return [m for m in db.session.query(Message).filter_by(name=name)]


def start_intake(flow, unified=False):
    case = flow.new_case()
    flow.send(case, "intake_requested", {"unified": unified})
    return case


def test_tiaoli13_decision_delivered_before_report(flow):
    case = start_intake(flow)
    item = flow.item("deliver_decision", case)
    assert item.legal_basis == "条例13" and item.candidate_role == "caseworker"
    assert item.due_at == flow.clock.now() + __import__("datetime").timedelta(days=3)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02", "street_notified": True}, case)
    assert flow.open_elements(case) == ["register_report"]


def test_tiaoli14_report_starts_term(flow):
    case = start_intake(flow)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    report = flow.item("register_report", case)
    assert report.legal_basis == "条例14" and (report.due_at - flow.clock.now()).days == 15
    flow.advance(days=10)
    flow.complete("register_report", {"reported_on": "2026-03-12"}, case)
    flow.complete("interview", {**INTERVIEW, "pregnant": True}, case)
    case = flow.reload(case)
    assert case.term_started_on == date(2026, 3, 12)
    assert case.facts["pregnant"] is True and case.facts["current_address"] == "拱北 1 号"
    assert flow.waiting_timers(case) == []  # the report clock was cancelled by the report


def test_tiaoli14_no_report_in_15_days_escalates_to_police(flow):
    """条例14/法38: no report within 15 days without good reason = refusing community treatment."""
    case = start_intake(flow)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    assert flow.advance(days=14, hours=23) == 0
    assert flow.advance(hours=2) == 1
    refusal = flow.item("record_refusal", case)
    assert refusal.candidate_role == "police" and refusal.legal_basis == "法38"
    flow.complete("record_refusal", {"finding": "联系不上 unreachable", "good_reason": False}, case)
    [referral] = _messages("isolation_referral_requested")
    assert referral.event["payload"]["payload"] == {"ground": "refusal"}
    [finished] = _messages("intake_finished")
    assert finished.event["payload"]["payload"] == {"outcome": "refused"}


def test_tiaoli14_late_report_with_good_reason_continues_intake(flow):
    case = start_intake(flow)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    flow.advance(days=16)
    flow.complete(
        "record_refusal", {"finding": "住院 in hospital", "good_reason": True, "reported_on": "2026-03-18"}, case
    )
    assert flow.open_elements(case) == ["interview"]
    flow.complete("interview", INTERVIEW, case)
    assert flow.reload(case).term_started_on == date(2026, 3, 18)


def test_tiaoli17_working_group_recorded(flow):
    case = start_intake(flow)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    flow.complete("register_report", {"reported_on": "2026-03-03"}, case)
    flow.complete("interview", INTERVIEW, case)
    group = flow.item("form_working_group", case)
    assert group.legal_basis == "条例17"
    flow.complete("form_working_group", {"police_officer": "李警官", "cadre": "王主任"}, case)
    facts = flow.reload(case).facts
    assert facts["police_officer"] == "李警官" and facts["cadre"] == "王主任"
    [finished] = _messages("intake_finished")
    assert finished.event["payload"]["payload"] == {"outcome": "reported"}
    assert flow.items(case) == []


@pytest.mark.parametrize(
    ("routing", "message", "payload"),
    [
        ("isolation", "isolation_referral_requested", {"ground": "severe_addiction"}),
        ("community_rehabilitation", "rehabilitation_requested", {"years": 3}),
    ],
)
def test_guiyang_unified_intake_detox_then_assessment_routes(flow, routing, message, payload):
    """Guiyang 一体化: 1-3 months detox, then 诊断评估 routes the person (法38 severe addiction → isolation)."""
    case = start_intake(flow, unified=True)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    admission = flow.item("detox_admission", case)
    assert admission.candidate_role == "medical"
    flow.complete("detox_admission", {"admitted_on": "2026-03-02", "detox_months": 2}, case)
    assert flow.advance(days=59) == 0
    assert flow.advance(days=2) == 1
    flow.complete("diagnostic_assessment", {"routing": routing}, case)
    [sent] = _messages(message)
    assert sent.event["payload"]["payload"] == payload


def test_guiyang_assessment_to_community_treatment_then_reports(flow):
    case = start_intake(flow, unified=True)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    flow.complete("detox_admission", {"admitted_on": "2026-03-02", "detox_months": 1}, case)
    flow.advance(days=31)
    flow.complete("diagnostic_assessment", {"routing": "community_treatment"}, case)
    assert flow.open_elements(case) == ["register_report"]


def test_detox_months_outside_one_to_three_is_refused(flow):
    from app import engine

    case = start_intake(flow, unified=True)
    flow.complete("deliver_decision", {"delivered_on": "2026-03-02"}, case)
    with pytest.raises(engine.InvalidSubmission) as err:
        flow.complete("detox_admission", {"admitted_on": "2026-03-02", "detox_months": 4}, case)
    assert "detox_months" in err.value.errors


def test_fa39_age_read_from_resident_id_number_when_no_birth_date(flow):
    """法39 needs the age: an 18-digit ID number carries the birth date (digits 7-14)."""
    from app.cases.services import age

    case = flow.new_case(id_number="440402201201154321", birth_date=None)
    assert age(case, date(2026, 3, 2)) == 14
    case = flow.new_case(id_number="G12345678", birth_date=None)
    assert age(case, date(2026, 3, 2)) is None
