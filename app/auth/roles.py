"""The roles people hold, and how a BPMN lane name maps to one."""

import enum
import re

from flask_babel import lazy_gettext as _l

from app.core.i18n import per_request


class Role(enum.StrEnum):
    CASEWORKER = "caseworker"  # 禁毒社工
    POLICE = "police"  # 社区民警
    CADRE = "cadre"  # 社区干部 / 网格员
    MEDICAL = "medical"  # 医务人员
    SUPERVISOR = "supervisor"  # 禁毒办
    DESIGNER = "designer"  # 流程设计
    ADMIN = "admin"


ROLE_NAMES = frozenset(role.value for role in Role)
ROLE_LABELS = {
    Role.CASEWORKER: _l("Caseworker"),
    Role.POLICE: _l("Community police"),
    Role.CADRE: _l("Community cadre"),
    Role.MEDICAL: _l("Medical staff"),
    Role.SUPERVISOR: _l("Supervisor"),
    Role.DESIGNER: _l("Policy designer"),
    Role.ADMIN: _l("Administrator"),
}


@per_request
def role_label(role: str | None) -> str:
    """The role's name in the interface language (unknown roles as they are)."""
    return str(ROLE_LABELS.get(role, role or ""))


_WORD = re.compile(r"[a-z]+")


def role_for_lane(lane: str | None) -> str | None:
    """The role a lane stands for: the first known role word in its name ("禁毒社工 caseworker" -> caseworker)."""
    if not lane:
        return None
    for word in _WORD.findall(lane.lower()):
        if word in ROLE_NAMES:
            return word
    return None
