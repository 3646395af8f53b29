"""transfer.bpmn: change of execution place (变更执行地, 条例22).

The file is forwarded by the old community, the case with its open work and running processes moves to the new
community, the person reports there within 15 days of the change and signs a new agreement; the term continues.
"""

from datetime import date, timedelta

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from app import engine
from app.core.db import transaction
from app.engine import specs
from app.engine.models import InstanceStatus, WorkItem
from app.engine.serialization import load_state
from app.extensions import db
from tests.workflows.conftest import sent_payloads as messages

TERM_START = date(2026, 1, 10)  # reported two months before the clock's today (2026-03-02)


# --- helpers ------------------------------------------------------------------------------------------------


def reached(instance, element_id) -> bool:
    """Whether the instance has completed the element (e.g. took the path to an end event)."""
    workflow = load_state(instance.state, specs.specs_of(instance.bundle_sha256))
    return any(t.task_spec.bpmn_id == element_id and t.state == TaskState.COMPLETED for t in workflow.get_tasks())


def open_tasks(flow, case):
    """Open work of this diagram (other stages may open their own work for the messages sent here)."""
    return sorted(item.element_id for item in flow.items(case) if item.process_key == "transfer")


def transfer(flow, case):
    [instance] = flow.instances(case, "transfer")
    return instance


def request(flow, case):
    flow.send(case, "transfer_requested", {"new_community_id": flow.tree["b"].id})
    assert flow.incidents() == []


def forward(flow, case):
    flow.complete("forward_file", {"forwarded_on": "2026-03-03", "transfer_reason": "residence"}, case=case)


def report(flow, case, reported_on="2026-03-10"):
    flow.complete("register_transfer_report", {"transfer_reported_on": reported_on}, case=case)


def sign(flow, case, person_signed=True):
    agreement = {
        "agreement_no": "茂盛协议〔2026〕3号",
        "agreement_signed_on": "2026-03-10",
        "person_signed": person_signed,
    }
    flow.complete("sign_new_agreement", agreement, case=case)


def police_review(flow, case, good_reason=False):
    flow.complete("record_transfer_refusal", {"finding": "未到新执行地报到", "good_reason": good_reason}, case=case)


def case_in_treatment(flow, **fields):
    fields.setdefault("stage", "supervision")
    fields.setdefault("term_started_on", TERM_START)
    return flow.new_case(**fields)


# --- the transfer (条例22) ----------------------------------------------------------------------------------------


def test_tiaoli22_transfer_moves_case_open_work_and_keeps_the_term(flow):
    """条例22: file forwarded, case and its open work move with their history; report in 15 days; term continues."""
    a, b = flow.tree["a"], flow.tree["b"]
    case = case_in_treatment(flow)
    flow.send(case, "term_started", {"years": 3})  # the term clock (closure)
    flow.send(case, "supervision_cycle", {"cycle": 1})  # an open supervision check
    assert flow.incidents() == []
    checks = [item for item in flow.items(case) if item.process_key == "supervision"]
    assert checks and {item.jurisdiction_id for item in checks} == {a.id}
    term_ends = flow.reload(case).facts["term_ends"]
    [clock_timer] = [t for t in flow.waiting_timers(case) if t.element_id == "term_expired"]
    changed_at = flow.clock.now()

    request(flow, case)
    forward_task = flow.item("forward_file", case)
    assert forward_task.jurisdiction_id == a.id  # the old community forwards the file
    assert forward_task.candidate_role == "caseworker"
    assert forward_task.legal_basis == "条例22"
    flow.advance(days=5)
    forward(flow, case)

    case = flow.reload(case)
    assert case.jurisdiction_id == b.id
    moved = db.session.scalars(select(WorkItem).where(WorkItem.id.in_([c.id for c in checks]))).all()
    assert {(item.jurisdiction_id, item.assignee_id) for item in moved} == {(b.id, None)}
    running = [i for i in flow.instances(case) if i.status != InstanceStatus.COMPLETED]
    assert {i.process_key for i in running} >= {"closure", "supervision", "transfer"}
    assert {i.jurisdiction_id for i in running} == {b.id}
    [moved_audit] = flow.audit("case_transferred", case)
    assert moved_audit.payload == {"old_community_id": a.id, "new_community_id": b.id}
    history = [e for e in flow.audit("task_completed", case) if e.payload["element_id"] == "forward_file"]
    assert history and history[0].jurisdiction_id == a.id  # the history stays with the case

    report_task = flow.item("register_transfer_report", case)
    assert report_task.jurisdiction_id == b.id
    assert report_task.candidate_role == "caseworker"
    assert report_task.due_at == changed_at + timedelta(days=15)  # 15 days from the change, not from the file

    report(flow, case)
    sign(flow, case)
    case = flow.reload(case)
    assert case.term_started_on == TERM_START  # the term continues, it does not restart
    assert case.facts["term_ends"] == term_ends
    assert [t.due_at for t in flow.waiting_timers(case) if t.element_id == "term_expired"] == [clock_timer.due_at]
    assert case.facts["transfer_reported_on"] == "2026-03-10"
    assert case.facts["agreement_no"] == "茂盛协议〔2026〕3号"
    assert transfer(flow, case).status == InstanceStatus.COMPLETED
    assert reached(transfer(flow, case), "end_transferred")


def test_tiaoli22_no_report_in_15_days_escalates_to_police(flow):
    """条例22/法38: no report at the new office within 15 days: the police there review; no good reason → 法38."""
    case = case_in_treatment(flow)
    request(flow, case)
    forward(flow, case)
    flow.advance(days=14)
    assert open_tasks(flow, case) == ["register_transfer_report"]
    flow.advance(days=1, minutes=1)
    assert open_tasks(flow, case) == ["record_transfer_refusal"]
    review = flow.item("record_transfer_refusal", case)
    assert review.candidate_role == "police"
    assert review.jurisdiction_id == flow.tree["b"].id
    assert review.legal_basis == "法38"

    police_review(flow, case, good_reason=False)
    assert messages(case, "isolation_referral_requested") == [{"ground": "refusal"}]
    assert "refused_rehabilitation" not in flow.reload(case).facts
    assert reached(transfer(flow, case), "end_refused_treatment")


@pytest.mark.parametrize(
    "fields",
    [{"stage": "rehabilitation"}, {"stage": "supervision", "facts": {"rehabilitation_years": 2}}],
    ids=["rehabilitation-stage", "rehabilitation-facts"],
)
def test_tiaoli38_rehabilitation_case_not_reporting_records_refusal(flow, fields):
    """条例22 with 条例38: a rehabilitation case that does not report at the new place has refused rehabilitation."""
    case = case_in_treatment(flow, **fields)
    request(flow, case)
    forward(flow, case)
    flow.advance(days=15, minutes=1)
    police_review(flow, case, good_reason=False)
    assert flow.reload(case).facts["refused_rehabilitation"] is True
    assert messages(case, "isolation_referral_requested") == []
    assert reached(transfer(flow, case), "end_refused_rehabilitation")


def test_tiaoli22_refusing_the_new_agreement_goes_to_the_police(flow):
    case = case_in_treatment(flow)
    request(flow, case)
    forward(flow, case)
    report(flow, case)
    assert flow.item("sign_new_agreement", case).legal_basis == "条例22"
    sign(flow, case, person_signed=False)
    assert open_tasks(flow, case) == ["record_transfer_refusal"]
    police_review(flow, case, good_reason=False)
    assert messages(case, "isolation_referral_requested") == [{"ground": "refusal"}]


def test_tiaoli22_good_reason_gives_a_new_15_days(flow):
    """条例22: with a good reason the person gets a new 15 days at the new office; nothing is recorded against them."""
    case = case_in_treatment(flow)
    request(flow, case)
    forward(flow, case)
    flow.advance(days=15, minutes=1)
    police_review(flow, case, good_reason=True)
    assert flow.item("register_transfer_report", case).due_at == flow.clock.now() + timedelta(days=15)
    flow.advance(days=3)
    report(flow, case, "2026-03-20")
    sign(flow, case)
    case = flow.reload(case)
    assert case.term_started_on == TERM_START
    assert messages(case, "isolation_referral_requested") == []
    assert reached(transfer(flow, case), "end_transferred")


def test_tiaoli22_new_place_must_be_a_community(flow):
    """条例22: the case can only move to a community; anything else stops at an incident, nothing moves."""
    case = case_in_treatment(flow)
    flow.send(case, "transfer_requested", {"new_community_id": flow.tree["street"].id})
    item = flow.item("forward_file", case)
    with transaction():
        result = engine.complete_work_item(item.id, {"forwarded_on": "2026-03-03"})
    assert result.instance.incident_id is not None
    assert any("must be a community" in error for error in flow.incidents())
    assert flow.reload(case).jurisdiction_id == flow.tree["a"].id
