"""Sign in and out."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from app.audit.log import record
from app.auth.models import User
from app.auth.passwords import verify_password
from app.core.db import transaction
from app.extensions import db, login_manager

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager.login_view = "auth.login"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


class LoginForm(FlaskForm):
    username = StringField("用户名 Username", validators=[DataRequired()])
    password = PasswordField("密码 Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        with transaction():
            user = db.session.scalars(select(User).where(User.username == form.username.data)).first()
            if user is not None and user.active and verify_password(user.password_hash, form.password.data):
                login_user(user)
                record("user_logged_in", actor_id=user.id)
                return redirect(_safe_next(request.args.get("next")))
            record("login_failed", payload={"username": form.username.data[:64]})
        flash("用户名或密码错误 · Wrong username or password", "error")
    return render_template("auth/login.html", form=form)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("core.index")


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
