"""Every message the interface shows has a Chinese translation, and the catalogue is current."""

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

APP = Path(__file__).resolve().parents[2] / "app"
#: Babel reads the configured "zh_CN" as zh_Hans_CN, and gettext looks for that folder name.
CATALOGUE = APP / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def _source_messages() -> dict[str, str]:
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(APP, METHODS, keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_every_interface_message_has_a_chinese_translation():
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle, locale="zh_CN")
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalogue if m.id}
    missing = {msgid: where for msgid, where in _source_messages().items() if msgid not in translated}
    assert not missing, f"not in messages.po (run pybabel extract/update): {missing}"
    empty = [m.id for m in translated.values() if not (m.string[0] if isinstance(m.string, tuple) else m.string)]
    assert not empty, f"untranslated: {empty}"
    fuzzy = [m.id for m in translated.values() if m.fuzzy]
    assert not fuzzy, f"fuzzy (unchecked) translations: {fuzzy}"


def test_placeholders_survive_translation():
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle, locale="zh_CN")

    pattern = re.compile(r"%\((\w+)\)[sd]")
    for message in catalogue:
        if not message.id or isinstance(message.id, tuple):
            continue
        assert set(pattern.findall(message.id)) == set(pattern.findall(message.string)), message.id
