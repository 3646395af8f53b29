"""Forms of the case pages: a new case from a 社区戒毒决定书, uploads, and the stage actions started from a case."""

from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from app.auth.roles import Role
from app.cases.models import CaseStatus, Measure
from app.core.clock import now
from app.core.templating import LOCAL_TZ

# --- the resident ID number (GB 11643-1999) -----------------------------------------------------------------------

#: Weights of the first 17 characters (2^(17-i) mod 11) and the check character for each sum mod 11.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CODES = "10X98765432"


def normalize_id_number(value: str | None) -> str:
    """Without spaces, with an upper-case check character (people type 'x')."""
    return "".join((value or "").split()).replace("\x00", "").upper()


def id_check_character(first17: str) -> str:
    """The check character of an 18-character resident ID number from its first 17 digits."""
    return ID_CHECK_CODES[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def id_birth_date(id_number: str) -> date | None:
    """The birth date in characters 7-14 (YYYYMMDD), or None if it is not a real date."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def id_gender(id_number: str) -> str:
    """The 17th digit: odd for men, even for women."""
    return "male" if int(id_number[16]) % 2 else "female"


def id_number_problem(id_number: str, today: date | None = None) -> str | None:
    """Why ``id_number`` (normalized) is not a valid 18-character resident ID number, or None if it is."""
    if len(id_number) != 18:
        return _("A resident ID number has 18 characters; this one has %(n)d.", n=len(id_number))
    if not id_number[:17].isdigit() or not (id_number[17].isdigit() or id_number[17] == "X"):
        return _("A resident ID number has 17 digits followed by a digit or X.")
    born = id_birth_date(id_number)
    if born is None or born.year < 1900 or (today is not None and born > today):
        return _("Characters 7 to 14 of the ID number are not a valid birth date.")
    if id_number[17] != id_check_character(id_number[:17]):
        return _("The check character (the last one) does not match: check the number for a typing error.")
    return None


def _beijing_today() -> date:
    return now().astimezone(LOCAL_TZ).date()


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _strip(value):
    """Trimmed, without control characters (PostgreSQL refuses NUL in text)."""
    return value.translate(_CONTROL).strip() if isinstance(value, str) else value


# --- new case ---------------------------------------------------------------------------------------------------


def optional_int(value) -> int | None:
    """Select values that are ids; the empty "choose" option is None."""
    return None if value in ("", None) else int(value)


def placeholder() -> SelectChoice:
    return SelectChoice("", _("— choose —"))


def choices(labels: dict) -> list[SelectChoice]:
    """Select options from a value -> label dict."""
    return [SelectChoice(value, label) for value, label in labels.items()]


GENDER_LABELS = {"male": _l("Male"), "female": _l("Female")}
MEASURE_LABELS = {
    Measure.COMMUNITY_TREATMENT.value: _l("Community treatment (社区戒毒, 法33)"),
    Measure.COMMUNITY_REHABILITATION.value: _l("Community rehabilitation (社区康复, 法48)"),
}


class NewCaseForm(FlaskForm):
    """The 社区戒毒决定书 as typed in from the paper decision; the community choices are set by the view."""

    person_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=100)], filters=[_strip])
    id_number = StringField(
        _l("Resident ID number"), validators=[DataRequired(), Length(max=32)], filters=[normalize_id_number]
    )
    gender = SelectField(
        _l("Gender"), choices=choices({"": _l("From the ID number")} | GENDER_LABELS), validators=[Optional()]
    )
    birth_date = DateField(_l("Birth date"), validators=[Optional()])
    decision_date = DateField(_l("Decision date"), validators=[InputRequired(_l("Enter the date of the decision."))])
    decision_number = StringField(
        _l("Decision document number"), validators=[DataRequired(), Length(max=64)], filters=[_strip]
    )
    decision_authority = StringField(
        _l("Issuing public security organ"), validators=[DataRequired(), Length(max=100)], filters=[_strip]
    )
    community_id = SelectField(
        _l("Community"), coerce=optional_int, validators=[InputRequired(_l("Choose the community that executes it."))]
    )
    measure = SelectField(_l("Measure"), choices=choices(MEASURE_LABELS), default=Measure.COMMUNITY_TREATMENT.value)
    unified_intake = BooleanField(_l("Unified intake (Guiyang): detox first, then a diagnostic assessment"))

    def validate_id_number(self, field):
        problem = id_number_problem(field.data or "", _beijing_today())
        if problem:
            raise ValidationError(problem)

    def validate_gender(self, field):
        if field.data and not self.id_number.errors and id_number_problem(self.id_number.data or "") is None:
            if field.data != id_gender(self.id_number.data):
                raise ValidationError(_l("The ID number belongs to a person of the other gender."))

    def validate_birth_date(self, field):
        number = self.id_number.data or ""
        if field.data and id_number_problem(number) is None and field.data != id_birth_date(number):
            raise ValidationError(_l("The birth date differs from the one in the ID number."))

    def validate_decision_date(self, field):
        if field.data and field.data > _beijing_today():
            raise ValidationError(_l("The decision date cannot be in the future."))
        if field.data and field.data.year < 1990:
            raise ValidationError(_l("Check the year of the decision."))

    def case_fields(self) -> dict:
        """Keyword arguments for app.cases.operations.open_case."""
        number = self.id_number.data
        return {
            "person_name": self.person_name.data,
            "id_number": number,
            "decision_date": self.decision_date.data,
            "unified_intake": bool(self.unified_intake.data),
            "measure": Measure(self.measure.data),
            "gender": self.gender.data or id_gender(number),
            "birth_date": self.birth_date.data or id_birth_date(number),
            "facts": {
                "decision_no": self.decision_number.data,
                "decision_authority": self.decision_authority.data,
                "unified_intake": bool(self.unified_intake.data),
            },
        }


class UploadForm(FlaskForm):
    document = FileField(_l("Document (JPEG, PNG, WebP or PDF)"), validators=[FileRequired(_l("Choose a file."))])


# --- stage actions: messages the app sends to a case's processes (workflows/README.md) -------------------------

VIOLATION_KINDS = {
    "refusal": _l("Evaded or refused a drug test (条例20)"),
    "absence": _l("Left the county without permission (条例20)"),
    "drug_use": _l("Drug use during the term (条例21)"),
    "other": _l("Other violation of the agreement"),
}


class ActionForm(FlaskForm):
    """The form of one stage action: ``setup`` fills choices that depend on the case, ``payload`` is the message."""

    def setup(self, case) -> None:
        pass

    def payload(self) -> dict:
        return {}


class ViolationForm(ActionForm):
    violation_kind = SelectField(_l("Kind of violation"), choices=choices(VIOLATION_KINDS))
    absence_days = IntegerField(
        _l("Days away (absence only)"), validators=[Optional(), NumberRange(min=0, max=3650)], default=0
    )
    evidence = TextAreaField(
        _l("Evidence"),
        validators=[DataRequired(), Length(max=2000)],
        filters=[_strip],
        description=_l("What happened, when, and where the record is."),
    )

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # Not an inline validator: Optional() ends the field's chain when it is left empty.
        if self.violation_kind.data == "absence" and not self.absence_days.errors and not self.absence_days.data:
            self.absence_days.errors.append(_("Enter how many days the person was away."))
            return False
        return valid

    def payload(self) -> dict:
        days = (self.absence_days.data or 0) if self.violation_kind.data == "absence" else 0
        return {"violation_kind": self.violation_kind.data, "absence_days": days, "evidence": self.evidence.data}


class TransferForm(ActionForm):
    new_community_id = SelectField(
        _l("New execution place (community)"),
        coerce=optional_int,
        validators=[InputRequired(_l("Choose a community."))],
    )

    def setup(self, case) -> None:
        from app.cases.queries import transfer_targets

        targets = [SelectChoice(node.id, node.name) for node in transfer_targets(case)]
        self.new_community_id.choices = [placeholder(), *targets]

    def payload(self) -> dict:
        return {"new_community_id": self.new_community_id.data}


class EmploymentForm(ActionForm):
    """No questions: the needs assessment is the first task of employment.bpmn."""


SUSPENSION_REASONS = {"detained": _l("Detained (拘留)"), "arrested": _l("Arrested (逮捕)")}
TERMINATION_REASONS = {"prison_sentence": _l("Sentenced to prison"), "compulsory_education": _l("Compulsory education")}


class SuspensionForm(ActionForm):
    reason = SelectField(_l("Reason"), choices=choices(SUSPENSION_REASONS))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)], filters=[_strip])

    def payload(self) -> dict:
        return {"reason": self.reason.data, "note": self.note.data or ""}


class ResumptionForm(ActionForm):
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)], filters=[_strip])

    def payload(self) -> dict:
        return {"reason": "released", "note": self.note.data or ""}


class TerminationForm(ActionForm):
    reason = SelectField(_l("Reason"), choices=choices(TERMINATION_REASONS))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)], filters=[_strip])

    def payload(self) -> dict:
        return {"reason": self.reason.data, "note": self.note.data or ""}


@dataclass(frozen=True)
class StageAction:
    """A message the case page may send (the "app" senders of workflows/README.md) and when it makes sense."""

    message: str
    label: str
    help: str
    form: type[ActionForm]
    roles: frozenset[str]
    #: Stages in which it is offered (empty: any stage).
    stages: frozenset[str] = frozenset()
    statuses: frozenset[CaseStatus] = frozenset({CaseStatus.OPEN})
    #: Offered only while a process of the case waits for this message (catch events, not message starts).
    needs_waiting: bool = False
    #: Not offered while an instance of this process is still running for the case.
    single: str | None = None
    #: Asks for a confirmation before sending (changes that are hard to undo).
    confirm: str | None = None

    def make_form(self, case, submitted: bool = False) -> ActionForm:
        """The action's form, prefixed so several can share one page; bound to the request only if ``submitted``."""
        form = self.form(prefix=self.message) if submitted else self.form(prefix=self.message, formdata=None)
        form.setup(case)
        return form


_TERM_STAGES = frozenset({"supervision", "rehabilitation"})

STAGE_ACTIONS = {
    action.message: action
    for action in (
        StageAction(
            "violation_reported",
            _l("Report a violation"),
            _l("Counted toward the 条例20 thresholds; a serious violation or drug use goes to the police (条例21)."),
            ViolationForm,
            frozenset({Role.CASEWORKER, Role.POLICE}),
            stages=_TERM_STAGES,
        ),
        StageAction(
            "employment_requested",
            _l("Start employment help"),
            _l("Needs assessment, placement and follow-ups (条例18)."),
            EmploymentForm,
            frozenset({Role.CASEWORKER, Role.CADRE}),
            stages=frozenset({"agreement", "supervision", "rehabilitation"}),
            single="employment",
        ),
        StageAction(
            "transfer_requested",
            _l("Change the execution place"),
            _l("The file is forwarded and the case with its open work moves; the term continues (条例22)."),
            TransferForm,
            frozenset({Role.CASEWORKER, Role.SUPERVISOR}),
            stages=frozenset({"agreement", "supervision", "rehabilitation"}),
            single="transfer",
            confirm=_l("Move this case to another community?"),
        ),
        StageAction(
            "case_suspended",
            _l("Record detention or arrest (中止)"),
            _l("The term clock pauses until the person is released (条例24)."),
            SuspensionForm,
            frozenset({Role.POLICE}),
            needs_waiting=True,
        ),
        StageAction(
            "case_resumed",
            _l("Record release: resume the term"),
            _l("The days suspended are added to the term (条例24)."),
            ResumptionForm,
            frozenset({Role.POLICE}),
            statuses=frozenset({CaseStatus.SUSPENDED}),
            needs_waiting=True,
        ),
        StageAction(
            "case_terminated",
            _l("Record a prison sentence or compulsory education (终止)"),
            _l("The case is closed as terminated and kept (条例24)."),
            TerminationForm,
            frozenset({Role.POLICE}),
            statuses=frozenset({CaseStatus.OPEN, CaseStatus.SUSPENDED}),
            needs_waiting=True,
            confirm=_l("Close this case as terminated? This cannot be undone."),
        ),
    )
}
