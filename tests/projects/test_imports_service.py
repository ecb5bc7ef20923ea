"""Imports through the service: atomic (all or nothing), line-numbered errors, real HH-RLHF data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from feedback_site.annotation.imports import import_file
from feedback_site.annotation.models import Pair, Prompt, Response
from feedback_site.core.errors import Forbidden, Invalid
from feedback_site.projects.models import ImportBatch

pytestmark = pytest.mark.django_db
HH = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hh-rlhf"


def _counts():
    return (ImportBatch.objects.count(), Prompt.objects.count(), Response.objects.count(), Pair.objects.count())


def test_prompts_jsonl_with_history_and_metadata(project, ml_staff):
    data = "\n".join(
        [
            json.dumps({"prompt": "Hi there", "metadata": {"source": "x"}}),
            json.dumps(
                {"system": "Be brief.", "history": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "prompt": "c"}
            ),
        ]
    ).encode()
    result = import_file(project=project, actor=ml_staff, kind="prompts", filename="p.jsonl", data=data)
    assert result.prompts == 2 and result.pairs == 0
    second = Prompt.objects.get(text="c")
    assert second.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert Prompt.objects.get(text="Hi there").metadata == {"source": "x"}


def test_prompts_csv(project, ml_staff):
    data = b'prompt,system_prompt,topic\n"Line one\nline two",,cooking\nSecond,Be kind,travel\n'
    import_file(project=project, actor=ml_staff, kind="prompts", filename="p.csv", data=data)
    assert list(Prompt.objects.order_by("id").values_list("text", "metadata")) == [
        ("Line one\nline two", {"topic": "cooking"}),
        ("Second", {"topic": "travel"}),
    ]


@pytest.mark.parametrize(
    "filename, data, phrase",
    [
        ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "ok"}\n{"prompt": 3}\n', "line 3"),
        ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "ok",}\n', "line 2"),
        ("p.jsonl", b"", "no records"),
        ("p.csv", b"prompt,x\nok,1\nbad\n", "line 3"),
        ("p.jsonl", '{"prompt": "caf\xe9"}\n'.encode("latin-1"), "line 1"),
    ],
)
def test_a_bad_line_anywhere_writes_nothing(project, ml_staff, filename, data, phrase):
    before = _counts()
    with pytest.raises(Invalid, match=phrase):
        import_file(project=project, actor=ml_staff, kind="prompts", filename=filename, data=data)
    assert _counts() == before


def test_oversized_upload_is_refused_before_parsing(project, ml_staff, settings):
    settings.IMPORT_MAX_BYTES = 1000
    with pytest.raises(Invalid, match="limit is 1,000 bytes"):
        import_file(project=project, actor=ml_staff, kind="prompts", filename="p.jsonl", data=b"x" * 1001)
    assert _counts()[0] == 0


def test_ready_pairs_labelled_and_unlabelled(project, ml_staff):
    lines = [
        {"prompt": "Q1", "response_a": "A1", "response_b": "B1"},
        {"prompt": "Q2", "response_a": "A2", "response_b": "B2", "preferred": "b"},
    ]
    result = import_file(
        project=project, actor=ml_staff, kind="pairs", filename="pairs.jsonl", data="\n".join(json.dumps(x) for x in lines).encode()
    )
    assert result.pairs == 2
    unlabelled, labelled = Pair.objects.order_by("id")
    assert (unlabelled.overlap, unlabelled.is_complete, unlabelled.prelabel) == (project.overlap, False, "")
    assert (labelled.overlap, labelled.is_complete, labelled.prelabel) == (0, True, "b")
    assert labelled.response_a.text == "A2" and labelled.response_b.text == "B2"


def test_pairs_can_be_queued_even_when_labelled(project, ml_staff):
    data = json.dumps({"prompt": "Q", "response_a": "A", "response_b": "B", "preferred": "a"}).encode()
    import_file(project=project, actor=ml_staff, kind="pairs", filename="p.jsonl", data=data, queue_for_annotation=True)
    pair = Pair.objects.get()
    assert pair.overlap == project.overlap and not pair.is_complete and pair.prelabel == "a"


def test_annotators_cannot_import(project, annotator):
    with pytest.raises(Forbidden):
        import_file(project=project, actor=annotator, kind="prompts", filename="p.jsonl", data=b'{"prompt":"x"}')


@pytest.mark.skipif(not HH.exists(), reason="../shared/data/hh-rlhf is not beside this checkout")
def test_real_hh_rlhf_file_imports_as_prelabelled_pairs(project, ml_staff):
    data = (HH / "harmless-base-test-500.jsonl.gz").read_bytes()
    result = import_file(project=project, actor=ml_staff, kind="hh_rlhf", filename="harmless-base-test-500.jsonl.gz", data=data)
    assert result.pairs == 500 and result.prompts == 500
    assert Pair.objects.filter(prelabel="a", overlap=0, is_complete=True).count() == 500
    first_line = json.loads(gzip.decompress(data).splitlines()[0])
    pair = Pair.objects.order_by("id").first()
    # The chosen conversation is the prompt's turns followed by response A.
    turns = pair.prompt.messages()
    assert turns[-1]["role"] == "user" and turns[-1]["content"] in first_line["chosen"]
    assert first_line["chosen"].endswith(pair.response_a.text)
    assert first_line["rejected"].endswith(pair.response_b.text)
