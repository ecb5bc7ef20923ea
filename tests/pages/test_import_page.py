"""The import page: a good file writes its records, a bad one shows the line that is wrong with
status 400 and writes nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from feedback_site.annotation.models import Pair, Prompt, Response
from feedback_site.projects.models import ImportBatch

pytestmark = pytest.mark.django_db

BAD_INPUTS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
HH_RLHF = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf" / "harmless-base-test-500.jsonl.gz"


def _counts():
    return {model.__name__: model.objects.count() for model in (Prompt, Response, Pair, ImportBatch)}


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _jsonl(*rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def test_prompts_file_is_imported(login, ml_staff, project):
    client = login(ml_staff)
    data = _jsonl({"prompt": "How do I bake bread?"}, {"prompt": "Summarise this.", "system": "Be terse."}, {"text": "Hi"})
    response = client.post(
        reverse("project-imports", args=[project.pk]),
        {"kind": "prompts", "file": _upload("prompts.jsonl", data), "queue_for_annotation": "on"},
    )
    assert response.status_code == 302
    assert Prompt.objects.filter(project=project).count() == 3
    batch = ImportBatch.objects.get(project=project)
    assert (batch.kind, batch.filename, batch.record_count, batch.created_by) == ("prompts", "prompts.jsonl", 3, ml_staff)
    html = client.get(response["Location"]).content.decode()
    assert "Imported 3 prompts from prompts.jsonl." in html
    assert "prompts.jsonl" in html  # listed under past imports


def test_csv_prompts(login, site_admin, project):
    data = b'prompt,topic\nHow do I bake bread?,food\n"Two\nlines",misc\n'
    response = login(site_admin).post(reverse("project-imports", args=[project.pk]), {"kind": "prompts", "file": _upload("p.csv", data)})
    assert response.status_code == 302
    assert Prompt.objects.filter(project=project).count() == 2


def test_pairs_queued_when_checked_and_prelabelled_when_not(login, site_admin, project):
    client = login(site_admin)
    rows = _jsonl(
        {"prompt": "2+2?", "response_a": "4", "response_b": "5", "preferred": "a"},
        {"prompt": "Capital of France?", "response_a": "Paris", "response_b": "Lyon"},
    )
    url = reverse("project-imports", args=[project.pk])
    assert client.post(url, {"kind": "pairs", "file": _upload("q.jsonl", rows), "queue_for_annotation": "on"}).status_code == 302
    queued = Pair.objects.filter(project=project, import_batch__filename="q.jsonl")
    assert [p.overlap for p in queued] == [project.overlap] * 2
    assert [p.prelabel for p in queued] == ["a", ""]

    assert client.post(url, {"kind": "pairs", "file": _upload("n.jsonl", rows)}).status_code == 302
    kept = Pair.objects.filter(project=project, import_batch__filename="n.jsonl")
    assert all(p.overlap == 0 and p.is_complete for p in kept)


@pytest.mark.skipif(not HH_RLHF.exists(), reason="shared HH-RLHF data not present")
def test_real_hh_rlhf_lines(login, site_admin, project):
    with gzip.open(HH_RLHF, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(25)]
    data = gzip.compress("".join(lines).encode())
    response = login(site_admin).post(
        reverse("project-imports", args=[project.pk]), {"kind": "hh_rlhf", "file": _upload("hh.jsonl.gz", data)}
    )
    assert response.status_code == 302
    pairs = Pair.objects.filter(project=project)
    assert pairs.count() == 25
    assert all(p.prelabel == "a" and p.overlap == 0 for p in pairs)


@pytest.mark.parametrize(
    "kind, name, content, expected",
    [
        ("prompts", "bad.jsonl", (BAD_INPUTS / "invalid_json_line3.jsonl").read_bytes(), "line 3"),
        ("prompts", "bad.jsonl", _jsonl({"prompt": "ok"}, {"promt": "typo"}), "line 2"),
        (
            "pairs",
            "bad.jsonl",
            _jsonl(
                {"prompt": "ok", "response_a": "x", "response_b": "y"},
                {"prompt": "ok", "response_a": "x", "response_b": "y"},
                {"prompt": "bad", "response_a": "x"},
            ),
            "line 3",
        ),
        ("hh_rlhf", "hh.jsonl", _jsonl({"chosen": "\n\nHuman: Hi\n\nAssistant: Hello"}), "line 1"),
        ("prompts", "blank.jsonl", (BAD_INPUTS / "blank_lines_only.jsonl").read_bytes(), "file has no records"),
        ("prompts", "empty.jsonl", b"", "The submitted file is empty"),
    ],
)
def test_bad_file_shows_line_error_400_and_writes_nothing(login, site_admin, project, kind, name, content, expected):
    before = _counts()
    response = login(site_admin).post(reverse("project-imports", args=[project.pk]), {"kind": kind, "file": _upload(name, content)})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported." in html
    assert expected in html
    assert _counts() == before


def test_error_message_is_escaped(login, site_admin, project):
    response = login(site_admin).post(
        reverse("project-imports", args=[project.pk]),
        {"kind": "prompts", "file": _upload("x.jsonl", _jsonl({"<script>alert(1)</script>": "x"}))},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_missing_file_is_a_form_error(login, site_admin, project):
    before = _counts()
    response = login(site_admin).post(reverse("project-imports", args=[project.pk]), {"kind": "prompts"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert _counts() == before


def test_oversized_upload_refused_before_reading(login, site_admin, project, settings):
    settings.IMPORT_MAX_BYTES = 100
    before = _counts()
    response = login(site_admin).post(
        reverse("project-imports", args=[project.pk]),
        {"kind": "prompts", "file": _upload("big.jsonl", _jsonl(*[{"prompt": "x" * 50}] * 5))},
    )
    assert response.status_code == 400
    assert "the limit is 100 bytes" in response.content.decode()
    assert _counts() == before


def test_annotator_cannot_import(login, annotator, project):
    before = _counts()
    response = login(annotator).post(
        reverse("project-imports", args=[project.pk]), {"kind": "prompts", "file": _upload("p.jsonl", _jsonl({"prompt": "x"}))}
    )
    assert response.status_code == 403
    assert _counts() == before


def test_page_describes_formats_and_defaults(login, site_admin, project):
    html = login(site_admin).get(reverse("project-imports", args=[project.pk])).content.decode()
    for text in ("Prompts — JSONL or CSV", "Ready-made pairs", "Anthropic HH-RLHF", "response_a", '"hh_rlhf": false'):
        assert text in html
