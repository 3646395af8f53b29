"""Forms of the monitoring pages."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.engine import MAX_REASON_LENGTH


class ReasonForm(FlaskForm):
    """Suspending or resuming an instance: the reason goes into the audit log."""

    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Give a reason: it is kept in the audit log.")),
            Length(max=MAX_REASON_LENGTH),
        ],
        render_kw={"rows": 2, "maxlength": MAX_REASON_LENGTH},
    )
