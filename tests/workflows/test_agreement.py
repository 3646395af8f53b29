"""agreement.bpmn: 条例15–17 agreement and 一人一策 plan, 条例18 measures and 6+X menu, 法38 refusal to sign."""

from datetime import timedelta

import pytest

from app.cases.models import Measure
from app.engine.models import InstanceStatus
from tests.workflows.conftest import sent_payloads as messages

DRAFT = {
    "treatment_measures": "每月尿检, 每旬面谈 monthly tests, talks every 10 days",
    "obligations": "按时报到, 离县报告 report on time, report before leaving the county",
    "breach_liability": "严重违反协议报公安机关 serious violation reported to the police (条例21)",
    "plan_summary": "一人一策: 心理辅导 + 家庭帮扶",
    "counselling": True,
    "health_education": True,
    "help_family": True,
}
SIGNED = {"person_signed": True, "office_signed": True, "signed_on": "2026-03-03"}


def sent(flow, case):
    """Names of the messages sent for the case, in order (from the audit trail)."""
    return [event.payload["name"] for event in flow.audit("message_sent", case)]


def open_agreement(flow, case):
    """Open work of the agreement process only (receivers written by others may open their own work)."""
    return sorted(i.element_id for i in flow.items(case) if i.process_key == "agreement")


def start_agreement(flow, measure="community_treatment", **case_fields):
    case = flow.new_case(**case_fields)
    payload = {"measure": measure} if measure else {}
    flow.send(case, "agreement_requested", payload)
    return case


def agreement_status(flow, case):
    [instance] = flow.instances(case, "agreement")
    return instance.status


def test_tiaoli15_draft_and_sign_agreement_with_individual_plan(flow):
    """条例15–17: the street office drafts the agreement (measures, obligations, liability) and both sign."""
    case = start_agreement(flow)
    assert flow.reload(case).stage == "agreement"
    draft = flow.item("draft_agreement", case)
    assert draft.candidate_role == "caseworker" and draft.legal_basis == "条例15"
    assert draft.due_at == flow.clock.now() + timedelta(days=7)
    assert {f["id"] for f in draft.form if f["required"]} == {
        "treatment_measures",
        "obligations",
        "breach_liability",
        "plan_summary",
    }
    flow.complete("draft_agreement", DRAFT, case)

    sign = flow.item("sign_agreement", case)
    assert sign.legal_basis == "条例15" and sign.due_at == flow.clock.now() + timedelta(days=7)
    flow.complete("sign_agreement", SIGNED, case)

    facts = flow.reload(case).facts
    assert facts["agreement_status"] == "signed"
    assert facts["agreement_kind"] == "社区戒毒协议" and facts["agreement_measure"] == "community_treatment"
    assert facts["agreement_signed_on"] == "2026-03-03"
    assert facts["breach_liability"] == DRAFT["breach_liability"]
    assert facts["help_menu"] == ["counselling", "health_education", "family"]
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]
    assert "employment_requested" not in sent(flow, case)
    assert agreement_status(flow, case) == InstanceStatus.COMPLETED
    assert flow.waiting_timers(case) == []  # the signing clock was cancelled by the signature


def test_tiaoli18_six_plus_x_employment_help_starts_employment_placement(flow):
    """条例18 / 6+X: choosing employment help sends employment_requested; the plan lists every item chosen."""
    case = start_agreement(flow)
    menu = {
        "help_employment": True,
        "help_training": True,
        "help_housing": True,
        "help_medical": True,
        "help_methadone": True,
        "help_legal_aid": True,
        "help_education": True,
        "help_social_security": True,
        "help_other": "子女入学 school place for a child",
    }
    flow.complete("draft_agreement", {**DRAFT, **menu}, case)
    flow.complete("sign_agreement", SIGNED, case)

    assert sent(flow, case)[-2:] == ["employment_requested", "agreement_finished"]
    assert messages(case, "employment_requested") == [{}]
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]
    facts = flow.reload(case).facts
    assert facts["help_menu"] == [
        "counselling",
        "health_education",
        "employment",
        "training",
        "housing",
        "medical",
        "methadone",
        "legal_aid",
        "family",
        "education",
        "social_security",
        "other",
    ]
    assert facts["help_other"] == "子女入学 school place for a child"
    # the employment process (employment.bpmn) starts on that message
    [employment] = flow.instances(case, "employment")
    assert employment.status == InstanceStatus.RUNNING
    assert "assess_needs" in flow.open_elements(case)


def test_fa38_refusal_to_sign_is_refusing_treatment_and_referred(flow):
    """法38: refusing to sign the agreement = refusing community treatment → police, isolation referral."""
    case = start_agreement(flow)
    flow.complete("draft_agreement", DRAFT, case)
    flow.complete("sign_agreement", {"person_signed": False, "refusal_reason": "不愿接受 does not accept"}, case)

    assert open_agreement(flow, case) == ["record_refusal"]
    refusal = flow.item("record_refusal", case)
    assert refusal.candidate_role == "police" and refusal.legal_basis == "法38"
    assert refusal.due_at == flow.clock.now() + timedelta(days=1)
    assert messages(case, "agreement_finished") == []
    flow.complete("record_refusal", {"refused_on": "2026-03-02", "refusal_finding": "当面拒签 refused in person"}, case)

    assert messages(case, "isolation_referral_requested") == [{"ground": "refusal"}]
    assert messages(case, "agreement_finished") == [{"outcome": "refused"}]
    names = sent(flow, case)
    assert names.index("isolation_referral_requested") < names.index("agreement_finished")
    assert "employment_requested" not in names
    facts = flow.reload(case).facts
    assert facts["agreement_status"] == "refused" and facts["agreement_refused_on"] == "2026-03-02"
    assert facts["refusal_reason"] == "不愿接受 does not accept"
    assert "agreement_signed_on" not in facts
    assert agreement_status(flow, case) == InstanceStatus.COMPLETED


def test_tiaoli15_office_countersigns_when_only_the_person_signed(flow):
    """条例15: the agreement binds the person and the street office; the office's seal completes it."""
    case = start_agreement(flow)
    flow.complete("draft_agreement", DRAFT, case)
    flow.complete("sign_agreement", {"person_signed": True, "office_signed": False, "signed_on": "2026-03-03"}, case)
    assert open_agreement(flow, case) == ["countersign_agreement"]
    assert messages(case, "agreement_finished") == []
    flow.complete("countersign_agreement", {"office_signed_on": "2026-03-05"}, case)
    facts = flow.reload(case).facts
    assert facts["agreement_status"] == "signed" and facts["agreement_signed_on"] == "2026-03-05"
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]


def test_tiaoli15_signing_deadline_escalates_to_supervisor(flow):
    """条例15: not signed within 7 days → the supervisor is told; the signing task stays open."""
    case = start_agreement(flow)
    flow.complete("draft_agreement", DRAFT, case)
    [timer] = flow.waiting_timers(case)
    assert timer.element_id == "signing_deadline" and timer.due_at == flow.clock.now() + timedelta(days=7)
    assert flow.advance(days=6, hours=23) == 0
    assert flow.advance(hours=2) == 1
    assert open_agreement(flow, case) == ["escalate_signing", "sign_agreement"]
    escalation = flow.item("escalate_signing", case)
    assert escalation.candidate_role == "supervisor" and escalation.legal_basis == "条例15"
    assert [e.payload["element_id"] for e in flow.audit("timer_fired", case)] == ["signing_deadline"]

    flow.complete("escalate_signing", {"escalation_instruction": "三日内完成签订 sign within 3 days"}, case)
    assert agreement_status(flow, case) == InstanceStatus.RUNNING
    flow.complete("sign_agreement", {**SIGNED, "signed_on": "2026-03-11"}, case)
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]
    assert agreement_status(flow, case) == InstanceStatus.COMPLETED


def test_tiaoli15_signing_after_escalation_still_ends_once_supervisor_done(flow):
    """The escalation branch does not hold back the outcome: agreement_finished is sent on signing."""
    case = start_agreement(flow)
    flow.complete("draft_agreement", DRAFT, case)
    flow.advance(days=8)
    flow.complete("sign_agreement", SIGNED, case)
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]
    assert open_agreement(flow, case) == ["escalate_signing"]
    flow.complete("escalate_signing", {"escalation_instruction": "已签订 signed meanwhile"}, case)
    assert agreement_status(flow, case) == InstanceStatus.COMPLETED


def test_fa48_rehabilitation_measure_signs_rehabilitation_agreement(flow):
    """法48 / 条例37–40: community rehabilitation signs a 社区康复协议 with the same content and rules."""
    case = start_agreement(flow, measure="community_rehabilitation")
    flow.complete("draft_agreement", DRAFT, case)
    flow.complete("sign_agreement", SIGNED, case)
    facts = flow.reload(case).facts
    assert facts["agreement_kind"] == "社区康复协议" and facts["agreement_measure"] == "community_rehabilitation"
    assert messages(case, "agreement_finished") == [{"outcome": "signed"}]


def test_fa48_rehabilitation_refusal_is_referred_too(flow):
    """法48/法38: refusing to sign the 社区康复协议 is also referred to the police."""
    case = start_agreement(flow, measure="community_rehabilitation")
    flow.complete("draft_agreement", DRAFT, case)
    flow.complete("sign_agreement", {"person_signed": False}, case)
    flow.complete("record_refusal", {"refused_on": "2026-03-02", "refusal_finding": "拒签"}, case)
    assert messages(case, "isolation_referral_requested") == [{"ground": "refusal"}]
    assert flow.reload(case).facts["agreement_kind"] == "社区康复协议"


@pytest.mark.parametrize(
    ("case_measure", "kind"),
    [(Measure.COMMUNITY_TREATMENT, "社区戒毒协议"), (Measure.COMMUNITY_REHABILITATION, "社区康复协议")],
)
def test_measure_defaults_to_the_case_measure(flow, case_measure, kind):
    """A request without a measure (e.g. from the app) uses the case's own measure (法33/法48)."""
    case = flow.new_case(measure=case_measure)
    flow.send(case, "agreement_requested", {})
    flow.complete("draft_agreement", DRAFT, case)
    flow.complete("sign_agreement", SIGNED, case)
    assert flow.reload(case).facts["agreement_kind"] == kind


def test_unknown_measure_stops_with_an_incident(flow):
    case = start_agreement(flow, measure="prison")
    [instance] = flow.instances(case, "agreement")
    assert instance.status == InstanceStatus.INCIDENT
    assert any("unknown measure 'prison'" in error for error in flow.incidents())
    assert open_agreement(flow, case) == []
