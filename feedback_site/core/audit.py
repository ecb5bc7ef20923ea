"""Recording audit entries. Call inside the transaction of the change being audited, so the
entry and the change land together or not at all."""

from __future__ import annotations

from typing import Any

from django.db import models

from feedback_site.core.models import AuditEntry


def audit_record(*, actor, action: str, target: models.Model, project=None, details: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        project=project,
        actor=actor if (actor is not None and actor.is_authenticated) else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        details=details or {},
    )
