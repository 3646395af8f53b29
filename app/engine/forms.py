"""Form fields of user tasks as plain data, and checking what people submit against them."""

from datetime import date, datetime

from app.engine.errors import InvalidSubmission

#: Field types a diagram may use (camunda:formField type); the inbox renders each with a WTForms field.
FIELD_TYPES = frozenset({"string", "text", "long", "number", "boolean", "date", "datetime", "enum", "file"})


def describe_form(task_spec) -> list[dict]:
    """The form of a SpiffWorkflow user task spec as JSON-ready dicts."""
    form = getattr(task_spec, "form", None)
    fields = []
    for field in getattr(form, "fields", None) or []:
        rules = {v.name: v.config for v in field.validation}
        fields.append(
            {
                "id": field.id,
                "label": field.label or field.id,
                "type": field.type,
                "default": field.default_value,
                # has_validation('required') is wrong in SpiffWorkflow 3.2 (config is None): read the names.
                "required": "required" in rules,
                "readonly": "readonly" in rules,
                "constraints": {k: v for k, v in rules.items() if k not in {"required", "readonly"}},
                "options": [{"id": o.id, "name": o.name} for o in getattr(field, "options", [])],
                "properties": {p.id: p.value for p in field.properties},
            }
        )
    return fields


def _number(value, kind):
    try:
        return kind(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("must be a whole number" if kind is int else "must be a number") from None


def _coerce(field: dict, value):
    kind = field["type"]
    if kind in {"string", "text", "file"}:
        return str(value)
    if kind == "long":
        return _number(value, int)
    if kind == "number":
        return _number(value, float)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes", "on", "y"}:
            return True
        if text in {"false", "0", "no", "off", "n", ""}:
            return False
        raise ValueError("must be yes or no")
    if kind == "date":
        try:
            return (value if isinstance(value, date) else date.fromisoformat(str(value).strip())).isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        try:
            parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError("must be a date and time") from None
        return parsed.isoformat()
    if kind == "enum":
        allowed = {o["id"] for o in field["options"]}
        if str(value) not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return str(value)
    return value


def _check_constraints(field: dict, value) -> None:
    constraints = field["constraints"]
    if "minlength" in constraints and len(str(value)) < int(constraints["minlength"]):
        raise ValueError(f"must be at least {constraints['minlength']} characters")
    if "maxlength" in constraints and len(str(value)) > int(constraints["maxlength"]):
        raise ValueError(f"must be at most {constraints['maxlength']} characters")
    if "min" in constraints and float(value) < float(constraints["min"]):
        raise ValueError(f"must be at least {constraints['min']}")
    if "max" in constraints and float(value) > float(constraints["max"]):
        raise ValueError(f"must be at most {constraints['max']}")


def clean_submission(fields: list[dict], data: dict) -> dict:
    """Coerce submitted values to the form's types and check its rules.

    Keys not in the form pass through unchanged (a task without a form may take any data).

    Raises:
        InvalidSubmission: field id -> message for every failing field.
    """
    cleaned = dict(data)
    errors: dict[str, str] = {}
    for field in fields:
        value = data.get(field["id"])
        if value is None and field["type"] == "boolean":
            value = False  # an unticked checkbox is not submitted at all
        empty = value is None or (isinstance(value, str) and not value.strip())
        if empty and field["type"] != "boolean":
            if field["required"]:
                errors[field["id"]] = "is required"
            cleaned[field["id"]] = None  # like Camunda: a blank optional field is null, so scripts can test it
            continue
        try:
            value = _coerce(field, value)
            _check_constraints(field, value)
        except ValueError as exc:
            errors[field["id"]] = str(exc)
            continue
        cleaned[field["id"]] = value
    if errors:
        raise InvalidSubmission(errors)
    return cleaned
