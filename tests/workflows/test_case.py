"""case.bpmn: the whole lifecycle of one person, from the decision (法33) to the end of the term (条例23)."""

import random
from datetime import date

from app.cases.models import CaseStatus
from app.cases.operations import open_case
from app.core.db import transaction
from app.engine.models import InstanceStatus
from app.simulation import _answers

GOOD = {"result": "negative", "person_signed": True, "office_signed": True, "good_reason": False, "approved": True}


def work_every_item(flow, case, overrides=None, skip=()):
    """Complete every open item of the case as a diligent office would (required fields filled)."""
    rng = random.Random(7)
    for item in flow.items(case):
        if item.element_id in skip:
            continue
        answers = _answers(rng, item, flow.clock.now().date())
        for field in item.form:
            if field["id"] in GOOD:
                answers[field["id"]] = GOOD[field["id"]]
            if field["type"] == "boolean" and field["id"] not in GOOD:
                answers[field["id"]] = False
        answers.update(overrides or {})
        flow.complete(item.element_id, answers, case)


def open_new_case(flow, **kwargs):
    with transaction():
        return open_case("周测试", "440402199001011234", flow.tree["a"], decision_date=date(2026, 3, 2), **kwargs)


def test_fa33_decision_starts_intake_and_case_waits_for_it(flow):
    case = open_new_case(flow)
    assert flow.open_elements(case) == ["deliver_decision"]
    [lifecycle] = flow.instances(case, "case")
    assert lifecycle.status == InstanceStatus.RUNNING and flow.reload(case).stage == "intake"


def test_intake_refusal_leaves_case_waiting_for_isolation_referral(flow):
    """条例14/法38: no report in 15 days → referral; the case process waits for the term to end."""
    case = open_new_case(flow)
    work_every_item(flow, case)
    flow.advance(days=16)
    flow.complete("record_refusal", {"finding": "拒不报到", "good_reason": False}, case)
    assert [i.process_key for i in flow.instances(case, "isolation_referral")] == ["isolation_referral"]
    assert flow.instances(case, "case")[0].status == InstanceStatus.RUNNING


def test_three_year_case_from_decision_to_closure(flow):
    """法33 → 条例14 → 条例15 → 法35/条例19 cycles for 3 years → 条例23 expiry, release notice, case closed."""
    case = open_new_case(flow)
    for _ in range(10):  # intake and agreement, a task every other day
        work_every_item(flow, case)
        flow.advance(days=2)
        if flow.reload(case).stage == "supervision":
            break
    case = flow.reload(case)
    assert case.stage == "supervision" and case.term_started_on is not None
    checks = 0
    for _ in range(3 * 365 // 5 + 10):
        checks += sum(1 for i in flow.items(case) if i.element_id == "drug_test_check")
        work_every_item(flow, case)
        flow.advance(days=5)
        if flow.reload(case).status == CaseStatus.CLOSED and not flow.items(case):
            break
    case = flow.reload(case)
    assert case.status == CaseStatus.CLOSED and case.close_reason == "expired"
    assert checks >= 12  # at least quarterly for three years
    assert case.refusal_count == 0 and case.absence_count == 0
    lifecycle = flow.instances(case, "case")[0]
    assert lifecycle.status == InstanceStatus.COMPLETED
    assert flow.incidents() == []
    supervision = flow.instances(case, "supervision")
    assert len(supervision) == len({s.id for s in supervision}) >= 12
    assert max(len(s.state) for s in supervision) < 60_000  # one short instance per cycle, not a growing tree
