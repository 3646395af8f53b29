"""Error pages: a clear message in the interface language, never a stack trace; htmx gets a fragment."""

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

MESSAGES = {
    400: lambda: _("The request could not be understood."),
    403: lambda: _("You do not have permission to do this."),
    404: lambda: _("Not found, or not in your jurisdiction."),
    413: lambda: _("The upload is too large."),
    429: lambda: _("Too many attempts. Wait a minute and try again."),
    500: lambda: _("Something went wrong on our side. Nothing was saved; please try again."),
}


def _render(status: int, message: str | None = None):
    message = message or MESSAGES.get(status, MESSAGES[500])()
    if request.headers.get("HX-Request"):
        return render_template("_error_fragment.html", status=status, message=message), status
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    for status in MESSAGES:
        app.register_error_handler(status, lambda exc, status=status: _render(status))

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return _render(400, _("The form expired. Go back, reload the page and send it again."))
