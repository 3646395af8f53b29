"""The KPI dashboard in a real browser: a supervisor opens it, the charts draw (no CSP complaint), drills into a
figure and exports the list as CSV, which is logged."""

import csv
import re

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from tests.browser import read, sign_in

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def test_supervisor_opens_kpis_drills_into_a_figure_and_exports_csv(page):
    sign_in(page, "supervisor")
    page.goto("/kpi/?period=2026")
    expect(page.locator("#kpi-tiers")).to_be_visible()
    expect(page.locator("#kpi-satisfaction")).to_be_visible()  # shown as not available, with what it needs
    expect(page.locator("#kpi-violations canvas[data-drawn='1']")).to_have_count(1)  # trend fetched and drawn

    page.locator("#kpi-tiers a.kpi-key[data-key='none']").click()  # the three demo cases are not tiered yet
    page.wait_for_url(re.compile(r"/kpi/tiers/cases\?"))
    expect(page.locator("#kpi-total")).to_have_attribute("data-total", "3")
    expect(page.locator("table tbody tr")).to_have_count(3)
    expect(page.locator("table tbody .id-masked").first).to_have_text(re.compile(r"^\*+\w{4}$"))

    with page.expect_download() as info:
        page.locator("#kpi-export").click()
    download = info.value
    assert download.suggested_filename == "kpi-tiers-2026.csv"
    with open(download.path(), encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 3
    assert all(re.fullmatch(r"\*+\w{4}", row[1]) for row in rows[1:])

    logged = read(
        lambda s: [e.payload for e in s.scalars(select(AuditEvent).where(AuditEvent.type == "export_downloaded"))]
    )
    assert logged == [{"measure": "tiers", "rows": 3, "period": "2026", "key": "none"}]
