"""Task forms built from a diagram's form fields, one WTForms field class per field type (a registry)."""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.core.i18n import bilingual
from app.core.templating import LOCAL_TZ

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
ACCEPTED_FILES = {"accept": "image/jpeg,image/png,image/webp,application/pdf"}
#: Hidden input that remembers an already stored upload for a file field across a rejected submit.
KEPT_DOCUMENT = "{}__document"


def _length(c: dict) -> list:
    if "minlength" in c or "maxlength" in c:
        return [Length(min=int(c.get("minlength", -1)), max=int(c.get("maxlength", -1)))]
    return []


def _range(c: dict) -> list:
    if "min" in c or "max" in c:
        return [NumberRange(min=float(c["min"]) if "min" in c else None, max=float(c["max"]) if "max" in c else None)]
    return []


def _select(spec: dict, label: str, validators: list):
    options = [SelectChoice(o["id"], bilingual(o["name"])) for o in spec["options"]]
    choices = [SelectChoice("", _("— choose —")), *options]
    return SelectField(label, choices=choices, validators=validators, validate_choice=bool(spec["required"]))


#: Field type → builder(spec, label, validators). Adding a type means adding an entry here and in
#: app.engine.forms.FIELD_TYPES.
FIELD_BUILDERS: dict[str, Callable] = {
    "string": lambda s, label, v: StringField(label, validators=v + _length(s["constraints"])),
    "text": lambda s, label, v: TextAreaField(label, validators=v + _length(s["constraints"]), render_kw={"rows": 3}),
    "long": lambda s, label, v: IntegerField(label, validators=v + _range(s["constraints"])),
    "number": lambda s, label, v: DecimalField(label, validators=v + _range(s["constraints"])),
    "date": lambda s, label, v: DateField(label, validators=v, format="%Y-%m-%d"),
    "datetime": lambda s, label, v: DateTimeLocalField(label, validators=v, format=DATETIME_FORMATS),
    "boolean": lambda s, label, v: BooleanField(label),
    "enum": _select,
    "file": lambda s, label, v: FileField(label, render_kw=ACCEPTED_FILES),
}


class TaskForm(FlaskForm):
    """Base of every generated task form; ``specs`` keeps the diagram's field descriptions in order."""

    specs: list[dict] = []


def build_form(specs: list[dict], formdata=None) -> TaskForm:
    """A form instance for a work item's ``form`` field list (``formdata``: a submission or a saved draft)."""

    class Form(TaskForm):
        pass

    for spec in specs:
        required = spec["required"] and spec["type"] not in {"boolean", "file"}
        validators = [InputRequired(message=_l("This field is required."))] if required else [Optional()]
        label = bilingual(spec["label"])
        field = FIELD_BUILDERS.get(spec["type"], FIELD_BUILDERS["string"])(spec, label, validators)
        setattr(Form, spec["id"], field)
    Form.specs = specs
    form = Form(formdata=formdata) if formdata is not None else Form()
    for spec in specs:
        if spec.get("readonly"):
            form[spec["id"]].render_kw = {**(form[spec["id"]].render_kw or {}), "readonly": True}
    return form


def submitted_value(value):
    """A WTForms value as the engine takes it: dates as ISO text, decimals as float, blanks as None."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)).isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value == "":
        return None
    return value


def form_data(form: TaskForm) -> dict:
    """The engine's data from a validated form (file fields are filled by the caller)."""
    return {spec["id"]: submitted_value(form[spec["id"]].data) for spec in form.specs if spec["type"] != "file"}
