"""Synthetic caseloads: drive cases through the deployed lifecycle with a simulated clock.

Each simulated day the worker fires due timers, then every open work item is completed the way a busy but
conscientious office would: most tests negative, some missed or positive, most agreements signed, a few
transfers and suspensions. Used by ``flask demo simulate`` and ``flask demo seed``.
"""

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select

from app import engine
from app.auth.models import JurisdictionNode, NodeLevel
from app.cases.models import Case, CaseStatus
from app.cases.operations import open_case
from app.core.clock import FrozenClock
from app.core.db import transaction
from app.engine.models import WorkItem, WorkItemStatus
from app.extensions import db
from app.worker import drain

#: Weighted answers for enum fields by field id; other enums take their first option most of the time.
CHOICES: dict[str, list[tuple[str, float]]] = {
    "result": [("negative", 0.95), ("positive", 0.02), ("refused", 0.015), ("missed", 0.015)],
    "routing": [("community_treatment", 0.8), ("community_rehabilitation", 0.1), ("isolation", 0.1)],
    "employment": [("employed", 0.4), ("unemployed", 0.5), ("unable", 0.1)],
    "measure": [("continue", 0.7), ("refer_isolation", 0.3)],
    "job_status": [("retained", 0.85), ("lost", 0.15)],
    "work_capacity": [("able", 0.85), ("unable", 0.15)],
    "assessment_outcome": [("normal", 0.7), ("early_release", 0.2), ("extend", 0.1)],
    "term_decision": [("normal", 0.7), ("early_release", 0.2), ("extend", 0.1)],
    "family_support": [("good", 0.6), ("weak", 0.3), ("none", 0.1)],
}
#: Probability that a boolean field is ticked, by field id (default 0.1).
TICKS: dict[str, float] = {
    "person_signed": 0.97,
    "office_signed": 1.0,
    "street_notified": 1.0,
    "good_reason": 0.3,
    "retained": 0.8,
    "left_county": 0.05,
    "written_report": 0.9,
    "leave_approved": 0.8,
    "no_relapse": 0.9,
    "person_reachable": 0.9,
    "caseworker_contacted": 0.9,
    "exempt": 0.5,
    "contract_signed": 0.9,
    "family_support": 0.7,
    "pregnant": 0.02,
    "breastfeeding": 0.02,
}
#: A task is worked on once its due date is this many days away (a monthly check is not done on day one).
WINDOW_DAYS = 3
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"


@dataclass
class SimulationReport:
    cases: int
    days: int
    completed_tasks: int = 0
    timers_fired: int = 0
    stages: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def _value(rng: random.Random, spec: dict, today: date):
    kind, fid = spec["type"], spec["id"]
    if kind == "enum":
        options = [o["id"] for o in spec["options"]]
        weighted = [(v, w) for v, w in CHOICES.get(fid, []) if v in options]
        if weighted:
            return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]
        return options[0] if rng.random() < 0.8 or len(options) == 1 else rng.choice(options)
    if kind == "boolean":
        return rng.random() < TICKS.get(fid, 0.1)
    if kind == "date":
        return today.isoformat()
    if kind == "datetime":
        return datetime.combine(today, datetime.min.time()).isoformat()
    if kind in {"long", "number"}:
        low = float(spec["constraints"].get("min", 1))
        high = float(spec["constraints"].get("max", low + 2))
        return int(rng.uniform(low, high + 0.999)) if kind == "long" else round(rng.uniform(low, high), 1)
    if kind == "file":
        return "simulated-photo.jpg"
    return f"模拟 {fid}"


def _answers(rng: random.Random, item: WorkItem, today: date) -> dict:
    return {spec["id"]: _value(rng, spec, today) for spec in item.form or []}


def _communities() -> list[JurisdictionNode]:
    nodes = db.session.scalars(select(JurisdictionNode).where(JurisdictionNode.level == NodeLevel.COMMUNITY)).all()
    if not nodes:
        raise RuntimeError("no communities: run `flask demo seed` first")
    return list(nodes)


def simulate(
    cases: int, years: float, seed: int, start: datetime | None = None, step_days: int = 1
) -> SimulationReport:
    """Open ``cases`` cases and run them for ``years`` of simulated time; returns what happened."""
    import time

    rng = random.Random(seed)
    app = current_app._get_current_object()
    real_clock = app.extensions["clock"]
    clock = real_clock if isinstance(real_clock, FrozenClock) else FrozenClock(start or real_clock.now())
    app.extensions["clock"] = clock
    began = time.perf_counter()
    days = int(years * 365)
    report = SimulationReport(cases=cases, days=days)
    try:
        with transaction():
            communities = _communities()
            for _ in range(cases):
                name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
                id_number = f"4404{rng.randint(10**13, 10**14 - 1)}"
                born = date(1970 + rng.randint(0, 38), rng.randint(1, 12), rng.randint(1, 28))
                open_case(
                    name,
                    id_number,
                    rng.choice(communities),
                    unified_intake=rng.random() < 0.1,
                    decision_date=clock.now().date(),
                    birth_date=born,
                    gender=rng.choice(["male", "male", "female"]),
                )
        for _ in range(0, days, step_days):
            report.timers_fired += drain(200)
            _random_events(rng, communities)
            report.completed_tasks += _work_the_inbox(rng, clock.now().date())
            clock.advance(days=step_days)
        report.timers_fired += drain(200)
    finally:
        app.extensions["clock"] = real_clock
    for stage, status, reason, count in db.session.execute(
        select(Case.stage, Case.status, Case.close_reason, func.count()).group_by(
            Case.stage, Case.status, Case.close_reason
        )
    ):
        report.stages[stage] += count
        report.statuses[status.value] += count
        if reason:
            report.outcomes[reason] += count
    report.seconds = time.perf_counter() - began
    return report


def _work_the_inbox(rng: random.Random, today: date) -> int:
    """Complete what is open and due soon (scheduled checks are done near their date; a few wait a day)."""
    done = 0
    horizon = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(days=WINDOW_DAYS)
    with transaction():  # a short read: on SQLite an open transaction holds the write lock
        ids = db.session.scalars(
            select(WorkItem.id)
            .where(WorkItem.status == WorkItemStatus.OPEN, or_(WorkItem.due_at.is_(None), WorkItem.due_at <= horizon))
            .order_by(WorkItem.due_at)
        ).all()
    for item_id in ids:
        if rng.random() < 0.15:
            continue
        try:
            with transaction():
                item = db.session.get(WorkItem, item_id)
                if item is None or item.status != WorkItemStatus.OPEN:
                    continue
                engine.complete_work_item(item.id, _answers(rng, item, today))
            done += 1
        except (engine.Conflict, engine.NotRunnable, engine.InvalidSubmission):
            continue  # someone else took it, or the office's answer did not fit: tomorrow is another day
    return done


def _random_events(rng: random.Random, communities: list[JurisdictionNode]) -> None:
    """Now and then: a transfer (条例22) or a detention (中止, 条例24) and a later release."""
    if rng.random() > 0.02:
        return
    with transaction():
        case = db.session.scalars(
            select(Case).where(Case.stage == "supervision").order_by(func.random()).limit(1)
        ).first()
        if case is None:
            return
        if case.status == CaseStatus.SUSPENDED:
            engine.send_message(case.id, case.jurisdiction_id, "case_resumed", {"reason": "released"})
        elif rng.random() < 0.5:
            target = rng.choice(communities)
            if target.id != case.jurisdiction_id:
                engine.send_message(
                    case.id, case.jurisdiction_id, "transfer_requested", {"new_community_id": target.id}
                )
        else:
            engine.send_message(case.id, case.jurisdiction_id, "case_suspended", {"reason": "detained"})
