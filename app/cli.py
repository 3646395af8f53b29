"""Flask commands: workflows, worker, users, incidents, demo data, audit, KPIs."""

import json
import time
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from app import engine
from app.core.db import transaction
from app.extensions import db


def register_cli(app: Flask) -> None:
    app.cli.add_command(workflows_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(incidents_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(kpi_cli)


@click.group("workflows", help="Deploy and list BPMN/DMN definitions.")
def workflows_cli():
    pass


@workflows_cli.command("deploy")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def deploy_command(paths: tuple[Path, ...]):
    """Deploy PATHS (files or folders; default: all of workflows/). All or nothing."""
    if not paths:
        paths = (Path(current_app.config["WORKFLOWS_DIR"]),)
    sources = []
    for path in paths:
        sources.extend(engine.workflow_files(path) if path.is_dir() else [engine.SourceFile.from_path(path)])
    if not sources:
        click.echo("nothing to deploy")
        return
    try:
        with transaction():
            result = engine.deploy(sources)
    except engine.InvalidDefinition as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise click.exceptions.Exit(1) from None
    for definition in result.deployed:
        click.echo(f"deployed {definition.key} v{definition.version} ({definition.file_name})")
    for definition in result.unchanged:
        click.echo(f"unchanged {definition.key} v{definition.version}")


@workflows_cli.command("list")
def list_command():
    """List the newest version of every definition."""
    from app.engine.models import ProcessInstance

    for definition in engine.latest_definitions():
        running = db.session.scalar(
            select(func.count()).select_from(ProcessInstance).where(ProcessInstance.process_key == definition.key)
        )
        click.echo(
            f"{definition.key:28} {definition.kind.value:5} v{definition.version:<3} {definition.sha256[:12]} "
            f"{definition.deployed_at:%Y-%m-%d %H:%M} instances={running} {definition.file_name}"
        )


@click.command("worker")
@click.option("--once", is_flag=True, help="Process everything due now, then exit.")
@click.option("--batch", type=int, default=None, help="Instances per transaction.")
def worker_command(once: bool, batch: int | None):
    """Fire due timers and deliver pending messages; run as many workers as you like on PostgreSQL."""
    from app.worker import run_once

    batch = batch or current_app.config["WORKER_BATCH_SIZE"]
    idle = current_app.config["WORKER_IDLE_SECONDS"]
    total = 0
    while True:
        fired, delivered = run_once(batch)
        total += fired + delivered
        if fired == 0 and delivered == 0:
            if once:
                break
            time.sleep(idle)
    if once:
        click.echo(f"worker: {total} timers fired or messages delivered")


@click.group("users", help="Manage user accounts.")
def users_cli():
    pass


@users_cli.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", "roles", multiple=True, required=True, help="caseworker, police, supervisor, ... (repeat)")
@click.option("--node", "node_id", type=int, default=None, help="Jurisdiction node id the user works in.")
@click.option("--name", "display_name", default="")
def create_user_command(username, password, roles, node_id, display_name):
    """Create a user with one or more roles."""
    from app.auth.models import JurisdictionNode
    from app.auth.operations import UserError, create_user

    try:
        with transaction():
            node = db.session.get(JurisdictionNode, node_id) if node_id else None
            if node_id and node is None:
                raise UserError(f"no jurisdiction node {node_id}")
            user = create_user(username, password, list(roles), node, display_name)
            click.echo(f"created user {user.username} (id {user.id}) roles={','.join(sorted(user.roles))}")
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("incidents", help="List and retry failed steps.")
def incidents_cli():
    pass


@incidents_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved incidents.")
def incidents_list(show_all: bool):
    from app.engine.models import Incident, IncidentStatus

    query = select(Incident).order_by(Incident.id)
    if not show_all:
        query = query.where(Incident.status == IncidentStatus.OPEN)
    rows = db.session.scalars(query).all()
    if not rows:
        click.echo("no incidents")
    for incident in rows:
        click.echo(
            f"#{incident.id} {incident.status.value} instance={incident.instance_id} case={incident.case_id} "
            f"element={incident.element_id} job={incident.job} attempts={incident.attempts}: {incident.error}"
        )


@incidents_cli.command("retry")
@click.argument("incident_id", type=int)
@click.option("--data", default=None, help="JSON object merged into the failing step's data, e.g. '{\"x\": 1}'.")
def incidents_retry(incident_id: int, data: str | None):
    """Run the failed steps of an incident again."""
    try:
        values = json.loads(data) if data else None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--data is not valid JSON: {exc}") from None
    if values is not None and not isinstance(values, dict):
        raise click.ClickException("--data must be a JSON object")
    try:
        with transaction():
            info = engine.retry_incident(incident_id, data=values)
    except engine.EngineError as exc:
        raise click.ClickException(str(exc)) from None
    if info.incident_id:
        click.echo(f"incident {incident_id}: failed again, see `flask incidents list`")
        raise click.exceptions.Exit(1)
    click.echo(f"incident {incident_id} resolved; instance {info.id} is {info.status}")


@click.group("demo", help="Demo data.")
def demo_cli():
    pass


@demo_cli.command("seed")
@click.option("--once", is_flag=True, help="Do nothing if demo data exists already.")
@click.option("--caseload", default=40, show_default=True, help="Synthetic cases run through recent months.")
@click.option("--months", default=8, show_default=True, help="How many months of history to simulate.")
def demo_seed(once: bool, caseload: int, months: int):
    """Create the jurisdiction tree, demo users (password demo1234) and a lively caseload."""
    from app.demo import seed, seed_caseload

    with transaction():
        created = seed(skip_if_present=once)
        simulate = created and caseload > 0 and any(d.key == "case" for d in engine.latest_definitions())
    if simulate:
        seed_caseload(caseload, months)
    click.echo("demo data created" if created else "demo data already present")


@demo_cli.command("simulate")
@click.option("--cases", default=100, show_default=True, help="How many synthetic cases to open.")
@click.option("--years", default=3.0, show_default=True, help="Simulated years to run them for.")
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same caseload).")
@click.option("--step-days", default=1, show_default=True, help="Simulated days per step.")
def demo_simulate(cases: int, years: float, seed: int, step_days: int):
    """Drive synthetic cases through the lifecycle with a simulated clock and print what happened."""
    from app.simulation import simulate

    try:
        report = simulate(cases, years, seed, step_days=step_days)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{report.cases} cases, {report.days} days simulated in {report.seconds:.1f} s")
    click.echo(f"tasks completed: {report.completed_tasks}, timers fired: {report.timers_fired}")
    click.echo("by stage:   " + ", ".join(f"{k}={v}" for k, v in sorted(report.stages.items())))
    click.echo("by status:  " + ", ".join(f"{k}={v}" for k, v in sorted(report.statuses.items())))
    click.echo("closed as:  " + (", ".join(f"{k}={v}" for k, v in sorted(report.outcomes.items())) or "-"))


@workflows_cli.command("layout")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing diagram layout.")
def layout_command(paths: tuple[Path, ...], force: bool):
    """Add diagram interchange (shapes and edges) to BPMN files drawn without it, in place."""
    from app.engine.layout import add_diagram, missing_diagram_elements

    for path in paths:
        text = path.read_text(encoding="utf-8")
        laid_out = add_diagram(text, force=force)
        if laid_out != text:
            path.write_text(laid_out, encoding="utf-8")
        missing = missing_diagram_elements(laid_out)
        click.echo(f"{path}: {'complete' if not missing else 'missing ' + ', '.join(missing)}")


@click.group("audit", help="Check the audit log.")
def audit_cli():
    pass


@audit_cli.command("verify")
@click.option("--batch", default=5000, show_default=True, help="Rows read per query.")
def audit_verify(batch: int):
    """Walk the audit hash chain; report the first altered, deleted or inserted row and exit 1."""
    from app.audit.chain import verify_chain

    started = time.perf_counter()
    db.session.rollback()  # start a fresh transaction: verify_chain reads in one snapshot
    result = verify_chain(db.session, batch=batch)
    db.session.rollback()  # read only
    if not result.ok:
        click.echo(f"audit chain broken: {result.problem} ({result.rows} rows before it verified)", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{result.rows} rows verified in {time.perf_counter() - started:.1f} s")


@click.group("kpi", help="The KPI read model (the worker keeps it current).")
def kpi_cli():
    pass


@kpi_cli.command("refresh")
@click.option(
    "--from",
    "since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Count only the months from the one holding this date (YYYY-MM-DD) on again; keep the earlier ones.",
)
def kpi_refresh(since):
    """Count every KPI of every case again (after changing a measure, or to repair the read model)."""
    from app.audit.kpi_model import refresh

    with transaction():
        done = refresh(full=since is None, since=since.date() if since else None, wait=True)
    months = "every month" if done.full else f"the months from {since:%Y-%m} on"
    click.echo(f"kpi: counted {months} of {done.cases} cases in {done.seconds:.1f} s; kpi_count has {done.rows} rows")
