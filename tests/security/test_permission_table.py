"""Walk every URL pattern of the project as every persona and check each answer against the
declared permission table (tests/security/permission_table.py). Deny by default: a pattern with
no row fails, with the row to add in the message."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.security.conftest import ID_KWARGS
from tests.security.permission_table import PERSONAS, TABLE, Value, classify, probe_method, split_key

pytestmark = pytest.mark.django_db

# Only the admin's front door is in the table; its internals are Django's own, guarded by
# is_staff and model permissions (tests/pages/test_admin_pages.py covers what our admin allows).
SKIPPED_NAMESPACES = {"admin"}


def all_routes():
    """(key, route string, kwargs names) for every URL pattern, walking includes recursively."""

    def walk(patterns, prefix: str, namespace: str | None):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace in SKIPPED_NAMESPACES:
                    yield f"{pattern.namespace}:index", prefix + str(pattern.pattern), []
                    continue
                ns = ":".join(filter(None, [namespace, pattern.namespace]))
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), ns or None)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if pattern.name:
                    key = f"{namespace}:{pattern.name}" if namespace else pattern.name
                else:
                    key = route
                yield key, route, list(pattern.pattern.regex.groupindex)

    seen = set()
    for key, route, kwargs in walk(get_resolver().url_patterns, "", None):
        if route.startswith("static/") or key in seen:
            continue
        seen.add(key)
        yield key, route, kwargs


def _suggestion(key: str, route: str, kwargs: list[str]) -> str:
    unknown = [k for k in kwargs if k not in ID_KWARGS]
    options = []
    methods = _api_methods(_resolve(route).func)
    if methods and "GET" not in methods:
        options.append(f'probe="{sorted(methods)[0]}"')
    if unknown:
        options.append("kwargs={" + ", ".join(f'"{k}": "<world key>" or Value(...)' for k in unknown) + "}")
    extra = "".join(f'\n    "{key} {m}": staff(data={{...}}),' for m in sorted(methods - {"GET"})[1 if "GET" not in methods else 0 :])
    return f'    "{key}": staff({", ".join(options)}),   # /{route}  (or member(), admin(), any_user(), public(), row(...)){extra}'


def test_every_route_has_a_row():
    missing = [(key, route, kwargs) for key, route, kwargs in all_routes() if key not in TABLE]
    assert not missing, (
        "These routes are not in the permission table (deny by default). Add a row for each to TABLE in "
        "tests/security/permission_table.py, saying who may reach it:\n" + "\n".join(_suggestion(*m) for m in missing)
    )


def _api_methods(callback) -> set[str]:
    """Methods a DRF view accepts. DRF answers 405 before any permission check, so a probe with
    the wrong method would prove nothing: every accepted method needs its own row."""
    cls = getattr(callback, "cls", None)
    if cls is None or not hasattr(cls, "http_method_names"):
        return set()
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)}


def _resolve(route: str):
    path = re.sub(r"<int:[^>]+>", "1", re.sub(r"<(?:str|slug|path):[^>]+>", "x", route))
    return get_resolver().resolve("/" + path)


def test_every_api_method_has_a_row():
    covered: dict[str, set[str]] = {}
    for key in TABLE:
        covered.setdefault(split_key(key)[0], set()).add(probe_method(key))
    missing = []
    for key, route, _ in all_routes():
        if key not in TABLE:
            continue  # test_every_route_has_a_row reports it, with these methods
        for method in sorted(_api_methods(_resolve(route).func) - covered.get(key, set())):
            missing.append(f'    "{key} {method}": staff(data={{...a body that reaches the permission check...}}),   # /{route}')
    assert not missing, "These API methods have no row in tests/security/permission_table.py (deny by default); add:\n" + "\n".join(missing)


def test_table_has_no_stale_rows():
    keys = {key for key, _, _ in all_routes()}
    stale = sorted(k for k in TABLE if split_key(k)[0] not in keys)
    assert not stale, f"permission_table.py lists routes that no longer exist; remove them: {stale}"


def _url(key: str, route: str, kwarg_names: list[str], row, world) -> str:
    if key == "admin:index":
        return reverse("admin:index")
    values = {}
    for name in kwarg_names:
        source = row.kwargs.get(name) or ID_KWARGS.get(name)
        if isinstance(source, Value):
            values[name] = source.value
            continue
        if source is None or source not in world:
            pytest.fail(
                f"route {key} (/{route}) takes <{name}>; say which object fills it: add "
                f'kwargs={{"{name}": "<key>"}} to its row in tests/security/permission_table.py, '
                f"or map {name!r} in ID_KWARGS in tests/security/conftest.py (and add the object to `world`)"
            )
        values[name] = world[source].pk
    if ":" in key or not kwarg_names and key == route:
        return "/" + re.sub(r"<[^>]+>", "", route)
    return reverse(key, kwargs=values)


def _client(persona: str, world) -> Client:
    client = Client()
    if persona != "anon":
        client.force_login(world[persona])
    return client


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_answers_as_declared(persona, world):
    client = _client(persona, world)
    mismatches = []
    routes = {key: (route, kwargs) for key, route, kwargs in all_routes()}
    probes = [key for key in TABLE if split_key(key)[0] in routes]
    # Read-only probes first, so a POST probe (e.g. skipping an assignment) cannot change what a
    # later GET sees; DELETEs last.
    probes.sort(key=lambda key: {"GET": 0, "DELETE": 2}.get(probe_method(key), 1))
    for key in probes:
        row, method = TABLE[key], probe_method(key)
        name = split_key(key)[0]
        route, kwarg_names = routes[name]
        url = _url(name, route, kwarg_names, row, world)
        if method == "GET":
            response = client.get(url)
        elif url.startswith("/api/"):
            response = client.generic(method, url, data=json.dumps(row.data or {}), content_type="application/json")
        else:
            response = client.post(url, data=row.data or {})
        got, expected = classify(response), row.expected(persona)
        if got != expected:
            mismatches.append(f"{method} {url} ({key}): expected {expected}, got {got} [{response.status_code}]")
    assert not mismatches, f"as {persona}:\n" + "\n".join(mismatches)


def test_annotators_never_see_other_annotators_or_other_projects(world):
    """Every GET an annotator of A may make: nothing in it names another annotator, shows their
    rationale, or mentions project B."""
    client = _client("ann_a", world)
    routes = {key: (route, kwargs) for key, route, kwargs in all_routes()}
    leaks = []
    seen = 0
    for key, row in TABLE.items():
        name = split_key(key)[0]
        if probe_method(key) != "GET" or name not in routes or row.expected("ann_a") != "OK" or name.startswith("api-schema"):
            continue
        if name in ("api-docs", "api-redoc", "login", "logout"):
            continue
        url = _url(name, *routes[name], row, world)
        body = client.get(url).content.decode(errors="replace")
        seen += 1
        for secret in ("ann_a2", "secret rationale of ann_a2", "victim", "Project B", "staff_a", "admin_a"):
            if secret in body:
                leaks.append(f"{url} ({name}) shows {secret!r}")
    # The assignment the annotator holds, through the API, says nothing about who else judged it.
    leased = client.post(f"/api/v1/projects/{world['project'].pk}/assignments/next").content.decode()
    for secret in ("ann_a2", "secret rationale", "annotator", "model_version", "response_a", "response_b"):
        if secret in leased:
            leaks.append(f"assignments/next shows {secret!r}")
    assert seen >= 5
    assert not leaks, "\n".join(leaks)
