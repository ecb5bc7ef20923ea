"""Property-based fuzzing of the whole REST API from its OpenAPI schema (schemathesis), in
process against the WSGI app, as an authenticated site admin: no input may cause a 5xx (a 503
whose JSON body describes the service's state, e.g. `queue_unavailable`, is an answer, not a crash).

Path ids are pointed at real objects half of the time (a project with pairs, a snapshot, runs, a
model version, an assignment), so the generated bodies reach the services instead of stopping at
404. Examples per operation are bounded so the run takes seconds.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 6


REAL_IDS = {
    "project_id": "project",
    "snapshot_id": "snapshot",
    "assignment_id": "assignment",
    "pair_id": "pair",
    "version_id": "version",
    "user_id": "victim",
}


@pytest.fixture
def keep_test_connection():
    """Calling the WSGI app directly fires request_started/finished, which would close the test's
    database connection (and its transaction); Django's own test Client disconnects them too."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _declared_unavailable(response) -> bool:
    """A 503 that says so in JSON (queue_unavailable, storage_unavailable, a degraded health
    report) is the service describing its state, not a crash; any other 5xx is a failure."""
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("error") or body.get("status"))


def test_no_input_causes_a_server_error(world, keep_test_connection):
    from django.contrib.auth import get_user_model

    from feedback_site.wsgi import application

    # A site admin: every route is reachable, so generated inputs get past the permission checks.
    root = get_user_model().objects.create_user("fuzzer", password="x", is_staff=True, is_superuser=True)
    headers = {"Authorization": f"Token {Token.objects.create(user=root).key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def fuzz(case):
            for name in list(case.path_parameters or {}):
                key = REAL_IDS.get(name)
                if name == "run_id":
                    key = "training_run" if "training" in case.path else "generation_run"
                # Half the examples aim at real objects, so bodies reach the services.
                if key and hash(repr(case.body)) % 2 == 0:
                    case.path_parameters[name] = world[key].pk
            response = case.call(headers=headers)
            if response.status_code >= 500 and not _declared_unavailable(response):
                raise AssertionError(
                    f"{response.status_code} for {case.method} {case.formatted_path} body={case.body!r} "
                    f"query={case.query!r}: {response.text[:800]}"
                )

        try:
            fuzz()
        except Exception as error:  # collect every failing operation, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:1500]}")
    assert operations >= 30, f"only {operations} operations in the schema"
    assert not failures, f"{len(failures)} operation(s) answered 5xx:\n\n" + "\n\n".join(failures)
