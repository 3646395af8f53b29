"""Interface language: the user's saved choice, else the session's, else the browser's, else zh_CN."""

import re

from flask import current_app, request, session
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
    return match["zh"].strip() if str(get_locale()).startswith("zh") else match["en"].strip()
