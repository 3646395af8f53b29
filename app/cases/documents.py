"""Storing uploaded documents safely: size limit, type from the file's own bytes, never a path from the client."""

import hashlib
import re

from flask import current_app
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from app.audit.log import record
from app.cases.models import Case, Document
from app.core.clock import now
from app.extensions import db

#: Accepted types, recognised by their first bytes (what the browser claims is ignored).
SIGNATURES = {
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
    b"%PDF-": ("application/pdf", ".pdf"),
}
_UNSAFE = re.compile(r"[^\w.\-\u3400-\u9fff]+")


class DocumentError(ValueError):
    """An upload that is refused; the message is shown next to the field."""


def sniff(content: bytes) -> tuple[str, str] | None:
    for signature, kind in SIGNATURES.items():
        if content.startswith(signature):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return ("image/webp", ".webp")
    return None


def safe_name(name: str | None, extension: str) -> str:
    """A display name without any path or odd characters, ending in the extension of the real type."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._")[:80] or "document"
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return f"{stem}{extension}"


def store_document(
    case: Case,
    upload: FileStorage,
    actor_id: int | None,
    work_item_id: int | None = None,
    field_id: str | None = None,
) -> Document:
    """Check and store one upload for a case (flushes; the caller commits).

    Raises:
        DocumentError: empty, too large, or not a JPEG/PNG/WebP image or PDF.
    """
    limit = current_app.config["UPLOAD_MAX_BYTES"]
    content = upload.stream.read(limit + 1)
    if not content:
        raise DocumentError(_("The file is empty."))
    if len(content) > limit:
        raise DocumentError(_("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024)))
    kind = sniff(content)
    if kind is None:
        raise DocumentError(_("Only JPEG, PNG or WebP photos and PDF documents are accepted."))
    content_type, extension = kind
    document = Document(
        case_id=case.id,
        work_item_id=work_item_id,
        field_id=field_id,
        file_name=safe_name(upload.filename, extension),
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by_id=actor_id,
        uploaded_at=now(),
    )
    db.session.add(document)
    db.session.flush()
    record(
        "document_uploaded",
        actor_id=actor_id,
        case_id=case.id,
        jurisdiction_id=case.jurisdiction_id,
        payload={"document_id": document.id, "file_name": document.file_name, "size": document.size},
    )
    return document
