"""Administration pages (admin role): users, roles, the jurisdiction tree.

An admin manages the users and nodes of their own node and below; anything else answers 404, and so does every
page here for someone without the admin role (the pages' existence is not disclosed).
"""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from app.admin.forms import (
    NodeCreateForm,
    NodeRenameForm,
    UserCreateForm,
    UserEditForm,
    level_label,
    node_children,
    node_choices,
)
from app.auth.models import JurisdictionNode, NodeLevel, User
from app.auth.operations import (
    NodeError,
    UserError,
    add_child_node,
    child_level,
    create_user,
    rename_node,
    update_user,
)
from app.auth.roles import Role
from app.auth.scope import get_in_scope_or_404, in_scope, node_in_scope, scope_nodes
from app.core.db import transaction
from app.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")

USERS_PER_PAGE = 25


@bp.before_request
@login_required
def _admins_only():
    if not current_user.has_role(Role.ADMIN):
        abort(404)


@bp.context_processor
def _helpers():
    return {"level_label": level_label, "child_level": child_level}


def _node_or_404(node_id: int) -> JurisdictionNode:
    if not node_in_scope(node_id):
        abort(404)
    return db.session.get(JurisdictionNode, node_id)


def _picked_node(form) -> JurisdictionNode:
    # The select only offers nodes in scope and refuses others; checked again here as the last word.
    return _node_or_404(form.jurisdiction.data)


@bp.get("/")
def index():
    return redirect(url_for("admin.users"))


@bp.get("/users")
def users():
    q = request.args.get("q", "").strip()
    query = select(User).where(in_scope(User.jurisdiction_id)).order_by(User.username)
    if q:
        query = query.where(
            or_(User.username.icontains(q, autoescape=True), User.display_name.icontains(q, autoescape=True))
        )
    page = db.paginate(query, page=request.args.get("page", 1, type=int), per_page=USERS_PER_PAGE, error_out=False)
    return render_template("admin/users.html", page=page, q=q)


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserCreateForm(data={"jurisdiction": current_user.jurisdiction_id})
    form.jurisdiction.choices = node_choices(scope_nodes())
    if form.validate_on_submit():
        try:
            with transaction():
                user = create_user(
                    form.username.data,
                    form.password.data,
                    form.roles.data,
                    _picked_node(form),
                    display_name=form.display_name.data,
                    actor_id=current_user.id,
                )
        except UserError as exc:
            form.form_errors.append(_("The user was not created: %(reason)s", reason=str(exc)))
        else:
            flash(_("User %(name)s was created.", name=user.username), "success")
            return redirect(url_for("admin.users", q=user.username))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    user = get_in_scope_or_404(User, user_id)
    form = UserEditForm(
        data={
            "display_name": user.display_name,
            "roles": sorted(user.roles),
            "jurisdiction": user.jurisdiction_id,
            "active": user.active,
        }
    )
    form.jurisdiction.choices = node_choices(scope_nodes())
    if form.validate_on_submit() and _not_locking_self_out(user, form):
        try:
            with transaction():
                update_user(
                    user,
                    display_name=form.display_name.data,
                    roles=form.roles.data,
                    jurisdiction=_picked_node(form),
                    active=form.active.data,
                    password=form.password.data or None,
                    actor_id=current_user.id,
                )
        except UserError as exc:
            form.form_errors.append(_("The changes were not saved: %(reason)s", reason=str(exc)))
        else:
            flash(_("The changes to %(name)s were saved.", name=user.username), "success")
            return redirect(url_for("admin.users", q=user.username))
    return render_template("admin/user_form.html", form=form, user=user)


def _not_locking_self_out(user: User, form: UserEditForm) -> bool:
    """An admin may not deactivate themselves nor drop their own admin role (someone must be left to fix it)."""
    if user.id != current_user.id:
        return True
    if not form.active.data:
        form.active.errors.append(_("You cannot deactivate your own account."))
    if Role.ADMIN.value not in form.roles.data:
        form.roles.errors.append(_("You cannot remove your own administrator role."))
    return not (form.active.errors or form.roles.errors)


@bp.get("/nodes")
def nodes():
    return render_template("admin/nodes.html", children=node_children(scope_nodes()))


@bp.route("/nodes/<int:node_id>/children/new", methods=["GET", "POST"])
def node_new(node_id: int):
    parent = _node_or_404(node_id)
    form = NodeCreateForm(parent)
    if form.validate_on_submit():
        try:
            with transaction():
                node = add_child_node(parent, form.name.data, NodeLevel(form.level.data), actor_id=current_user.id)
        except NodeError as exc:
            form.form_errors.append(_("The node was not added: %(reason)s", reason=str(exc)))
        else:
            flash(_("%(name)s was added below %(parent)s.", name=node.name, parent=parent.name), "success")
            return redirect(url_for("admin.nodes", _anchor=f"node-{node.id}"))
    return render_template("admin/node_form.html", form=form, parent=parent, node=None)


@bp.route("/nodes/<int:node_id>/rename", methods=["GET", "POST"])
def node_rename(node_id: int):
    node = _node_or_404(node_id)
    form = NodeRenameForm(node, data={"name": node.name})
    if form.validate_on_submit():
        old = node.name
        try:
            with transaction():
                rename_node(node, form.name.data, actor_id=current_user.id)
        except NodeError as exc:
            form.form_errors.append(_("The node was not renamed: %(reason)s", reason=str(exc)))
        else:
            flash(_("%(old)s is now called %(new)s.", old=old, new=node.name), "success")
            return redirect(url_for("admin.nodes", _anchor=f"node-{node.id}"))
    return render_template("admin/node_form.html", form=form, parent=node.parent, node=node)
