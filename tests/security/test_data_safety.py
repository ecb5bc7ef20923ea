"""Data safety: exports pseudonymise annotators; snapshots are verified by hash when read; the
login throttle fails open (and logins keep working) when its Redis cache is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_by_named_people(project, add_member, make_user, make_pairs):
    from feedback_site.annotation import services

    make_pairs(project, 3, overlap=2)
    people = [make_user(name) for name in ("alice_realname", "bob_realname")]
    for person in people:
        add_member(project, person, "annotator")
        for _ in range(2):
            leased = services.assignment_next(project=project, annotator=person)
            services.judgment_submit(
                assignment_id=leased.assignment.pk,
                annotator=person,
                choice="left",
                strength="clear",
                rationale=f"because {person.username} thinks so",
            )
    return people


def test_snapshot_exports_pseudonymise_annotators(project, site_admin, judged_by_named_people, make_project, add_member):
    from feedback_site.core.hashing import pseudonym
    from feedback_site.snapshots.services import snapshot_create

    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    folder = Path(snapshot.artifact_dir)
    exported = "".join(p.read_text(errors="replace") for p in folder.iterdir() if p.suffix in (".jsonl", ".json"))
    for person in judged_by_named_people:
        assert person.username not in exported.replace(f"because {person.username} thinks so", "")
        assert pseudonym(project.pk, person.pk) in exported
        assert f'"annotator_id": {person.pk}' not in exported and f'"user_id": {person.pk}' not in exported
    ids = {json.loads(line).get("annotator") for line in (folder / "judgments.jsonl").read_text().splitlines()}
    assert ids == {pseudonym(project.pk, p.pk) for p in judged_by_named_people}
    # The same person is unlinkable across projects.
    other = make_project("Other")
    assert pseudonym(other.pk, judged_by_named_people[0].pk) != pseudonym(project.pk, judged_by_named_people[0].pk)


def test_logins_work_and_throttle_fails_open_when_the_cache_is_down(settings, make_user):
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    # (Changing settings.CACHES makes Django drop its cache connections: the next use connects anew.)
    import redis

    with pytest.raises(redis.exceptions.ConnectionError):
        caches["default"].get("probe")  # really down
    make_user("erin", password="pw-for-tests-123")
    client = Client()
    wrong = client.post(reverse("login"), {"username": "erin", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct username" in wrong.content
    right = client.post(reverse("login"), {"username": "erin", "password": "pw-for-tests-123"})
    assert right.status_code == 302
