"""The stages a case passes through (Case.stage, set by the workflows' case.set_stage service tasks)."""

from flask_babel import lazy_gettext as _l

from app.core.i18n import per_request

STAGE_LABELS = {
    "decision": _l("Decision"),
    "intake": _l("Intake"),
    "agreement": _l("Agreement"),
    "supervision": _l("Supervision"),
    "isolation": _l("Compulsory isolation"),
    "rehabilitation": _l("Rehabilitation"),
    "closed": _l("Closed"),
}

TIER_LABELS = {"red": _l("Red (high risk)"), "yellow": _l("Yellow (assistance)"), "blue": _l("Blue (stable)")}


@per_request
def stage_label(stage: str | None) -> str:
    return str(STAGE_LABELS.get(stage, stage or ""))


@per_request
def tier_label(tier: str | None) -> str:
    return str(TIER_LABELS.get(tier, _l("Not tiered")))
