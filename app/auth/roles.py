"""The roles people hold, and how a BPMN lane name maps to one."""

import enum
import re


class Role(enum.StrEnum):
    CASEWORKER = "caseworker"  # 禁毒社工
    POLICE = "police"  # 社区民警
    CADRE = "cadre"  # 社区干部 / 网格员
    MEDICAL = "medical"  # 医务人员
    SUPERVISOR = "supervisor"  # 禁毒办
    DESIGNER = "designer"  # 流程设计
    ADMIN = "admin"


ROLE_NAMES = frozenset(role.value for role in Role)
_WORD = re.compile(r"[a-z]+")


def role_for_lane(lane: str | None) -> str | None:
    """The role a lane stands for: the first known role word in its name ("禁毒社工 caseworker" -> caseworker)."""
    if not lane:
        return None
    for word in _WORD.findall(lane.lower()):
        if word in ROLE_NAMES:
            return word
    return None
