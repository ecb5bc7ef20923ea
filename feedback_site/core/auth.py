"""A lean token authentication for the API.

DRF's `TokenAuthentication` loads the token and then the full user row through the ORM (a
`select_related` that compiles a query per request). This class does the same check with one
prepared-shape SQL statement joining token to user, and builds a user instance holding only the
fields the API's permission checks read (id, username, is_active, is_staff, is_superuser); the
other fields are deferred, so touching one loads it, and saving the instance only writes
the fields it holds. Same answers as DRF's class: 401 `Invalid token.` for an unknown key, 401
`User inactive or deleted.` for an inactive user, `request.auth` is the key.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

_WANTED = {"id", "username", "is_active", "is_staff", "is_superuser"}
_FIELDS: list[str] = []  # the wanted fields in the model's field order, as `Model.from_db` expects
_SQL: str | None = None


def _sql() -> str:
    global _SQL
    if _SQL is None:
        user = get_user_model()
        qn = connection.ops.quote_name
        _FIELDS[:] = [f.attname for f in user._meta.concrete_fields if f.attname in _WANTED]
        cols = ", ".join(f"u.{qn(user._meta.get_field(name).column)}" for name in _FIELDS)
        _SQL = (
            f"SELECT {cols} FROM {qn(Token._meta.db_table)} t "
            f"JOIN {qn(user._meta.db_table)} u ON u.{qn(user._meta.pk.column)} = t.{qn('user_id')} "
            f"WHERE t.{qn('key')} = %s"
        )
    return _SQL


def user_for_token(key: str):
    """The (partially loaded) active user owning `key`, or None; raises for an inactive one."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    user = get_user_model().from_db(DEFAULT_DB_ALIAS, _FIELDS, row)
    if not user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    return user


class LeanTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked with one query (see the module docstring)."""

    def authenticate_credentials(self, key):
        user = user_for_token(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return (user, key)
