"""Forms of the designer pages."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.designer.operations import MAX_REASON_LENGTH


class NewDraftForm(FlaskForm):
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice("bpmn", _l("Process (BPMN)")), SelectChoice("dmn", _l("Decision table (DMN)"))],
        default="bpmn",
    )


class UploadForm(FlaskForm):
    file = FileField(
        _l("BPMN or DMN file"),
        validators=[FileRequired(_l("Choose a file."))],
        render_kw={"accept": ".bpmn,.dmn,.xml"},
    )


class RejectForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[DataRequired(message=_l("Say why the deploy is rejected.")), Length(max=MAX_REASON_LENGTH)],
        render_kw={"rows": 2, "maxlength": MAX_REASON_LENGTH},
    )


class MigrationForm(FlaskForm):
    """Which instances of a version move to which version; element mappings are extra fields named map__<id>."""

    target = SelectField(_l("Move to version"), coerce=int, validators=[DataRequired()])
    node = SelectField(_l("Jurisdiction"), coerce=int, default=0)
    waiting_at = SelectField(_l("Waiting at"), default="")
    started_from = DateField(_l("Started on or after"), validators=[Optional()])
    started_to = DateField(_l("Started before"), validators=[Optional()])

    def validate_started_to(self, field):
        if field.data and self.started_from.data and field.data <= self.started_from.data:
            raise ValidationError(_l("Must be after the start of the range."))
