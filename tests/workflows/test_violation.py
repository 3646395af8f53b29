"""violation.bpmn + serious_violation.dmn: 条例20 counting and thresholds, 条例21 prompt report, 法38 referral."""

from datetime import timedelta

import pytest

from app.engine.models import InstanceStatus
from tests.workflows.conftest import sent_payloads as _sent

REPORT = {"reported_at": "2026-03-02T10:00:00", "police_unit": "拱北派出所", "report_summary": "第三次拒绝尿检"}
TALK = {"talk_on": "2026-03-03", "talk_record": "告知违规后果 explained the consequences", "person_signed": True}


def _open(flow, case):
    """Open work of this case in violation.bpmn (other stages' diagrams may open their own work)."""
    return sorted(i.element_id for i in flow.items(case) if i.process_key == "violation")


def _status(flow, case):
    [instance] = flow.instances(case, "violation")
    return instance.status


def report(flow, kind, days=0, evidence="尿检记录 test record", **counts):
    """A case with the given prior counts (refusal_count, absence_count, absence_days) reports one violation."""
    case = flow.new_case(**counts)
    flow.send(case, "violation_reported", {"violation_kind": kind, "absence_days": days, "evidence": evidence})
    return case


def test_tiaoli20_each_violation_counted_with_evidence(flow):
    """条例20: counting is exact and auditable — one violation_recorded event per report, with its evidence."""
    case = report(flow, "absence", days=4, evidence="离开3天以上未报告 left the county", absence_count=1)
    case = flow.reload(case)
    assert (case.refusal_count, case.absence_count, case.absence_days) == (0, 2, 4)
    [event] = flow.audit("violation_recorded", case)
    assert event.payload["kind"] == "absence" and event.payload["evidence"] == "离开3天以上未报告 left the county"
    assert event.payload["absences"] == 2 and event.payload["absence_days_total"] == 4


def test_tiaoli20_first_refusal_is_a_lesser_violation_with_warning_talk(flow):
    case = report(flow, "refusal")
    assert _open(flow, case) == ["warning_talk"]
    talk = flow.item("warning_talk", case)
    assert talk.candidate_role == "caseworker" and talk.due_at == flow.clock.now() + timedelta(days=7)
    flow.complete("warning_talk", TALK, case)
    assert _status(flow, case) == InstanceStatus.COMPLETED
    assert _sent(case, "isolation_referral_requested") == []
    assert flow.reload(case).refusal_count == 1


def test_tiaoli20_second_refusal_is_not_serious(flow):
    case = report(flow, "refusal", refusal_count=1)
    assert _open(flow, case) == ["warning_talk"]
    assert flow.reload(case).refusal_count == 2


def test_tiaoli20_third_refusal_is_serious_violation(flow):
    """条例20: evading or refusing tests 3 times during the term → serious; 条例21: report to the police."""
    case = report(flow, "refusal", refusal_count=2)
    assert _open(flow, case) == ["report_to_police"]
    item = flow.item("report_to_police", case)
    assert item.legal_basis == "条例21" and item.candidate_role == "caseworker"
    assert flow.reload(case).refusal_count == 3


def test_tiaoli20_second_absence_is_not_serious(flow):
    case = report(flow, "absence", days=2, absence_count=1)
    assert _open(flow, case) == ["warning_talk"]


def test_tiaoli20_third_absence_is_serious_violation(flow):
    case = report(flow, "absence", days=1, absence_count=2, absence_days=2)
    assert _open(flow, case) == ["report_to_police"]


def test_tiaoli20_31_days_absence_in_total_is_serious_violation(flow):
    """条例20: more than 30 days of unauthorised absence in total."""
    case = report(flow, "absence", days=11, absence_count=1, absence_days=20)
    assert flow.reload(case).absence_days == 31
    assert _open(flow, case) == ["report_to_police"]


def test_tiaoli20_30_days_absence_in_total_is_not_serious(flow):
    case = report(flow, "absence", days=10, absence_count=1, absence_days=20)
    assert flow.reload(case).absence_days == 30
    assert _open(flow, case) == ["warning_talk"]


def test_tiaoli21_drug_use_during_the_term_is_reported_to_police(flow):
    """条例21: drug use during the term is reported to the police even with no other violation."""
    case = report(flow, "drug_use", evidence="尿检阳性 positive urine test")
    assert _open(flow, case) == ["report_to_police"]
    # drug use is not a refusal or absence: the 条例20 counters do not move
    case = flow.reload(case)
    assert (case.refusal_count, case.absence_count, case.absence_days) == (0, 0, 0)


@pytest.mark.parametrize("serious", [True, False], ids=["serious", "not_serious"])
def test_tiaoli20_other_violation_assessed_by_caseworker(flow, serious):
    """条例20 其他严重违反协议: the caseworker assesses an 'other' violation."""
    case = report(flow, "other", evidence="拒不参加帮教 refused counselling")
    assess = flow.item("assess_other_violation", case)
    assert assess.candidate_role == "caseworker" and assess.legal_basis == "条例20"
    flow.complete("assess_other_violation", {"violation_description": "多次拒不参加", "other_serious": serious}, case)
    assert _open(flow, case) == (["report_to_police"] if serious else ["warning_talk"])


@pytest.mark.parametrize(
    ("kind", "days", "counts", "expected"),
    [
        ("drug_use", 0, {}, "report_to_police"),
        ("refusal", 0, {"refusal_count": 2}, "report_to_police"),
        ("absence", 1, {"absence_count": 2}, "report_to_police"),
        ("absence", 31, {}, "report_to_police"),
        ("refusal", 0, {"absence_count": 2, "absence_days": 30}, "warning_talk"),
        ("absence", 0, {"refusal_count": 3}, "report_to_police"),
    ],
    ids=["rule_drug_use", "rule_refusals", "rule_absences", "rule_absence_days", "rule_lesser", "threshold_stays"],
)
def test_serious_violation_dmn_rows(flow, kind, days, counts, expected):
    """serious_violation.dmn, one case per row (条例20/21); past a threshold every later report is serious."""
    case = report(flow, kind, days=days, **counts)
    assert _open(flow, case) == [expected]


def test_tiaoli21_police_report_due_the_same_working_day_escalates_to_supervisor(flow):
    """条例21 'promptly': police_report_hours (8 h by default) after the finding, then the supervisor follows up."""
    case = report(flow, "refusal", refusal_count=2)
    item = flow.item("report_to_police", case)
    assert item.due_at == flow.clock.now() + timedelta(hours=8)
    assert flow.advance(hours=7, minutes=59) == 0
    assert flow.advance(minutes=2) == 1
    assert _open(flow, case) == ["report_to_police", "supervise_police_report"]
    escalation = flow.item("supervise_police_report", case)
    assert escalation.candidate_role == "supervisor" and escalation.legal_basis == "条例21"
    flow.complete("supervise_police_report", {"supervision_note": "已督促当日报告"}, case)
    flow.complete("report_to_police", REPORT, case)  # the duty to report stays after the escalation
    assert _open(flow, case) == ["decide_measure"]


def test_tiaoli21_report_in_time_cancels_the_escalation(flow):
    case = report(flow, "refusal", refusal_count=2)
    flow.advance(hours=2)
    flow.complete("report_to_police", REPORT, case)
    assert flow.advance(days=1) == 0
    assert _open(flow, case) == ["decide_measure"]
    assert flow.waiting_timers(case) == []


@pytest.mark.parametrize(
    ("kind", "counts", "ground"),
    [("refusal", {"refusal_count": 2}, "serious_violation"), ("drug_use", {}, "drug_use")],
)
def test_fa38_police_refer_serious_violation_to_compulsory_isolation(flow, kind, counts, ground):
    """法38: serious violation / drug use during community treatment → the police may refer to isolation."""
    case = report(flow, kind, **counts)
    flow.complete("report_to_police", REPORT, case)
    decide = flow.item("decide_measure", case)
    assert decide.candidate_role == "police" and decide.legal_basis == "法38"
    flow.complete("decide_measure", {"measure": "refer_isolation", "police_finding": "符合法38"}, case)
    assert _sent(case, "isolation_referral_requested") == [{"ground": ground}]
    assert [e.payload["name"] for e in flow.audit("message_sent", case)] == [
        "violation_reported",
        "isolation_referral_requested",
    ]
    assert _status(flow, case) == InstanceStatus.COMPLETED
    assert len(flow.instances(case, "isolation_referral")) == 1


def test_police_may_keep_community_treatment_after_serious_violation(flow):
    case = report(flow, "refusal", refusal_count=2)
    flow.complete("report_to_police", REPORT, case)
    flow.complete("decide_measure", {"measure": "continue", "police_finding": "警告教育"}, case)
    assert _sent(case, "isolation_referral_requested") == []
    assert _status(flow, case) == InstanceStatus.COMPLETED


def test_unknown_violation_kind_is_an_incident_not_a_silent_count(flow):
    case = report(flow, "late_checkin")
    assert any("violation kind" in error for error in flow.incidents())
    assert flow.reload(case).refusal_count == 0
