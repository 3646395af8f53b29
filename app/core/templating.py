"""Template globals and filters shared by every page."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.roles import Role, role_label
from app.cases.stages import stage_label, tier_label
from app.core.clock import now
from app.core.i18n import bilingual, per_request

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def local_date(value: datetime | None) -> date | None:
    """The calendar day in China of an aware datetime."""
    return value.astimezone(LOCAL_TZ).date() if value else None


def format_local(value: datetime | date | None, with_time: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(LOCAL_TZ)
        return value.strftime("%Y-%m-%d %H:%M") if with_time else value.strftime("%Y-%m-%d")
    return value.isoformat()


def mask_id(id_number: str | None) -> str:
    """An ID number with all but its last 4 characters hidden (PIPL: show only what the task needs)."""
    if not id_number:
        return ""
    return "*" * max(len(id_number) - 4, 0) + id_number[-4:]


def countdown(due_at: datetime | None, legal_basis: str | None = None, at: datetime | None = None) -> str:
    """ "剩余3天 · 条例14" / "逾期2天 · 条例14" / "今天到期": whole days between today and the due day, in China."""
    if due_at is None:
        return ""
    return _countdown_text((local_date(due_at) - local_date(at or now())).days, legal_basis)


@per_request
def _countdown_text(days: int, legal_basis: str | None) -> str:
    if days > 0:
        text = _("%(days)d days left", days=days)
    elif days == 0:
        text = _("due today")
    else:
        text = _("%(days)d days overdue", days=-days)
    return f"{text} · {legal_basis}" if legal_basis else text


def main_menu() -> list[tuple[str, str, bool]]:
    """(endpoint, label, shown) for the navigation bar; endpoints of blueprints not registered are left out."""
    from app.cases.queries import CASE_ROLES, INTAKE_ROLES  # cases views import this module

    roles = current_user.roles if current_user.is_authenticated else set()
    items = [
        ("inbox.index", _("Inbox"), True),
        ("cases.index", _("Cases"), bool(roles & CASE_ROLES)),
        ("cases.new", _("New case"), bool(roles & INTAKE_ROLES)),
        ("kpi.index", _("KPIs"), Role.SUPERVISOR in roles),
        ("monitor.index", _("Processes"), bool(roles & {Role.SUPERVISOR, Role.DESIGNER})),
        ("designer.index", _("Designer"), bool(roles & {Role.DESIGNER, Role.SUPERVISOR})),
        ("admin.users", _("Administration"), Role.ADMIN in roles),
    ]
    return [item for item in items if item[0] in current_app.view_functions]


def init_app(app: Flask) -> None:
    app.add_template_global(main_menu)
    app.add_template_global(lambda endpoint: endpoint in app.view_functions, "has_endpoint")
    app.add_template_filter(bilingual)
    app.add_template_filter(mask_id)
    app.add_template_filter(countdown)
    app.add_template_filter(format_local, "local")
    app.add_template_filter(role_label)
    app.add_template_filter(stage_label)
    app.add_template_filter(tier_label)

    @app.context_processor
    def _locale():
        return {"current_locale": language_key(), "now": now()}


def language_key() -> str:
    """The LANGUAGES key of the current locale (Babel says zh_Hans_CN for zh_CN)."""
    languages = current_app.config["LANGUAGES"]
    locale = get_locale()
    if locale is None:
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    for candidate in (str(locale), f"{locale.language}_{locale.territory}", locale.language):
        if candidate in languages:
            return candidate
    return current_app.config["BABEL_DEFAULT_LOCALE"]
