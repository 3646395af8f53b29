"""Drafts, deploys and their approval. Each function flushes; the caller commits (one transaction).

A deploy either goes straight to the engine or, with DEPLOY_APPROVAL on, becomes a request that a second designer
or a supervisor approves; the approval validates again against what is deployed by then, so a request that has gone
stale deploys nothing and says why.
"""

import re
import uuid
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

from app import engine
from app.audit.log import record
from app.auth.models import User
from app.auth.roles import Role
from app.core.clock import now
from app.designer.models import DefinitionDraft, DeployRequest, RequestStatus
from app.engine.models import DefinitionKind, ProcessDefinition
from app.extensions import db

#: Who may approve someone else's deploy.
APPROVER_ROLES = frozenset({Role.DESIGNER, Role.SUPERVISOR})
MAX_REASON_LENGTH = 500


class DesignerError(ValueError):
    """A draft or request operation that cannot be done; the message is shown to the user as it is."""


@dataclass(frozen=True)
class DeployOutcome:
    #: The versions created (empty when the deploy waits for approval or nothing changed).
    deployed: list[ProcessDefinition]
    request: DeployRequest | None = None


# --- reading files ---------------------------------------------------------------------------------------------


def _source(file_name: str, xml: str) -> engine.SourceFile:
    if len(xml.encode("utf-8")) > current_app.config["DEFINITION_MAX_BYTES"]:
        limit = current_app.config["DEFINITION_MAX_BYTES"] // 1024
        raise DesignerError(_("The file is larger than %(limit)s KB.", limit=limit))
    return engine.SourceFile(file_name, xml)


def describe(file_name: str, xml: str) -> tuple[engine.ParsedSource, list[engine.Problem]]:
    """The file's kind, key and name, and every problem a deploy would report.

    Raises:
        DesignerError: when the file is not a BPMN or DMN document at all (nothing can be kept).
    """
    parsed, problems = engine.validate([_source(file_name, xml)])
    if not parsed:
        raise DesignerError("; ".join(p.message for p in problems) or _("This is not a BPMN or DMN file."))
    return parsed[0], problems


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|]+')


def clean_file_name(name: str, suffix: str) -> str:
    """A file name safe to store and to send back in a download header: no path, quotes or control characters,
    at most 100 characters, ending in ``suffix`` (".bpmn" or ".dmn")."""
    stem = _UNSAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")
    stem = stem.rsplit(".", 1)[0] if stem.lower().endswith((".bpmn", ".dmn", ".xml")) else stem
    return f"{stem[:100] or 'diagram'}{suffix}"


def decode_upload(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DesignerError(_("The file is not UTF-8 text: save it as UTF-8 and upload it again.")) from None


# --- drafts ------------------------------------------------------------------------------------------------------


def _blank_bpmn() -> tuple[str, str]:
    key = f"process_{uuid.uuid4().hex[:8]}"
    return (
        key,
        f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="{key}_definitions"
  targetNamespace="http://rehabflow.local/workflows">
  <bpmn:process id="{key}" name="新流程 New process" isExecutable="true">
    <bpmn:startEvent id="start" name="开始 Start"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="{key}_diagram">
    <bpmndi:BPMNPlane id="{key}_plane" bpmnElement="{key}">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="180" y="160" width="36" height="36"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
""",
    )


def _blank_dmn() -> tuple[str, str]:
    key = f"decision_{uuid.uuid4().hex[:8]}"
    return (
        key,
        f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="{key}_definitions" name="{key}"
  namespace="http://rehabflow.local/workflows">
  <decision id="{key}" name="新决策 New decision">
    <decisionTable id="{key}_table" hitPolicy="UNIQUE">
      <input id="{key}_input" label="Input">
        <inputExpression id="{key}_input_expression" typeRef="string"><text>value</text></inputExpression>
      </input>
      <output id="{key}_output" name="result" typeRef="string"/>
    </decisionTable>
  </decision>
</definitions>
""",
    )


def new_draft(owner: User, kind: DefinitionKind) -> DefinitionDraft:
    """An empty process (one start event) or decision table, ready to edit."""
    key, xml = _blank_bpmn() if kind == DefinitionKind.BPMN else _blank_dmn()
    return _add_draft(owner, kind, key, "", f"{key}.{kind.value}", xml, None)


def draft_from_version(owner: User, definition: ProcessDefinition) -> DefinitionDraft:
    return _add_draft(
        owner, definition.kind, definition.key, definition.name, definition.file_name, definition.xml, definition.id
    )


def draft_from_upload(owner: User, file_name: str, data: bytes) -> tuple[DefinitionDraft, list[engine.Problem]]:
    """A draft holding an uploaded file, and the problems a deploy of it would report.

    Raises:
        DesignerError: the file is not a readable BPMN or DMN document; nothing is stored.
    """
    if not file_name.lower().endswith((".bpmn", ".dmn", ".xml")):
        raise DesignerError(_("Upload a .bpmn or .dmn file."))
    xml = decode_upload(data)
    parsed, problems = describe(file_name, xml)
    file_name = clean_file_name(file_name, f".{parsed.kind.value}")
    latest = engine.latest_definition(parsed.key)
    base_id = latest.id if latest is not None and latest.kind == parsed.kind else None
    draft = _add_draft(owner, parsed.kind, parsed.key, parsed.name, file_name, xml, base_id)
    return draft, problems


def _add_draft(owner, kind, key, name, file_name, xml, base_id) -> DefinitionDraft:
    at = now()
    draft = DefinitionDraft(
        owner_id=owner.id,
        kind=kind,
        key=key,
        name=name or key,
        file_name=file_name,
        xml=xml,
        base_definition_id=base_id,
        created_at=at,
        updated_at=at,
    )
    db.session.add(draft)
    db.session.flush()
    return draft


def save_draft(draft: DefinitionDraft, xml: str) -> list[engine.Problem]:
    """Keep the edited XML; returns the problems a deploy would report (a draft may have some).

    Raises:
        DesignerError: the XML is not a BPMN/DMN document of the draft's kind; the draft is unchanged.
    """
    parsed, problems = describe(draft.file_name, xml)
    if parsed.kind != draft.kind:
        raise DesignerError(_("This draft holds a %(kind)s file.", kind=draft.kind.value.upper()))
    draft.xml = xml
    draft.key = parsed.key
    draft.name = parsed.name
    draft.updated_at = now()
    db.session.flush()
    return problems


# --- deploying ---------------------------------------------------------------------------------------------------


def _summary(parsed: engine.ParsedSource) -> dict:
    latest = engine.latest_definition(parsed.key)
    return {
        "key": parsed.key,
        "kind": parsed.kind.value,
        "name": parsed.name,
        "file_name": parsed.source.name,
        "base_version": latest.version if latest else None,
    }


def deploy_draft(draft: DefinitionDraft, actor: User, note: str = "") -> DeployOutcome:
    """Deploy the draft now, or ask for approval when DEPLOY_APPROVAL is on.

    Raises:
        engine.InvalidDefinition: with every problem; nothing deployed, no request made, the draft kept.
    """
    source = _source(draft.file_name, draft.xml)
    parsed, problems = engine.validate([source])
    if problems:
        raise engine.InvalidDefinition(problems)
    if current_app.config["DEPLOY_APPROVAL"]:
        request = DeployRequest(
            status=RequestStatus.PENDING,
            files=[{"name": source.name, "content": source.content}],
            summary=[_summary(parsed[0])],
            note=note.strip()[:MAX_REASON_LENGTH],
            draft_id=draft.id,
            requested_by_id=actor.id,
            requested_at=now(),
        )
        db.session.add(request)
        db.session.flush()
        record("deploy_requested", actor_id=actor.id, payload={"request_id": request.id, "files": request.summary})
        return DeployOutcome(deployed=[], request=request)
    result = engine.deploy([source], actor_id=actor.id)
    db.session.delete(draft)
    db.session.flush()
    return DeployOutcome(deployed=result.deployed)


def may_decide(request: DeployRequest, user: User) -> bool:
    return (
        request.status == RequestStatus.PENDING
        and user.id != request.requested_by_id
        and bool(APPROVER_ROLES & user.roles)
    )


def _check_decider(request: DeployRequest, user: User) -> None:
    if request.status != RequestStatus.PENDING:
        raise DesignerError(_("This request was already decided."))
    if user.id == request.requested_by_id:
        raise DesignerError(_("A second person must approve: you asked for this deploy."))
    if not APPROVER_ROLES & user.roles:
        raise DesignerError(_("Only a policy designer or a supervisor can decide on a deploy."))


def approve(request: DeployRequest, actor: User) -> DeployOutcome:
    """Deploy the request's files as they were asked for.

    Files that no longer validate (something they call changed meanwhile) deploy nothing; the request is marked
    failed with the problems, and the approval is audited either way.
    """
    _check_decider(request, actor)
    request.decided_by_id = actor.id
    request.decided_at = now()
    sources = [engine.SourceFile(f["name"], f["content"]) for f in request.files]
    try:
        with db.session.begin_nested():
            result = engine.deploy(sources, actor_id=actor.id)
    except engine.InvalidDefinition as exc:
        request.status = RequestStatus.FAILED
        request.problems = [{"file": p.file, "element": p.element_id, "message": p.message} for p in exc.problems]
        record("deploy_failed", actor_id=actor.id, payload={"request_id": request.id, "problems": request.problems})
        db.session.flush()
        return DeployOutcome(deployed=[], request=request)
    request.status = RequestStatus.DEPLOYED
    request.deployed = [{"key": d.key, "version": d.version, "id": d.id} for d in result.deployed]
    record("deploy_approved", actor_id=actor.id, payload={"request_id": request.id, "deployed": request.deployed})
    if request.draft_id is not None:
        draft = db.session.get(DefinitionDraft, request.draft_id)
        if draft is not None and draft.xml == request.files[0]["content"]:
            db.session.delete(draft)  # deployed exactly as drafted: the version replaces it
    db.session.flush()
    return DeployOutcome(deployed=result.deployed, request=request)


def reject(request: DeployRequest, actor: User, reason: str) -> None:
    _check_decider(request, actor)
    reason = reason.strip()
    if not reason:
        raise DesignerError(_("Say why the deploy is rejected."))
    request.status = RequestStatus.REJECTED
    request.decided_by_id = actor.id
    request.decided_at = now()
    request.reason = reason[:MAX_REASON_LENGTH]
    record("deploy_rejected", actor_id=actor.id, payload={"request_id": request.id, "reason": request.reason})
    db.session.flush()


def withdraw(request: DeployRequest, actor: User) -> None:
    if request.requested_by_id != actor.id or request.status != RequestStatus.PENDING:
        raise DesignerError(_("Only a pending request of your own can be withdrawn."))
    request.status = RequestStatus.WITHDRAWN
    request.decided_at = now()
    record("deploy_withdrawn", actor_id=actor.id, payload={"request_id": request.id})
    db.session.flush()
