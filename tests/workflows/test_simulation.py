"""`flask demo simulate`: synthetic cases run through the whole library without incidents."""

from datetime import UTC, datetime

from app.simulation import simulate


def test_simulated_caseload_runs_without_incidents(flow):
    report = simulate(cases=12, years=1.2, seed=3, start=datetime(2026, 3, 2, 1, 0, tzinfo=UTC), step_days=3)
    assert report.cases == 12 and sum(report.statuses.values()) == 12
    assert report.completed_tasks > 12 * 8 and report.timers_fired > 0
    assert "supervision" in report.stages
    assert flow.incidents() == []
