"""Forms of the administration pages; choices that depend on the admin's scope are filled in by the views."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from app.auth.models import JurisdictionNode, NodeLevel, User
from app.auth.operations import child_level, sibling_named
from app.auth.roles import ROLE_LABELS, Role
from app.extensions import db

LEVEL_LABELS = {
    NodeLevel.CITY: _l("City"),
    NodeLevel.DISTRICT: _l("District"),
    NodeLevel.STREET: _l("Street"),
    NodeLevel.COMMUNITY: _l("Community"),
    NodeLevel.GRID: _l("Grid"),
}


_INDENT = "\u00a0" * 3


def level_label(level: str | None) -> str:
    return str(LEVEL_LABELS.get(level, level or ""))


def node_children(nodes: list[JurisdictionNode]) -> dict[int | None, list[JurisdictionNode]]:
    """Parent id -> children sorted by name; the top nodes (parent not among ``nodes``) under None.

    Built from parent ids, not by sorting paths: text order of "/1/2/" paths depends on the database collation.
    """
    ids = {node.id for node in nodes}
    children: dict[int | None, list[JurisdictionNode]] = {}
    for node in nodes:
        children.setdefault(node.parent_id if node.parent_id in ids else None, []).append(node)
    for siblings in children.values():
        siblings.sort(key=lambda n: (n.name, n.id))
    return children


def node_choices(nodes: list[JurisdictionNode]) -> list[SelectChoice]:
    """(id, "name (level)") in tree order for a select, indented by depth (no-break spaces) so the tree shows."""
    children = node_children(nodes)
    choices: list[SelectChoice] = []

    def add(node: JurisdictionNode, depth: int) -> None:
        choices.append(SelectChoice(node.id, _INDENT * depth + f"{node.name} ({level_label(node.level)})"))
        for child in children.get(node.id, []):
            add(child, depth + 1)

    for top in children.get(None, []):
        add(top, 0)
    return choices


def _password_length() -> Length:
    return Length(min=8, max=128, message=_l("The password must have at least 8 characters (and at most 128)."))


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _at_least_one(form, field):
    # Not DataRequired: that would put `required` on every checkbox of the group.
    if not field.data:
        raise ValidationError(_("Choose at least one role."))


class RolesField(SelectMultipleField):
    """Several roles, as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _role_field() -> RolesField:
    return RolesField(
        _l("Roles"), choices=[SelectChoice(role.value, ROLE_LABELS[role]) for role in Role], validators=[_at_least_one]
    )


class UserForm(FlaskForm):
    display_name = StringField(_l("Display name"), filters=[_strip], validators=[Length(max=100)])
    roles = _role_field()
    jurisdiction = SelectField(_l("Jurisdiction"), coerce=int, validators=[DataRequired()])


class UserCreateForm(UserForm):
    username = StringField(
        _l("Username"),
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=64),
            Regexp(r"^\S+$", message=_l("A username has no spaces.")),
        ],
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(), _password_length()])

    def validate_username(self, field):
        if db.session.scalar(select(User.id).where(User.username == field.data)) is not None:
            raise ValidationError(_("This username is taken."))


class UserEditForm(UserForm):
    active = BooleanField(_l("Active (may sign in)"))
    password = PasswordField(_l("New password"), validators=[Optional(), _password_length()])


class NodeRenameForm(FlaskForm):
    """Rename ``node``: the name must differ from its siblings'."""

    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])

    def __init__(self, node: JurisdictionNode, **kwargs):
        super().__init__(**kwargs)
        self.node = node

    def validate_name(self, field):
        if sibling_named(field.data, self.node.parent_id, exclude_id=self.node.id) is not None:
            raise ValidationError(_("A node at the same place already has this name."))


class NodeCreateForm(FlaskForm):
    """A new node below ``parent``: one level down, a name none of its siblings has."""

    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    level = SelectField(_l("Level"), choices=[SelectChoice(level.value, LEVEL_LABELS[level]) for level in NodeLevel])

    def __init__(self, parent: JurisdictionNode, **kwargs):
        super().__init__(**kwargs)
        self.parent = parent
        if not self.is_submitted():
            expected = child_level(parent.level)
            self.level.data = expected.value if expected else None

    def validate_name(self, field):
        if sibling_named(field.data, self.parent.id) is not None:
            raise ValidationError(_("%(parent)s already has a node with this name.", parent=self.parent.name))

    def validate_level(self, field):
        expected = child_level(self.parent.level)
        if expected is None:
            raise ValidationError(_("Nothing can be added below a grid."))
        if field.data != expected.value:
            raise ValidationError(
                _(
                    "Below a %(parent)s comes a %(child)s.",
                    parent=level_label(self.parent.level),
                    child=level_label(expected),
                )
            )
