"""isolation_referral.bpmn + isolation_eligibility.dmn: 法38 grounds, 法39 exemptions, 法40 decision, family notice
and appeals, 条例27 2-year term, 法47/条例33 early release and extension, 条例38, 条例34 release notice, 法48."""

from datetime import UTC, date, datetime, timedelta

import pytest

from app.engine.errors import InvalidSubmission
from app.engine.models import InstanceStatus
from app.extensions import db
from tests.workflows.conftest import sent_payloads as _sent

ADULT = date(1990, 5, 1)
DECISION = {"isolation_decision_number": "珠公强戒决字〔2026〕12号", "isolation_decided_on": "2026-03-02"}
FAMILY = {"delivered_on": "2026-03-02", "family_notified_at": "2026-03-02T15:00:00", "family_member": "母亲 mother"}
#: Open while the 法40 appeal windows run (completed only when an appeal is filed).
APPEALS = ["record_lawsuit", "record_reconsideration"]
#: Decided on 2026-03-02 (Beijing): the term is counted from 2026-03-02T00:00+08:00.
DECIDED = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)


def _open(flow, case):
    """Open work of this case in isolation_referral.bpmn (other stages' diagrams may open their own)."""
    return sorted(i.element_id for i in flow.items(case) if i.process_key == "isolation_referral")


def _instance(flow, case):
    [instance] = flow.instances(case, "isolation_referral")
    db.session.refresh(instance)
    return instance


def _timer(flow, case, element_id):
    [timer] = [t for t in flow.waiting_timers(case) if t.element_id == element_id]
    return timer.due_at.replace(tzinfo=UTC) if timer.due_at.tzinfo is None else timer.due_at


def advance_to(flow, when: datetime) -> int:
    """Move the clock to ``when`` and run the worker; returns timers fired."""
    return flow.advance(seconds=(when - flow.clock.now()).total_seconds())


def refer(flow, ground="serious_violation", birth_date=ADULT, **facts):
    # No birth date and an ID number without one (e.g. a passport): the age is unknown.
    extra = {} if birth_date is not None else {"id_number": "G12345678"}
    case = flow.new_case(birth_date=birth_date, facts=facts, **extra)
    flow.send(case, "isolation_referral_requested", {"ground": ground})
    return case


def decided(flow, **facts):
    """An adult referred, decided on 2026-03-02, family notified; the term is running."""
    case = refer(flow, **facts)
    flow.complete("decide_isolation", DECISION, case)
    flow.complete("notify_family", FAMILY, case)
    return case


def to_assessment(flow, case):
    """Move to the 法47 one-year mark and return the assessment work item."""
    assert advance_to(flow, DECIDED + timedelta(days=365) - timedelta(minutes=1)) == 2  # both appeal windows closed
    assert _open(flow, case) == []
    assert flow.advance(minutes=2) == 1
    return flow.item("diagnostic_assessment", case)


# --- 法38 grounds and 法39 exemptions --------------------------------------------------------------------------


@pytest.mark.parametrize("ground", ["refusal", "drug_use", "serious_violation", "relapse", "severe_addiction"])
def test_fa38_every_ground_reaches_the_police_decision(flow, ground):
    case = refer(flow, ground=ground)
    assert _open(flow, case) == ["decide_isolation"]
    item = flow.item("decide_isolation", case)
    assert item.candidate_role == "police" and item.legal_basis == "法38"


def test_fa38_no_ground_no_isolation(flow):
    case = refer(flow, ground="late_checkin")
    assert _open(flow, case) == []
    assert _instance(flow, case).status == InstanceStatus.COMPLETED
    assert flow.reload(case).stage != "isolation"


@pytest.mark.parametrize(
    ("facts", "birth_date", "expected"),
    [
        ({"pregnant": True}, ADULT, "never"),
        ({"breastfeeding": True}, ADULT, "never"),
        ({"pregnant": True}, date(2011, 1, 1), "never"),
        ({}, date(2011, 1, 1), "decide_minor_exemption"),
        ({}, None, "decide_minor_exemption"),
        ({}, date(2010, 3, 2), "decide_isolation"),
        ({}, ADULT, "decide_isolation"),
    ],
    ids=["pregnant", "breastfeeding_under_1", "pregnant_minor", "under_16", "age_unknown", "just_16", "adult"],
)
def test_fa39_isolation_eligibility_dmn_rows(flow, facts, birth_date, expected):
    """法39, checked first: pregnant / breastfeeding a child under 1 → never; under 16 → the police decide."""
    case = refer(flow, birth_date=birth_date, **facts)
    if expected == "never":
        assert _open(flow, case) == []
        assert _instance(flow, case).status == InstanceStatus.COMPLETED
        assert flow.reload(case).facts["isolation_exemption"].startswith("法39 不得")
        assert _sent(case, "term_ended") == []
    else:
        assert _open(flow, case) == [expected]


def test_fa39_pregnant_woman_may_not_be_isolated(flow):
    case = refer(flow, ground="drug_use", pregnant=True)
    assert _open(flow, case) == [] and _sent(case, "isolation_started") == []
    assert "怀孕" in flow.reload(case).facts["isolation_exemption"]


def test_fa39_breastfeeding_a_child_under_1_may_not_be_isolated(flow):
    case = refer(flow, ground="drug_use", breastfeeding=True)
    assert _open(flow, case) == [] and _sent(case, "isolation_started") == []
    assert "哺乳" in flow.reload(case).facts["isolation_exemption"]


def test_fa39_under_16_police_exempt(flow):
    case = refer(flow, birth_date=date(2012, 6, 1))
    item = flow.item("decide_minor_exemption", case)
    assert item.candidate_role == "police" and item.legal_basis == "法39"
    flow.complete("decide_minor_exemption", {"exempt": True, "exemption_reason": "在校学生 at school"}, case)
    assert _open(flow, case) == []
    facts = flow.reload(case).facts
    assert facts["exemption_reason"] == "在校学生 at school" and "不满16周岁" in facts["isolation_exemption"]
    assert _sent(case, "term_ended") == []


def test_fa39_under_16_police_do_not_exempt(flow):
    case = refer(flow, birth_date=date(2012, 6, 1))
    flow.complete("decide_minor_exemption", {"exempt": False, "exemption_reason": "多次复吸 repeated relapse"}, case)
    assert _open(flow, case) == ["decide_isolation"]


# --- 法40 decision, family notice, appeals -------------------------------------------------------------------


def test_fa40_decision_stops_the_community_term(flow):
    """The decision moves the case to the isolation stage and tells closure/case the community term stops."""
    case = refer(flow)
    flow.complete("decide_isolation", {**DECISION, "isolation_centre": "珠海市强制隔离戒毒所"}, case)
    assert _sent(case, "isolation_started") == [{}]
    assert _sent(case, "term_ended") == [{"outcome": "isolated"}]
    case = flow.reload(case)
    assert case.stage == "isolation"
    assert case.facts["isolation_decision_number"] == DECISION["isolation_decision_number"]
    assert case.facts["isolation_ends_at"] == "2028-03-02T00:00:00+08:00"
    names = [e.payload["name"] for e in flow.audit("message_sent", case)]
    assert names == ["isolation_referral_requested", "isolation_started", "term_ended"]
    notify = flow.item("notify_family", case)
    assert notify.legal_basis == "法40" and notify.candidate_role == "police"
    assert notify.due_at == flow.clock.now() + timedelta(hours=24)
    assert _open(flow, case) == sorted([*APPEALS, "notify_family"])


def test_fa40_family_not_notified_within_24_hours_escalates_to_supervisor(flow):
    case = refer(flow)
    flow.complete("decide_isolation", DECISION, case)
    assert flow.advance(hours=23, minutes=59) == 0
    assert flow.advance(minutes=2) == 1
    assert _open(flow, case) == sorted([*APPEALS, "notify_family", "supervise_family_notice"])
    escalation = flow.item("supervise_family_notice", case)
    assert escalation.candidate_role == "supervisor" and escalation.legal_basis == "法40"
    flow.complete("supervise_family_notice", {"family_supervision_note": "已督促"}, case)
    flow.complete("notify_family", FAMILY, case)  # still owed after the escalation
    assert _open(flow, case) == APPEALS


def test_fa40_family_notified_in_time_no_escalation(flow):
    case = refer(flow)
    flow.complete("decide_isolation", DECISION, case)
    flow.advance(hours=5)
    flow.complete("notify_family", FAMILY, case)
    assert flow.advance(days=2) == 0
    assert _open(flow, case) == APPEALS


def test_fa40_reconsideration_within_60_days_does_not_suspend_the_decision(flow):
    case = decided(flow)
    record = flow.item("record_reconsideration", case)
    assert record.legal_basis == "法40" and record.candidate_role == "police"
    flow.advance(days=30)
    flow.complete(
        "record_reconsideration",
        {"reconsideration_filed_on": "2026-04-01", "reconsideration_body": "珠海市公安局"},
        case,
    )
    assert _open(flow, case) == ["record_lawsuit"]
    assert "assessment_due" in {t.element_id for t in flow.waiting_timers(case)}  # the term runs on
    assert flow.reload(case).stage == "isolation"


def test_fa40_lawsuit_within_6_months_does_not_suspend_the_decision(flow):
    case = decided(flow)
    assert flow.advance(days=61) == 1  # the 60-day reconsideration window closes
    assert _open(flow, case) == ["record_lawsuit"]
    flow.advance(days=90)
    flow.complete("record_lawsuit", {"lawsuit_filed_on": "2026-08-01", "lawsuit_court": "香洲区人民法院"}, case)
    assert _open(flow, case) == []
    assert "assessment_due" in {t.element_id for t in flow.waiting_timers(case)}


def test_fa40_appeal_windows_close_after_60_days_and_6_months(flow):
    case = decided(flow)
    assert _timer(flow, case, "reconsideration_window_closed") == flow.clock.now() + timedelta(days=60)
    assert _timer(flow, case, "lawsuit_window_closed") == datetime(2026, 9, 2, 1, 0, tzinfo=UTC)
    assert flow.advance(days=59, hours=23) == 0
    assert flow.advance(hours=2) == 1
    assert _open(flow, case) == ["record_lawsuit"]
    assert advance_to(flow, datetime(2026, 9, 2, 1, 1, tzinfo=UTC)) == 1
    assert _open(flow, case) == []


# --- 条例27 term, 法47 assessment, 条例33, 条例38, 条例34 -----------------------------------------------------------


def finish_release(flow, case, release_at):
    """条例34 notice 3 days before ``release_at``, then release (法48 → community rehabilitation)."""
    assert _timer(flow, case, "release_notice_due") == release_at - timedelta(days=3)
    assert advance_to(flow, release_at - timedelta(days=3)) == 0
    assert flow.advance(minutes=1) == 1
    notice = flow.item("receive_release_notice", case)
    assert notice.legal_basis == "条例34" and notice.candidate_role == "caseworker"
    flow.complete("receive_release_notice", {"notice_received_on": "2028-02-28"}, case)
    assert _timer(flow, case, "release_due") == release_at
    assert _sent(case, "rehabilitation_requested") == []
    assert advance_to(flow, release_at) == 0
    assert flow.advance(minutes=1) == 1
    assert _sent(case, "rehabilitation_requested") == [{"years": 3}]
    assert _instance(flow, case).status == InstanceStatus.COMPLETED


def test_tiaoli27_two_year_term_with_3_day_release_notice(flow):
    """条例27: 2 years from the decision; 法47 assessment at 1 year; 条例34 notice 3 days before release; 法48."""
    case = decided(flow)
    assessment = to_assessment(flow, case)
    assert assessment.candidate_role == "medical" and assessment.legal_basis == "法47"
    flow.complete("diagnostic_assessment", {"assessment_outcome": "normal"}, case)
    assert _open(flow, case) == []
    release_at = DECIDED + timedelta(days=731)  # 2026-03-02 → 2028-03-02 (2028 is a leap year)
    assert flow.reload(case).facts["release_at"] == "2028-03-02T00:00:00+08:00"
    finish_release(flow, case, release_at)


def test_fa47_early_release_after_one_year(flow):
    """法47: early release after 1 year on 诊断评估; 条例33: decided within 7 days."""
    case = decided(flow)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "early_release"}, case)
    decide = flow.item("decide_term_change", case)
    assert decide.legal_basis == "条例33" and decide.candidate_role == "police"
    assert decide.due_at == flow.clock.now() + timedelta(days=7)
    flow.advance(days=2)
    flow.complete("decide_term_change", {"term_decision": "early_release"}, case)
    release_at = flow.clock.now() + timedelta(days=3)
    assert flow.reload(case).facts["term_decision"] == "early_release"
    # the notice is due at once (3 days before the release)
    assert flow.advance(minutes=1) == 1
    flow.complete("receive_release_notice", {"notice_received_on": "2027-03-04"}, case)
    assert advance_to(flow, release_at) == 0
    assert flow.advance(minutes=1) == 1
    assert _sent(case, "rehabilitation_requested") == [{"years": 3}]
    assert _instance(flow, case).status == InstanceStatus.COMPLETED


def test_fa47_police_may_refuse_the_proposed_early_release(flow):
    case = decided(flow)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "early_release"}, case)
    flow.complete("decide_term_change", {"term_decision": "normal"}, case)
    finish_release(flow, case, DECIDED + timedelta(days=731))


def test_fa47_extension_up_to_one_year(flow):
    """法47: extension of at most 1 year; the release notice moves with the new release date."""
    case = decided(flow)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "extend"}, case)
    flow.complete("decide_term_change", {"term_decision": "extend", "extension_months": 6}, case)
    facts = flow.reload(case).facts
    assert facts["release_at"] == "2028-09-02T00:00:00+08:00" and facts["extension_months"] == 6
    finish_release(flow, case, datetime(2028, 9, 1, 16, 0, tzinfo=UTC))


def test_fa47_extension_longer_than_one_year_is_refused(flow):
    case = decided(flow)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "extend"}, case)
    with pytest.raises(InvalidSubmission):
        flow.complete("decide_term_change", {"term_decision": "extend", "extension_months": 13}, case)
    flow.complete("decide_term_change", {"term_decision": "extend"}, case)  # no number: the full year
    assert flow.reload(case).facts["release_at"] == "2029-03-02T00:00:00+08:00"


def test_tiaoli33_decision_not_made_in_7_days_escalates_to_supervisor(flow):
    case = decided(flow)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "extend"}, case)
    assert flow.advance(days=6, hours=23) == 0
    assert flow.advance(hours=2) == 1
    assert _open(flow, case) == ["decide_term_change", "supervise_term_decision"]
    escalation = flow.item("supervise_term_decision", case)
    assert escalation.candidate_role == "supervisor" and escalation.legal_basis == "条例33"
    flow.complete("supervise_term_decision", {"term_supervision_note": "已督促"}, case)
    flow.complete("decide_term_change", {"term_decision": "extend", "extension_months": 3}, case)
    assert flow.reload(case).facts["release_at"] == "2028-06-02T00:00:00+08:00"


def test_tiaoli38_refused_rehabilitation_and_relapse_cannot_be_released_early(flow):
    """条例38: a person who refused community rehabilitation and relapsed is not released early."""
    case = decided(flow, refused_rehabilitation=True)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "early_release"}, case)
    assert _open(flow, case) == []  # the proposal never reaches a decision
    facts = flow.reload(case).facts
    assert facts["early_release_denied"] == "条例38" and facts["term_decision"] == "normal"
    finish_release(flow, case, DECIDED + timedelta(days=731))


def test_tiaoli38_police_cannot_grant_early_release_either(flow):
    """条例38 holds at the 条例33 decision too: an early release chosen by the police is turned into the full term."""
    case = decided(flow, refused_rehabilitation=True)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "extend"}, case)
    flow.complete("decide_term_change", {"term_decision": "early_release"}, case)  # refused again by the script
    facts = flow.reload(case).facts
    assert facts["early_release_denied"] == "条例38" and facts["release_at"] == "2028-03-02T00:00:00+08:00"


def test_violation_referral_runs_end_to_end_with_the_clock(flow):
    """violation.bpmn → isolation_referral.bpmn → release → rehabilitation_requested, with flow.advance only."""
    case = flow.new_case(birth_date=ADULT, refusal_count=2)
    flow.send(case, "violation_reported", {"violation_kind": "refusal", "absence_days": 0, "evidence": "拒检"})
    flow.complete(
        "report_to_police",
        {"reported_at": "2026-03-02T09:00:00", "police_unit": "派出所", "report_summary": "三次拒检"},
        case,
    )
    flow.complete("decide_measure", {"measure": "refer_isolation", "police_finding": "严重违反协议"}, case)
    assert _open(flow, case) == ["decide_isolation"]
    flow.complete("decide_isolation", DECISION, case)
    flow.complete("notify_family", FAMILY, case)
    to_assessment(flow, case)
    flow.complete("diagnostic_assessment", {"assessment_outcome": "normal"}, case)
    finish_release(flow, case, DECIDED + timedelta(days=731))
    assert flow.incidents() == []
