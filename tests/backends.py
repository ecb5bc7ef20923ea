"""Which database the suite runs on, for fixtures that start processes of their own.

`make test` runs the suite twice: on PostgreSQL, then the service, page and browser layers on a
file-backed SQLite test database (tests/conftest.py sets its TEST NAME to a file next to the
DATABASE_URL's, so workers started by tests in other processes open the same database).
"""

from __future__ import annotations


def is_sqlite(db: dict) -> bool:
    return db["ENGINE"] == "django.db.backends.sqlite3"


def database_url(db: dict) -> str:
    """A DATABASE_URL for another process that reaches the database this test process uses
    (`settings.DATABASES['default']` inside a test: NAME is then the test database's)."""
    if is_sqlite(db):
        if db["NAME"] == ":memory:" or "mode=memory" in str(db["NAME"]):
            raise RuntimeError("an in-memory SQLite test database cannot be shared with a worker process")
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
