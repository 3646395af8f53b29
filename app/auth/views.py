"""Sign in and out, change one's password, choose the interface language."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from app.audit.log import record
from app.auth.models import User
from app.auth.passwords import hash_password, verify_password
from app.core.db import transaction
from app.extensions import db, limiter, login_manager

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please sign in to see this page.")
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=128)])
    confirm = PasswordField(
        _l("New password again"), validators=[DataRequired(), EqualTo("new", message=_l("The two entries differ."))]
    )


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        with transaction():
            user = db.session.scalars(select(User).where(User.username == form.username.data)).first()
            if user is not None and user.active and verify_password(user.password_hash, form.password.data):
                login_user(user)
                session.permanent = False
                record("user_logged_in", actor_id=user.id, jurisdiction_id=user.jurisdiction_id)
                return redirect(_safe_next(request.args.get("next")))
            record("login_failed", payload={"username": form.username.data[:64], "address": request.remote_addr})
        flash(_("Wrong username or password."), "error")
    return render_template("auth/login.html", form=form)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("core.index")


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current.data):
            form.current.errors.append(_("The current password is wrong."))
        else:
            with transaction():
                current_user.password_hash = hash_password(form.new.data)
                record("password_changed", actor_id=current_user.id, jurisdiction_id=current_user.jurisdiction_id)
            flash(_("Your password was changed."), "success")
            return redirect(url_for("core.index"))
    return render_template("auth/password.html", form=form)


@bp.post("/language")
def set_language():
    """Remember the chosen language: on the account when signed in, else in the session."""
    locale = request.form.get("locale", "")
    if locale in current_app.config["LANGUAGES"]:
        session["locale"] = locale
        if current_user.is_authenticated:
            with transaction():
                current_user.locale = locale
    return redirect(_safe_next(request.form.get("next")))
