"""Tests for the pure upload parsers in ``feedback_site/annotation/importers.py``.

The module has no Django imports, so these tests need neither settings nor a database; they run with
``python -m pytest tests/importers -p no:django``. The module is loaded from its file path so that the
tests do not depend on the package ``__init__`` files (or on Django being configured).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import pickle
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad_inputs"
HH_DIR = REPO.parent / "shared" / "data" / "hh-rlhf"


def _load_importers() -> ModuleType:
    name = "_importers_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "feedback_site" / "annotation" / "importers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_artifacts():
    """Replace the Django-settings fixture of ``tests/conftest.py``: these tests are pure and also run
    with ``-p no:django`` (no settings fixture there)."""
    yield


imp = _load_importers()
ImportFileError = imp.ImportFileError
ImportLimits = imp.ImportLimits
Message = imp.Message
PromptRecord = imp.PromptRecord
PairRecord = imp.PairRecord

PARSERS = {"prompts": imp.parse_prompts, "pairs": imp.parse_pairs, "hh": imp.parse_hh_rlhf}


def _jsonl(*objects: object) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


def _error(parser, data: bytes, filename: str, limits=None) -> ImportFileError:
    with pytest.raises(ImportFileError) as info:
        if limits is None:
            parser(data, filename)
        else:
            parser(data, filename, limits)
    return info.value


# --------------------------------------------------------------------------------------------------
# The bad-input corpus
# --------------------------------------------------------------------------------------------------

MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def test_corpus_manifest_readme_and_folder_agree():
    listed = [case["file"] for case in MANIFEST]
    assert len(listed) == len(set(listed)), "a file is listed twice in manifest.json"
    on_disk = {p.name for p in CORPUS.iterdir()} - {"manifest.json", "README.md"}
    assert on_disk == set(listed)
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for name in listed:
        assert f"`{name}`" in readme, f"{name} is missing from tests/data/bad_inputs/README.md"
    for case in MANIFEST:
        assert case["parser"] in PARSERS
        assert (CORPUS / case["file"]).stat().st_size < 16 * 1024, "keep corpus files small"


@pytest.mark.parametrize("case", MANIFEST, ids=[case["file"] for case in MANIFEST])
def test_bad_input_is_refused_with_line_and_reason(case):
    data = (CORPUS / case["file"]).read_bytes()
    error = _error(PARSERS[case["parser"]], data, case["file"])
    text = str(error)
    assert case["phrase"] in text
    if case["line"] is None:
        assert error.line is None
        assert not text.startswith("line ")
    else:
        assert error.line == case["line"]
        assert text.startswith(f"line {case['line']}: ")


# --------------------------------------------------------------------------------------------------
# Generated bad inputs (too big to store)
# --------------------------------------------------------------------------------------------------


def test_enormous_line_is_refused_before_json_parsing():
    data = b'{"prompt": "ok"}\n' + b'{"prompt": "' + b"x" * 1_000_000 + b'"}\n'
    error = _error(imp.parse_prompts, data, "big.jsonl")
    assert error.line == 2
    assert "line is too long (1,000,014 characters; the limit is 1,000,000)" in str(error)


def test_overlong_text_is_refused():
    data = _jsonl({"prompt": "y" * 200_001})
    error = _error(imp.parse_prompts, data, "long.jsonl")
    assert (error.line, error.field) == (1, "prompt")
    assert "text is too long (200,001 characters; the limit is 200,000)" in str(error)
    data = _jsonl({"prompt": "q", "response_a": "fine", "response_b": "z" * 11})
    error = _error(imp.parse_pairs, data, "p.jsonl", ImportLimits(max_text_chars=10))
    assert error.field == "response_b" and "too long" in str(error)


def test_oversized_upload_is_refused_before_parsing():
    data = b" " * (50 * 1024 * 1024 + 1)
    error = _error(imp.parse_prompts, data, "huge.jsonl")
    assert error.line is None
    assert "file is too large (50.0 MiB; the limit is 50.0 MiB)" in str(error)
    error = _error(imp.parse_pairs, b"x" * 101, "small.csv", ImportLimits(max_bytes=100))
    assert "file is too large (101 bytes; the limit is 100 bytes)" in str(error)


def test_gzip_bomb_is_refused_without_inflating_it_all():
    bomb = gzip.compress(b"\n" * (64 * 1024 * 1024), compresslevel=1)
    assert len(bomb) < 1_000_000
    error = _error(imp.parse_prompts, bomb, "bomb.jsonl.gz")
    assert "file is too large when decompressed" in str(error)
    small = gzip.compress(_jsonl({"prompt": "a"}) * 100)
    error = _error(imp.parse_prompts, small, "x.jsonl.gz", ImportLimits(max_bytes=1000))
    assert "too large when decompressed" in str(error)


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("many.jsonl", _jsonl({"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}, {"prompt": "d"})),
        ("many.csv", b"prompt\na\nb\nc\nd\n"),
    ],
)
def test_too_many_records(filename, data):
    limits = ImportLimits(max_records=3)
    error = _error(imp.parse_prompts, data, filename, limits)
    assert error.line == (4 if filename.endswith(".jsonl") else 5)
    assert "too many records (the limit is 3)" in str(error)
    assert len(imp.parse_prompts(data, filename, ImportLimits(max_records=4))) == 4


def test_json_depth_limit_is_exact():
    limits = ImportLimits(max_json_depth=3)
    at_limit = _jsonl({"prompt": "a", "metadata": {"x": [1]}})  # object > object > array = 3
    assert imp.parse_prompts(at_limit, "d.jsonl", limits)[0].metadata == {"x": [1]}
    over = _jsonl({"prompt": "a", "metadata": {"x": [[1]]}})
    error = _error(imp.parse_prompts, over, "d.jsonl", limits)
    assert "nested too deeply (more than 3 levels)" in str(error)
    # brackets inside strings do not count
    text_with_brackets = _jsonl({"prompt": "[[[[{{{{" * 10})
    assert imp.parse_prompts(text_with_brackets, "d.jsonl", limits)[0].text == "[[[[{{{{" * 10


def test_very_deep_json_does_not_blow_the_stack():
    data = b"[" * 200_000 + b"]" * 200_000 + b"\n"
    error = _error(imp.parse_prompts, data, "deep.jsonl")
    assert error.line == 1 and "nested too deeply" in str(error)


def test_csv_record_too_long():
    data = b'prompt,notes\nshort,ok\n"' + b"x" * 60 + b'",y\n'
    error = _error(imp.parse_prompts, data, "p.csv", ImportLimits(max_line_chars=50))
    assert error.line == 3 and "record is too long" in str(error)


def test_csv_field_over_the_csv_module_default_limit_is_fine():
    big = "w" * 150_000  # above csv's default field_size_limit of 131,072
    records = imp.parse_prompts(f"prompt\n{big}\n".encode(), "big.csv")
    assert records[0].text == big


def test_first_error_in_the_file_wins_over_encoding_errors_further_down():
    data = b'{"prompt": 1}\n' + '{"prompt": "caf\xe9"}\n'.encode("latin-1")
    error = _error(imp.parse_prompts, data, "x.jsonl")
    assert error.line == 1 and "must be a string" in str(error)


def test_nothing_is_returned_when_the_last_line_is_bad():
    good = [{"prompt": f"p{i}"} for i in range(50)]
    error = _error(imp.parse_prompts, _jsonl(*good, {"prompt": ""}), "x.jsonl")
    assert error.line == 51


# --------------------------------------------------------------------------------------------------
# ImportFileError and the record types
# --------------------------------------------------------------------------------------------------


def test_error_string_format_and_attributes():
    error = ImportFileError("must be a non-empty string", line=12, field="prompt")
    assert str(error) == "line 12: field 'prompt': must be a non-empty string"
    assert isinstance(error, ValueError)
    assert (error.line, error.field, error.message) == (12, "prompt", "must be a non-empty string")
    assert str(ImportFileError("file has no records")) == "file has no records"
    assert str(ImportFileError("binary file", line=3)) == "line 3: binary file"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.line, copy.field) == (ImportFileError, str(error), 12, "prompt")


def test_records_are_frozen_and_hashable():
    record = PromptRecord(1, "hi", metadata={"a": [1]})
    with pytest.raises(AttributeError):
        record.text = "other"  # type: ignore[misc]
    assert hash(record) == hash(PromptRecord(1, "hi", metadata={"b": 2}))
    pair = PairRecord(1, record, "a", "b", "a", {"x": 1})
    assert len({pair, PairRecord(1, record, "a", "b", "a", {"x": 1})}) == 1
    assert pair != PairRecord(1, record, "a", "b", "a", {})  # metadata still counts for equality
    with pytest.raises(ValueError):
        Message("robot", "hi")


def test_to_messages():
    record = PromptRecord(3, "And rye?", "Be terse.", (Message("user", "Bread?"), Message("assistant", "Flour, water.")))
    assert record.to_messages() == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Bread?"},
        {"role": "assistant", "content": "Flour, water."},
        {"role": "user", "content": "And rye?"},
    ]
    assert PromptRecord(1, "Hi").to_messages() == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("a.jsonl", ("jsonl", False)),
        ("A.JSON", ("jsonl", False)),
        ("x.ndjson", ("jsonl", False)),
        ("dir/sub/p.csv", ("csv", False)),
        ("C:\\Users\\me\\p.tsv", ("tsv", False)),
        ("train.jsonl.gz", ("jsonl", True)),
        ("rows.CSV.GZ", ("csv", True)),
    ],
)
def test_detect_format(filename, expected):
    assert imp.detect_format(filename) == expected


@pytest.mark.parametrize(
    ("filename", "phrase"),
    [
        ("data.xlsx", "unsupported file type '.xlsx'"),
        ("data.gz", "has no recognised extension"),
        ("data.txt.gz", "unsupported file type '.txt.gz'"),
        ("README", "has no recognised extension"),
        (".jsonl", "has no recognised extension"),
    ],
)
def test_detect_format_errors(filename, phrase):
    with pytest.raises(ImportFileError) as info:
        imp.detect_format(filename)
    assert phrase in str(info.value)


def test_non_bytes_input_is_a_programming_error():
    with pytest.raises(TypeError):
        imp.parse_prompts('{"prompt": "a"}', "x.jsonl")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Good prompt files
# --------------------------------------------------------------------------------------------------


def test_prompts_jsonl_all_forms():
    lines = [
        {"prompt": "How do I bake bread?"},
        {"text": "Alias text", "system_prompt": "Be terse.", "id": 7},
        {
            "prompt": "And rye?",
            "system": "You bake.",
            "history": [
                {"role": "user", "content": "How do I bake bread?"},
                {"role": "assistant", "content": "Mix flour and water."},
            ],
            "metadata": {"topic": "food", "tags": ["a", "b"], "score": 1.5},
            "id": "q-3",
        },
        {
            "messages": [
                {"role": "system", "content": "Sys"},
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "U2"},
            ]
        },
        {"messages": [{"role": "user", "content": "Only"}], "metadata": None, "id": None},
        {"prompt": "Nulls", "system": None, "history": None, "metadata": {"id": "same"}, "id": "same"},
    ]
    text = "\ufeff" + json.dumps(lines[0]) + "\r\n\r\n" + "\n".join(json.dumps(o) for o in lines[1:]) + "\n\n"
    records = imp.parse_prompts(text.encode("utf-8"), "prompts.jsonl")
    assert records == [
        PromptRecord(1, "How do I bake bread?"),
        PromptRecord(3, "Alias text", "Be terse.", (), {"id": 7}),
        PromptRecord(
            4,
            "And rye?",
            "You bake.",
            (Message("user", "How do I bake bread?"), Message("assistant", "Mix flour and water.")),
            {"id": "q-3", "topic": "food", "tags": ["a", "b"], "score": 1.5},
        ),
        PromptRecord(5, "U2", "Sys", (Message("user", "U1"), Message("assistant", "A1"))),
        PromptRecord(6, "Only"),
        PromptRecord(7, "Nulls", "", (), {"id": "same"}),
    ]
    assert records[3].to_messages() == lines[3]["messages"]


def test_prompts_are_kept_verbatim_and_duplicates_are_kept():
    odd = "  spaced\u2028with line separator\u0085and NEL  "
    data = _jsonl({"prompt": odd}, {"prompt": odd}, {"prompt": "emoji 🎉 and 中文"})
    records = imp.parse_prompts(data, "x.json")
    assert [(r.line, r.text) for r in records] == [(1, odd), (2, odd), (3, "emoji 🎉 and 中文")]


def test_prompts_gzipped_jsonl():
    data = gzip.compress(_jsonl({"prompt": "a"}, {"prompt": "b"}))
    assert [r.text for r in imp.parse_prompts(data, "p.jsonl.gz")] == ["a", "b"]


def test_prompts_csv_multiline_fields_keep_line_numbers():
    data = (
        "\ufeffPrompt ,system_prompt,category,source\r\n"
        '"A poem:\r\nline two\r\nline three",Be kind,poetry,web\r\n'
        "\r\n"
        "Plain prompt,,misc,\r\n"
        ",,,\r\n"
        '"He said ""hi"", then\nleft",,quotes,"multi\nline\nmeta"\r\n'
        "Last one,Sys,x,y"
    ).encode("utf-8")
    records = imp.parse_prompts(data, "prompts.csv")
    assert records == [
        PromptRecord(2, "A poem:\r\nline two\r\nline three", "Be kind", (), {"category": "poetry", "source": "web"}),
        PromptRecord(6, "Plain prompt", "", (), {"category": "misc", "source": ""}),
        PromptRecord(8, 'He said "hi", then\nleft', "", (), {"category": "quotes", "source": "multi\nline\nmeta"}),
        PromptRecord(12, "Last one", "Sys", (), {"category": "x", "source": "y"}),
    ]
    # the line number of an error after the multi-line records is the physical line too
    error = _error(imp.parse_prompts, data + b"\r\nbroken,row\r\n", "prompts.csv")
    assert error.line == 13 and "row has 2 fields but the header has 4 columns" in str(error)


def test_prompts_csv_text_column_and_tsv_and_gzip():
    assert imp.parse_prompts(b"id,text\n1,Hello\n", "p.csv") == [PromptRecord(2, "Hello", metadata={"id": "1"})]
    tsv = b"prompt\tsystem\tlang\nHi, there\tBe nice\ten\n"
    assert imp.parse_prompts(tsv, "p.tsv") == [PromptRecord(2, "Hi, there", "Be nice", (), {"lang": "en"})]
    assert [r.text for r in imp.parse_prompts(gzip.compress(b"prompt\na\nb\n"), "p.csv.gz")] == ["a", "b"]


def test_prompts_csv_leading_blank_lines_before_header():
    records = imp.parse_prompts(b"\n\nprompt\nhello\n", "p.csv")
    assert records == [PromptRecord(4, "hello")]


# --------------------------------------------------------------------------------------------------
# Good pair files
# --------------------------------------------------------------------------------------------------


def test_pairs_jsonl():
    data = _jsonl(
        {"prompt": "Hi", "response_a": "Hello!", "response_b": "Hey.", "preferred": "a", "id": "p1"},
        {"prompt": "Hi", "response_a": "Hello!", "response_b": "Hey.", "preferred": "a", "id": "p1"},
        {
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "response_a": "A",
            "response_b": "B",
            "preferred": "tie",
            "metadata": {"source": "team"},
        },
        {
            "prompt": "Q2",
            "history": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "R1"}],
            "response_a": "x",
            "response_b": "y",
            "preferred": None,
        },
        {"text": "Q3", "system": "S3", "response_a": "x", "response_b": "y"},
        {"prompt": "Q4", "response_a": "x", "response_b": "y", "preferred": "b"},
    )
    pairs = imp.parse_pairs(data, "pairs.jsonl")
    assert pairs == [
        PairRecord(1, PromptRecord(1, "Hi", metadata={"id": "p1"}), "Hello!", "Hey.", "a", {"id": "p1"}),
        PairRecord(2, PromptRecord(2, "Hi", metadata={"id": "p1"}), "Hello!", "Hey.", "a", {"id": "p1"}),
        PairRecord(3, PromptRecord(3, "Q", "S", (), {"source": "team"}), "A", "B", "tie", {"source": "team"}),
        PairRecord(4, PromptRecord(4, "Q2", "", (Message("user", "Q1"), Message("assistant", "R1"))), "x", "y", None, {}),
        PairRecord(5, PromptRecord(5, "Q3", "S3"), "x", "y", None, {}),
        PairRecord(6, PromptRecord(6, "Q4"), "x", "y", "b", {}),
    ]
    assert pairs[0].metadata is not pairs[0].prompt.metadata


def test_pairs_csv():
    data = b'prompt,response_a,response_b,preferred,system_prompt,batch\nHi,"Hello,\nfriend",Hey.,a,Be nice,1\nQ,x,y,,,2\nQ,x,y, tie ,,3\n'
    assert imp.parse_pairs(data, "pairs.csv") == [
        PairRecord(2, PromptRecord(2, "Hi", "Be nice", (), {"batch": "1"}), "Hello,\nfriend", "Hey.", "a", {"batch": "1"}),
        PairRecord(4, PromptRecord(4, "Q", metadata={"batch": "2"}), "x", "y", None, {"batch": "2"}),
        PairRecord(5, PromptRecord(5, "Q", metadata={"batch": "3"}), "x", "y", "tie", {"batch": "3"}),
    ]


# --------------------------------------------------------------------------------------------------
# HH-RLHF
# --------------------------------------------------------------------------------------------------


def _hh(chosen: str, rejected: str) -> bytes:
    return _jsonl({"chosen": chosen, "rejected": rejected})


def test_hh_single_and_multi_turn():
    data = _hh("\n\nHuman: Hi\n\nAssistant: Hello!", "\n\nHuman: Hi\n\nAssistant: Go away.") + _hh(
        "\n\nHuman: Q1\n\nAssistant:  A1 (two spaces)\n\nHuman: Q2\n\nAssistant: Sure, here it is",
        "\n\nHuman: Q1\n\nAssistant:  A1 (two spaces)\n\nHuman: Q2\n\nAssistant: Sure, no",
    )
    pairs = imp.parse_hh_rlhf(data, "hh.jsonl")
    assert pairs == [
        PairRecord(1, PromptRecord(1, "Hi"), "Hello!", "Go away.", "a", {}),
        PairRecord(
            2,
            PromptRecord(2, "Q2", "", (Message("user", "Q1"), Message("assistant", " A1 (two spaces)"))),
            "Sure, here it is",
            "Sure, no",
            "a",
            {},
        ),
    ]


def test_hh_tricky_replies_and_empty_reply():
    # a reply that itself contains turn markers (splitting at each string's own last
    # "\n\nAssistant:" would go wrong here), and an empty chosen reply as in the real data
    prompt = "\n\nHuman: Tell me a story\n\nAssistant:"
    chosen = prompt + " Once upon a time.\n\nHuman: wow\n\nAssistant: yes"
    rejected = prompt + " No."
    empty = prompt + " "
    pairs = imp.parse_hh_rlhf(_hh(chosen, rejected) + _hh(empty, rejected), "hh.jsonl")
    assert pairs[0].prompt == PromptRecord(1, "Tell me a story")
    assert pairs[0].response_a == "Once upon a time.\n\nHuman: wow\n\nAssistant: yes"
    assert pairs[1].response_a == "" and pairs[1].response_b == "No."
    for pair, (c, r) in zip(pairs, [(chosen, rejected), (empty, rejected)]):
        assert imp.hh_conversation(pair.prompt, pair.response_a) == c
        assert imp.hh_conversation(pair.prompt, pair.response_b) == r


def test_hh_consecutive_assistant_turns_are_kept_verbatim():
    conv = "\n\nHuman: Q\n\nAssistant: one moment\n\nAssistant: back\n\nHuman: Thanks\n\nAssistant:"
    [pair] = imp.parse_hh_rlhf(_hh(conv + " Bye", conv + " Whatever"), "hh.jsonl")
    assert [m.role for m in pair.prompt.history] == ["user", "assistant", "assistant"]
    assert imp.hh_prompt(pair.prompt) == conv


def _real_hh(name: str) -> tuple[bytes, list[dict[str, str]]]:
    path = HH_DIR / name
    if not path.exists():
        pytest.skip(f"real HH-RLHF data not found at {path}")
    data = path.read_bytes()
    raw = [json.loads(line) for line in gzip.decompress(data).split(b"\n") if line.strip()]
    return data, raw


@pytest.mark.parametrize(
    ("name", "count", "empty_replies"),
    [("harmless-base-test-500.jsonl.gz", 500, 1), ("harmless-base-test-rest-1812.jsonl.gz", 1812, 3)],
)
def test_real_hh_rlhf_files_parse_and_round_trip(name, count, empty_replies):
    data, raw = _real_hh(name)
    pairs = imp.parse_hh_rlhf(data, name)
    assert len(pairs) == len(raw) == count
    assert [p.line for p in pairs] == list(range(1, count + 1))
    for pair, original in zip(pairs, raw):
        assert pair.preferred == "a"
        assert pair.prompt.text.strip()
        assert imp.hh_conversation(pair.prompt, pair.response_a) == original["chosen"]
        assert imp.hh_conversation(pair.prompt, pair.response_b) == original["rejected"]
        assert pair.response_a != pair.response_b
    assert sum(1 for p in pairs if p.response_a == "" or p.response_b == "") == empty_replies


def test_real_hh_rlhf_non_alternating_histories_are_preserved():
    data, _ = _real_hh("harmless-base-test-rest-1812.jsonl.gz")
    pairs = imp.parse_hh_rlhf(data, "rest.jsonl.gz")
    odd = [p.line for p in pairs if any(a.role == b.role for a, b in zip(p.prompt.history, p.prompt.history[1:]))]
    assert odd == [168, 264, 820, 1350]


# --------------------------------------------------------------------------------------------------
# parse_jsonl: the generic reader (evaluation files)
# --------------------------------------------------------------------------------------------------


def test_parse_jsonl_gives_each_object_with_its_line_and_the_other_parsers_errors():
    data = b'{"prompt": "a"}\n\n{"x": [1, 2]}\r\n'
    assert imp.parse_jsonl(data) == [(1, {"prompt": "a"}), (3, {"x": [1, 2]})]
    assert imp.parse_jsonl(gzip.compress(data), "e.jsonl.gz") == imp.parse_jsonl(data)
    bad = b'{"prompt": "a"}\n{"prompt": "b", "prompt": "c"}\n'
    with pytest.raises(ImportFileError) as generic:
        imp.parse_jsonl(bad)
    with pytest.raises(ImportFileError) as prompts:
        imp.parse_prompts(bad, "p.jsonl")
    assert generic.value.line == 2 and str(generic.value) == str(prompts.value)
    with pytest.raises(ImportFileError, match="gzip-compressed; decompress it first"):
        imp.parse_jsonl(gzip.compress(data))
    with pytest.raises(ImportFileError, match="JSON Lines"):
        imp.parse_jsonl(data, "e.csv")
    with pytest.raises(ImportFileError, match="file has no records"):
        imp.parse_jsonl(b"\n \n")
