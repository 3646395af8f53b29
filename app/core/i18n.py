"""Interface language: the user's saved choice, else the session's, else the browser's, else zh_CN."""

import re
from functools import wraps

from flask import current_app, g, has_request_context, request, session
from flask_babel import get_locale
from flask_login import current_user

#: "中文标签 English label": diagrams carry both; the interface shows the half for the current language.
_BILINGUAL = re.compile(r"^(?P<zh>[^A-Za-z]*[\u3400-\u9fff][^A-Za-z]*?)\s+(?P<en>[A-Za-z].*)$")


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    if session.get("locale") in languages:
        return session["locale"]
    return request.accept_languages.best_match(list(languages)) or current_app.config["BABEL_DEFAULT_LOCALE"]


def bilingual(text: str | None) -> str:
    """The Chinese or the English half of a "中文 English" label, by the current language; other text as is."""
    if not text:
        return ""
    match = _BILINGUAL.match(text.strip())
    if not match:
        return text
    return match["zh"].strip() if _chinese() else match["en"].strip()


def _chinese() -> bool:
    """Is the interface Chinese? Read once per request: inbox rows call this dozens of times."""
    if not has_request_context():
        return str(get_locale()).startswith("zh")
    if "_chinese" not in g:
        g._chinese = str(get_locale()).startswith("zh")
    return g._chinese


def per_request(fn):
    """Memoise a label function for the current request (the locale is fixed within one).

    Every gettext call looks up the request's translations; an inbox page of 25 rows would make ~150 of
    them for a handful of distinct labels.
    """

    @wraps(fn)
    def wrapper(*args):
        if not has_request_context():
            return fn(*args)
        memo = g.setdefault("_label_memo", {})
        key = (fn.__qualname__, args)
        if key not in memo:
            memo[key] = fn(*args)
        return memo[key]

    return wrapper
