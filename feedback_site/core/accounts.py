"""Account actions for site admins: create a user, issue (or rotate) and revoke a user's API
token, deactivate a user. With these on the API an outside tool needs no shell on the server.

Secrets are shown once: a generated password and a token key are returned by the call that made
them and never listed again (the user list says only whether a token exists).

Users are never deleted: their judgments reference them with PROTECT, and deactivating keeps
every judgment while ending all access (sessions are refused by Django for inactive users;
tokens are deleted here, and the API refuses inactive users' tokens anyway).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from feedback_site.core.audit import audit_record
from feedback_site.core.errors import Conflict, Forbidden, Invalid


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


@dataclass(frozen=True)
class CreatedUser:
    user: object
    password: str | None  # the generated password, shown once; None when the account has none
    token: str | None  # the API token key, shown once; None when none was asked for


@transaction.atomic
def user_create(*, actor, username: str, email: str = "", generate_password: bool = False, issue_token: bool = True) -> CreatedUser:
    """A plain account (never staff or superuser: those stay with the Django admin). Without
    `generate_password` it has an unusable password and works through its API token only."""
    if not is_site_admin(actor):
        raise Forbidden("Only site admins can create users.")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as error:
        raise Invalid(f"username {username!r}: {' '.join(error.messages)}", code="bad_username") from None
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"a user named {username!r} already exists", code="username_taken")
    password = secrets.token_urlsafe(18) if generate_password else None
    user = User.objects.create_user(username=username, email=email, password=password)  # None: unusable
    token = Token.objects.create(user=user).key if issue_token else None
    audit_record(actor=actor, action="user.create", target=user, details={"password": bool(password), "token": bool(token)})
    return CreatedUser(user=user, password=password, token=token)


@transaction.atomic
def token_issue(*, actor, user) -> str:
    """A new API token for `user`, replacing any they had (a rotation); returns its key. Site admins
    only, and not for an inactive user."""
    if not is_site_admin(actor):
        raise Forbidden("Only site admins can issue API tokens.")
    if not user.is_active:
        raise Conflict("the user is deactivated; a token would not work", code="inactive_user")
    replaced, _ = Token.objects.filter(user=user).delete()
    key = Token.objects.create(user=user).key
    audit_record(actor=actor, action="user.token_issue", target=user, details={"replaced": replaced})
    return key
