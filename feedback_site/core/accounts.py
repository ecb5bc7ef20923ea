"""Account actions for site admins: revoke a user's API tokens, deactivate a user.

Users are never deleted: their judgments reference them with PROTECT, and deactivating keeps
every judgment while ending all access (sessions are refused by Django for inactive users;
tokens are deleted here, and the API refuses inactive users' tokens anyway).
"""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token

from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Forbidden


def is_site_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_superuser or user.is_staff))


@transaction.atomic
def tokens_revoke(*, actor, user) -> int:
    """Delete every API token of `user`; returns how many there were. Site admins only."""
    if not is_site_admin(actor):
        raise Forbidden("Only site admins can revoke API tokens.")
    count, _ = Token.objects.filter(user=user).delete()
    audit_record(actor=actor, action="user.token_revoke", target=user, details={"tokens": count})
    return count


@transaction.atomic
def user_deactivate(*, actor, user) -> None:
    """End a user's access and keep their work. Site admins only; not oneself."""
    if not is_site_admin(actor):
        raise Forbidden("Only site admins can deactivate users.")
    if actor.pk == user.pk:
        raise Forbidden("You cannot deactivate yourself.")
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    Token.objects.filter(user=user).delete()
    audit_record(actor=actor, action="user.deactivate", target=user)
