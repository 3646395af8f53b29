"""Demo data: a jurisdiction tree, one user per role (password demo1234) and a few cases in intake."""

from datetime import date, timedelta

from sqlalchemy import select

from app import engine
from app.auth.models import JurisdictionNode, NodeLevel, User
from app.auth.operations import create_node, create_user
from app.cases.operations import create_case, open_case

DEMO_PASSWORD = "demo1234"
PEOPLE = [("张伟", "440402199001011234"), ("李娜", "440402198805052345"), ("王强", "440402199512123456")]


def seed(skip_if_present: bool = True) -> bool:
    """Create the demo tree, users and cases; returns False (and does nothing) if the demo users exist already."""
    from app.extensions import db

    if skip_if_present and db.session.scalar(select(User.id).where(User.username == "admin")) is not None:
        return False
    city = create_node("珠海市", NodeLevel.CITY)
    district = create_node("香洲区", NodeLevel.DISTRICT, city)
    street = create_node("拱北街道", NodeLevel.STREET, district)
    community_a = create_node("夏湾社区", NodeLevel.COMMUNITY, street)
    community_b = create_node("茂盛社区", NodeLevel.COMMUNITY, street)
    create_node("夏湾第一网格", NodeLevel.GRID, community_a)

    users = [
        ("admin", ["admin"], city, "系统管理员 Admin"),
        ("designer", ["designer"], city, "流程设计 Designer"),
        ("supervisor", ["supervisor"], district, "禁毒办 Supervisor"),
        ("police", ["police"], street, "社区民警 Police"),
        ("caseworker", ["caseworker"], community_a, "禁毒社工 Caseworker (夏湾)"),
        ("caseworker2", ["caseworker"], community_b, "禁毒社工 Caseworker (茂盛)"),
    ]
    for username, roles, node, name in users:
        create_user(username, DEMO_PASSWORD, roles, node, name)

    deployed = {d.key for d in engine.latest_definitions()}
    for i, (name, id_number) in enumerate(PEOPLE):
        node: JurisdictionNode = community_a if i < 2 else community_b
        if "case" in deployed:
            open_case(name, id_number, node, decision_date=date(2026, 11, 1 + i))
        else:
            create_case(name, id_number, node, decision_date=date(2026, 11, 1 + i))
    return True


def seed_caseload(caseload: int, months: int) -> None:
    """Run ``caseload`` synthetic cases through the last ``months`` months (see app.simulation), so the app
    opens with work due, overdue and done. Commits step by step: call it outside a transaction."""
    from app.core.clock import now
    from app.simulation import simulate

    simulate(caseload, months / 12, seed=2026, start=now() - timedelta(days=months * 30))
