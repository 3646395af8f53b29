"""Administration pages: users and the jurisdiction tree, for admins only and only within their jurisdiction."""

import json
import re

import pytest
from flask import url_for
from flask_babel import refresh
from sqlalchemy import func, select

from app.admin.forms import UserCreateForm
from app.audit.models import AuditEvent
from app.auth.models import JurisdictionNode, NodeLevel, User
from app.auth.operations import create_user
from app.core.db import transaction
from app.extensions import db
from tests.conftest import PASSWORD

#: The pages the admin blueprint must have (the 404 test also covers any added later).
EXPECTED_ENDPOINTS = {
    "admin.index",
    "admin.users",
    "admin.user_new",
    "admin.user_edit",
    "admin.nodes",
    "admin.node_new",
    "admin.node_rename",
}


@pytest.fixture
def as_user(login, client):
    """``as_user("admin")``: signed in as that user, interface in English (messages are asserted in English)."""

    def sign_in(username: str):
        login(username)
        client.post("/auth/language", data={"locale": "en"})
        # The test client reuses the test's app context, where Flask-Babel caches the first request's locale.
        refresh()
        return client

    return sign_in


@pytest.fixture
def district_admin(users, tree):
    with transaction():
        return create_user("district_admin", PASSWORD, ["admin"], tree["district"], "区管理员")


def events(type_: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.type == type_).order_by(AuditEvent.id)))


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def node_named(name: str) -> JurisdictionNode | None:
    return db.session.scalars(select(JurisdictionNode).where(JurisdictionNode.name == name)).first()


def edit_data(user: User, **changes) -> dict:
    """The edit form as the page would send it for ``user`` unchanged, with ``changes`` applied (None: left out)."""
    data = {
        "display_name": user.display_name,
        "roles": sorted(user.roles),
        "jurisdiction": user.jurisdiction_id,
        "active": "y" if user.active else None,
        "password": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def sign_in_status(client, username: str, password: str = PASSWORD) -> int:
    client.post("/auth/logout")
    return client.post("/auth/login", data={"username": username, "password": password}).status_code


# --- users -----------------------------------------------------------------------------------------------------


def test_admin_creates_a_user_who_appears_and_can_sign_in(as_user, users, tree):
    client = as_user("admin")
    form = client.get("/admin/users/new")
    assert form.status_code == 200 and 'name="username"' in form.get_data(as_text=True)
    response = client.post(
        "/admin/users/new",
        data={
            "username": "li.na",
            "display_name": "李娜",
            "password": "a-good-password",
            "roles": ["caseworker", "cadre"],
            "jurisdiction": tree["b"].id,
        },
    )
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.username == "li.na")).one()
    assert (user.display_name, user.roles, user.jurisdiction_id) == ("李娜", {"caseworker", "cadre"}, tree["b"].id)
    listing = client.get("/admin/users?q=li.na").get_data(as_text=True)
    assert "李娜" in listing and "Caseworker" in listing and "Community cadre" in listing and "茂盛社区" in listing
    (created,) = events("user_created")[-1:]
    assert created.actor_id == users["admin"].id and created.payload["username"] == "li.na"
    assert sign_in_status(client, "li.na", "a-good-password") == 302


def test_duplicate_username_is_refused_and_typed_values_kept(as_user, users, tree):
    client = as_user("admin")
    before = user_count()
    response = client.post(
        "/admin/users/new",
        data={
            "username": "caseworker",
            "display_name": "重名的人",
            "password": "a-good-password",
            "roles": ["police"],
            "jurisdiction": tree["street"].id,
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "This username is taken." in page
    assert re.search(r'<input[^>]*name="username"[^>]*value="caseworker"', page) and 'value="重名的人"' in page
    assert re.search(r'<input[^>]*checked[^>]*value="police"|<input[^>]*value="police"[^>]*checked', page)
    assert not re.search(r'<input[^>]*checked[^>]*value="caseworker"|<input[^>]*value="caseworker"[^>]*checked', page)
    assert re.search(
        rf'<option selected value="{tree["street"].id}"|<option value="{tree["street"].id}" selected', page
    )
    assert 'value="a-good-password"' not in page  # a password is never sent back
    assert user_count() == before and not events("user_created")[len(users) :]


def test_a_user_error_from_the_operation_shows_on_the_form(as_user, users, tree, monkeypatch):
    # The form's own check normally catches a taken name first; the operation's refusal must still show, not crash.
    monkeypatch.setattr(UserCreateForm, "validate_username", lambda form, field: None)
    client = as_user("admin")
    before = user_count()
    response = client.post(
        "/admin/users/new",
        data={
            "username": "caseworker",
            "password": "a-good-password",
            "roles": ["police"],
            "jurisdiction": tree["a"].id,
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "The user was not created" in page and "is taken" in page
    assert re.search(r'<input[^>]*name="username"[^>]*value="caseworker"', page) and user_count() == before


def test_create_form_reports_each_bad_field_and_saves_nothing(as_user, users, tree):
    client = as_user("admin")
    before = user_count()
    response = client.post(
        "/admin/users/new",
        data={"username": "has space", "password": "short", "jurisdiction": 999999, "roles": ["wizard"]},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "A username has no spaces." in page
    assert "at least 8 characters" in page
    assert "Not a valid choice" in page  # the unknown node and the unknown role
    assert page.count("is-invalid") >= 3
    assert user_count() == before


def test_users_list_searches_and_pages(as_user, users, tree):
    with transaction():
        for n in range(30):
            create_user(f"grid{n:02d}", PASSWORD, ["cadre"], tree["a"], f"网格员{n:02d}")
    client = as_user("admin")
    first = client.get("/admin/users").get_data(as_text=True)
    assert first.count("/admin/users/") - first.count("/admin/users/new") == 25
    assert 'href="/admin/users?page=2"' in first
    second = client.get("/admin/users?page=2").get_data(as_text=True)
    assert second.count("/admin/users/") - second.count("/admin/users/new") == len(users) + 30 - 25
    found = client.get("/admin/users", query_string={"q": "网格员07"}).get_data(as_text=True)
    assert "grid07" in found and "grid08" not in found
    by_name = client.get("/admin/users", query_string={"q": "SUPERVIS"}).get_data(as_text=True)
    assert "supervisor" in by_name and "caseworker" not in by_name
    wildcard = client.get("/admin/users", query_string={"q": "%"}).get_data(as_text=True)
    assert "No user matches" in wildcard  # % is searched for, not a wildcard
    hostile = client.get("/admin/users", query_string={"q": "<b>x</b>"}).get_data(as_text=True)
    assert "<b>x</b>" not in hostile and "&lt;b&gt;x&lt;/b&gt;" in hostile


def test_edit_changes_roles_node_name_and_password_and_is_audited(as_user, users, tree):
    client = as_user("admin")
    target = users["caseworker"]
    page = client.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="caseworker"', page) and "New password" in page
    response = client.post(
        f"/admin/users/{target.id}",
        data=edit_data(
            target,
            display_name="张社工",
            roles=["caseworker", "medical"],
            jurisdiction=tree["street"].id,
            password="brand-new-secret",
        ),
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert (target.display_name, target.roles, target.jurisdiction_id) == (
        "张社工",
        {"caseworker", "medical"},
        tree["street"].id,
    )
    (event,) = events("user_updated")
    assert event.actor_id == users["admin"].id and event.payload["user_id"] == target.id
    assert event.payload["changes"] == {
        "display_name": ["caseworker", "张社工"],
        "roles": [["caseworker"], ["caseworker", "medical"]],
        "jurisdiction_id": [tree["a"].id, tree["street"].id],
    }
    assert event.payload["password_reset"] is True
    assert "brand-new-secret" not in json.dumps(event.payload, ensure_ascii=False)
    assert sign_in_status(client, "caseworker") == 200  # the old password no longer works
    assert sign_in_status(client, "caseworker", "brand-new-secret") == 302


def test_deactivated_user_cannot_sign_in_until_reactivated(as_user, users):
    client = as_user("admin")
    target = users["police"]
    assert client.post(f"/admin/users/{target.id}", data=edit_data(target, active=None)).status_code == 302
    db.session.expire_all()
    assert target.active is False
    assert events("user_updated")[-1].payload["changes"] == {"active": [True, False]}
    assert "Deactivated" in client.get("/admin/users?q=police").get_data(as_text=True)
    assert sign_in_status(client, "police") == 200
    as_user("admin")
    assert client.post(f"/admin/users/{target.id}", data=edit_data(target, active="y")).status_code == 302
    assert sign_in_status(client, "police") == 302


def test_bad_edit_saves_nothing(as_user, users, tree):
    client = as_user("admin")
    target = users["cadre"]
    response = client.post(
        f"/admin/users/{target.id}", data=edit_data(target, display_name="改了名字", password="short", roles=[])
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Choose at least one role." in page and "at least 8 characters" in page
    assert 'value="改了名字"' in page  # what was typed stays on the form
    db.session.expire_all()
    assert target.display_name == "cadre" and target.roles == {"cadre"}
    assert events("user_updated") == []


def test_admin_cannot_lock_themselves_out(as_user, users):
    client = as_user("admin")
    me = users["admin"]
    page = client.post(f"/admin/users/{me.id}", data=edit_data(me, active=None, roles=["designer"])).get_data(
        as_text=True
    )
    assert "You cannot deactivate your own account." in page
    assert "You cannot remove your own administrator role." in page
    db.session.expire_all()
    assert me.active and me.roles == {"admin"} and events("user_updated") == []


# --- who may see what ------------------------------------------------------------------------------------------


def _admin_requests(app, users, tree) -> list[tuple[str, str]]:
    """(method, url) for every admin route, with ids of objects that exist and are in the city admin's scope."""
    args = {"user_id": users["caseworker"].id, "node_id": tree["street"].id}
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("admin."):
                url = url_for(rule.endpoint, **{name: args[name] for name in rule.arguments})
                found += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")}
    assert EXPECTED_ENDPOINTS <= endpoints
    return found


@pytest.mark.parametrize("username", ["caseworker", "supervisor", "police", "designer"])
def test_non_admins_get_404_on_every_admin_route(app, as_user, users, tree, username):
    requests = _admin_requests(app, users, tree)
    client = as_user(username)
    for method, url in requests:
        response = client.open(url, method=method, data={"name": "x", "level": "community"})
        assert response.status_code == 404, (method, url)
    # The same pages open for an admin: the 404s above come from the role, not from the ids.
    as_user("admin")
    for method, url in requests:
        if method == "GET":
            assert client.get(url, follow_redirects=True).status_code == 200, url
    assert node_named("x") is None


def test_signed_out_visitors_are_sent_to_sign_in(app, client, users, tree):
    for method, url in _admin_requests(app, users, tree):
        response = client.open(url, method=method)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], (method, url)


def test_menu_shows_administration_to_admins_only(as_user, users):
    client = as_user("admin")
    assert 'href="/admin/users"' in client.get("/auth/password").get_data(as_text=True)
    as_user("supervisor")
    assert 'href="/admin/users"' not in client.get("/auth/password").get_data(as_text=True)


def test_district_admin_sees_and_edits_only_their_district(as_user, users, tree, district_admin):
    client = as_user("district_admin")
    listing = client.get("/admin/users").get_data(as_text=True)
    assert ">caseworker<" in listing and ">supervisor<" in listing
    assert ">admin<" not in listing and ">designer<" not in listing  # both sit at the city
    city_admin = users["admin"]
    assert client.get(f"/admin/users/{city_admin.id}").status_code == 404
    assert client.post(f"/admin/users/{city_admin.id}", data=edit_data(city_admin, active=None)).status_code == 404
    assert client.get(f"/admin/users/{users['caseworker'].id}").status_code == 200

    city = tree["city"]
    assert client.get(f"/admin/nodes/{city.id}/rename").status_code == 404
    assert client.post(f"/admin/nodes/{city.id}/rename", data={"name": "改名市"}).status_code == 404
    assert (
        client.post(f"/admin/nodes/{city.id}/children/new", data={"name": "新区", "level": "district"}).status_code
        == 404
    )
    nodes_page = client.get("/admin/nodes").get_data(as_text=True)
    assert "香洲区" in nodes_page and "夏湾社区" in nodes_page and "珠海市" not in nodes_page

    # The city is not offered as a node, and sending it anyway is refused.
    new_form = client.get("/admin/users/new").get_data(as_text=True)
    assert f'value="{city.id}"' not in new_form
    before = user_count()
    refused = client.post(
        "/admin/users/new",
        data={"username": "up.high", "password": PASSWORD, "roles": ["caseworker"], "jurisdiction": city.id},
    )
    assert refused.status_code == 200 and "Not a valid choice" in refused.get_data(as_text=True)
    assert user_count() == before
    target = users["caseworker"]
    moved = client.post(f"/admin/users/{target.id}", data=edit_data(target, jurisdiction=city.id))
    assert moved.status_code == 200
    db.session.expire_all()
    assert target.jurisdiction_id == tree["a"].id and city.name == "珠海市"
    assert node_named("新区") is None and events("user_updated") == []


def test_admin_without_jurisdiction_manages_nothing(as_user, users):
    with transaction():
        create_user("floating_admin", PASSWORD, ["admin"], None)
    client = as_user("floating_admin")
    assert ">caseworker<" not in client.get("/admin/users").get_data(as_text=True)
    assert client.get(f"/admin/users/{users['caseworker'].id}").status_code == 404
    assert "You have no jurisdiction assigned" in client.get("/admin/nodes").get_data(as_text=True)


# --- jurisdiction tree -----------------------------------------------------------------------------------------


def test_tree_page_nests_nodes_under_their_parents(as_user, users, tree):
    page = as_user("admin").get("/admin/nodes").get_data(as_text=True)
    positions = [page.index(f'id="node-{tree[key].id}"') for key in ("city", "district", "street", "a", "b")]
    assert positions == sorted(positions)
    # Each level opens one more nested list before its children.
    street_block = page[positions[2] : positions[3]]
    assert "<ul" in street_block and f'href="/admin/nodes/{tree["street"].id}/children/new"' in street_block


def test_add_child_node_at_the_next_level(as_user, users, tree):
    client = as_user("admin")
    street = tree["street"]
    form = client.get(f"/admin/nodes/{street.id}/children/new").get_data(as_text=True)
    assert re.search(r'<option selected value="community"|<option value="community" selected', form)
    response = client.post(f"/admin/nodes/{street.id}/children/new", data={"name": " 南屏社区 ", "level": "community"})
    assert response.status_code == 302
    node = node_named("南屏社区")
    assert node.parent_id == street.id and node.level == NodeLevel.COMMUNITY
    assert node.path == f"{street.path}{node.id}/"
    (event,) = events("node_created")
    assert event.actor_id == users["admin"].id
    assert event.payload == {"node_id": node.id, "parent_id": street.id, "name": "南屏社区", "level": "community"}
    assert "南屏社区" in client.get("/admin/nodes").get_data(as_text=True)
    # The new node can then be chosen for a user.
    assert f'value="{node.id}"' in client.get("/admin/users/new").get_data(as_text=True)


@pytest.mark.parametrize("level", ["grid", "street", "district", "city", "nonsense"])
def test_add_child_node_with_a_wrong_level_is_refused(as_user, users, tree, level):
    client = as_user("admin")
    response = client.post(f"/admin/nodes/{tree['street'].id}/children/new", data={"name": "错层", "level": level})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    expected = "Not a valid choice" if level == "nonsense" else "Below a Street comes a Community."
    assert expected in page and 'value="错层"' in page
    assert node_named("错层") is None and events("node_created") == []


def test_nothing_is_added_below_a_grid_and_names_are_unique_among_siblings(as_user, users, tree):
    client = as_user("admin")
    assert (
        client.post(f"/admin/nodes/{tree['a'].id}/children/new", data={"name": "一网格", "level": "grid"}).status_code
        == 302
    )
    grid = node_named("一网格")
    page = client.get("/admin/nodes").get_data(as_text=True)
    assert f'href="/admin/nodes/{grid.id}/children/new"' not in page
    below_grid = client.post(f"/admin/nodes/{grid.id}/children/new", data={"name": "更小", "level": "grid"})
    assert "Nothing can be added below a grid." in below_grid.get_data(as_text=True)
    twin = client.post(f"/admin/nodes/{tree['a'].id}/children/new", data={"name": "一网格", "level": "grid"})
    assert "already has a node with this name" in twin.get_data(as_text=True)
    assert node_named("更小") is None and len(events("node_created")) == 1


def test_rename_node_is_audited_and_checked(as_user, users, tree):
    client = as_user("admin")
    node = tree["a"]
    form = client.get(f"/admin/nodes/{node.id}/rename").get_data(as_text=True)
    assert 'value="夏湾社区"' in form
    assert client.post(f"/admin/nodes/{node.id}/rename", data={"name": "夏湾新社区"}).status_code == 302
    db.session.expire_all()
    assert node.name == "夏湾新社区"
    (event,) = events("node_renamed")
    assert event.actor_id == users["admin"].id
    assert event.payload == {"node_id": node.id, "old": "夏湾社区", "new": "夏湾新社区"}

    empty = client.post(f"/admin/nodes/{node.id}/rename", data={"name": "  "})
    assert empty.status_code == 200 and "This field is required." in empty.get_data(as_text=True)
    clash = client.post(f"/admin/nodes/{node.id}/rename", data={"name": "茂盛社区"})
    assert clash.status_code == 200 and "already has this name" in clash.get_data(as_text=True)
    db.session.expire_all()
    assert node.name == "夏湾新社区" and len(events("node_renamed")) == 1
