"""Parsers for uploaded prompt and preference-pair files.

This module is pure parsing: no Django, no database, no I/O. The import service hands it the raw bytes
of an upload and its file name, and gets back a list of immutable records or an
:class:`ImportFileError` that names the first problem found (line number, field, and a message a person
understands). Nothing is returned until the *whole* file has been checked, so the service can persist the
records in one transaction and an import is all or nothing.

Three kinds of file are understood:

``parse_prompts``
    Prompts to be answered by a policy and judged by annotators.

    * JSON Lines (``.jsonl``, ``.json``, ``.ndjson``): one object per line::

          {"prompt": "How do I bake bread?"}
          {"text": "...", "system": "You are terse.", "metadata": {"topic": "food"}, "id": "q-17"}
          {"prompt": "And rye?", "history": [{"role": "user", "content": "How do I bake bread?"},
                                             {"role": "assistant", "content": "Mix flour..."}]}
          {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "Hi"}]}

      ``prompt`` (or its alias ``text``) is required unless ``messages`` is given; ``system`` (alias
      ``system_prompt``), ``history``, ``metadata`` (an object) and ``id`` (a string or integer, stored
      as ``metadata["id"]``) are optional; ``null`` counts as absent for the optional fields. Any other
      key is an error that names it, so that typos such as ``"promt"`` are caught instead of silently
      dropped. ``history`` holds earlier turns: user/assistant alternating, starting with a user turn
      and ending with an assistant turn (the prompt itself is the next user turn). ``messages`` replaces
      ``prompt``/``system``/``history``: an optional system message first, then user/assistant
      alternating, ending with the user turn to answer.

    * CSV (``.csv``; ``.tsv`` for tab-separated): the first non-blank row is a header and must have a
      ``prompt`` (or ``text``) column; an optional ``system_prompt`` (or ``system``) column gives the
      system prompt; every other column is kept in ``metadata`` as a string. Header names are matched
      case-insensitively after trimming spaces. Quoted fields may span lines; a record's line number is
      the physical line where it starts (the header is line 1). Rows whose cells are all empty are
      skipped.

``parse_pairs``
    Ready-made preference pairs. JSON Lines objects take the prompt fields above plus
    ``response_a`` and ``response_b`` (required, non-empty, different strings) and ``preferred``
    (``"a"``, ``"b"``, ``"tie"`` or ``null``/absent for "not judged yet"). CSV files take the columns
    ``prompt``/``text``, ``response_a``, ``response_b`` and optionally ``system_prompt`` and
    ``preferred`` (an empty cell means not judged); other columns go to ``metadata``. In JSON Lines,
    ``"gold": true`` marks a gold pair: ``preferred`` is then required and is its known answer.

``parse_hh_rlhf``
    Anthropic HH-RLHF JSON Lines: ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected":
    ...}``. The two conversations are split at their longest common prefix, cut just after its last
    ``"\\n\\nAssistant:"``; the part before is parsed into turns (the last Human turn becomes the
    prompt text, the earlier turns its history, *verbatim*), and what follows is the reply, without its
    single leading space. ``response_a`` is the chosen reply, ``response_b`` the rejected one, and
    ``preferred`` is ``"a"``. Two things that occur in the real data are accepted on purpose: empty
    replies, and histories where two assistant turns follow each other (4 of the 2,312 harmless-base
    test lines). :func:`hh_conversation` rebuilds the original strings exactly.

``parse_jsonl``
    Any JSON Lines file whose fields the caller checks itself (evaluation prompts, held-out pairs, the
    adversarial suite): ``(line, object)`` for every non-blank line, with every check below.

Every parser accepts a ``.gz`` suffix on top of its format (``prompts.jsonl.gz``); the data are
decompressed with a cap of ``ImportLimits.max_bytes`` so that a gzip bomb is refused, not inflated.

Encoding: files must be UTF-8; a UTF-8 byte-order mark is accepted and dropped. UTF-16/UTF-32 files,
binary files (any NUL byte), gzip data under a non-``.gz`` name and ZIP archives (including Excel
workbooks) are refused with a message that says what the file is.

Duplicates: records that repeat within a file are **kept** (each gets its own record with its own line
number). Deduplication, if wanted, is the caller's decision; nothing is dropped silently here.

Strings are kept exactly as written (no trimming, no newline normalisation); "non-empty" means "not
empty after trimming whitespace". JSON values that cannot be stored faithfully are refused: ``NaN`` and
infinities, duplicate keys in one object, the escape ``\\u0000`` and unpaired surrogate escapes.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as _dc_field
from typing import Any, Literal

__all__ = [
    "DEFAULT_LIMITS",
    "ImportFileError",
    "ImportLimits",
    "Message",
    "PairRecord",
    "Preferred",
    "PromptRecord",
    "detect_format",
    "hh_conversation",
    "hh_prompt",
    "parse_hh_rlhf",
    "parse_jsonl",
    "parse_pairs",
    "PROMPT_FIELDS",
    "check_fields",
    "parse_prompts",
    "prompt_of_record",
    "text_of_field",
]

Preferred = Literal["a", "b", "tie"]
_PREFERRED_VALUES: tuple[str, ...] = ("a", "b", "tie")
_ROLES: tuple[str, ...] = ("system", "user", "assistant")


# --------------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------------


class ImportFileError(ValueError):
    """An uploaded file cannot be imported.

    ``line`` is the 1-based line of the offending record (for CSV the physical line where the record
    starts; the header is line 1), or ``None`` for problems with the file as a whole. ``field`` names
    the offending field (``"prompt"``, ``"history[2].role"``, a CSV column) or is ``None``.
    ``str(error)`` joins the parts: ``"line 12: field 'prompt': must be a non-empty string"``.
    """

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.message = message
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts: list[str] = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_import_error, (type(self), self.message, self.line, self.field))


def _rebuild_import_error(cls: type[ImportFileError], message: str, line: int | None, field: str | None) -> ImportFileError:
    return cls(message, line=line, field=field)


@dataclass(frozen=True)
class ImportLimits:
    """Size limits applied while parsing; every one of them yields an :class:`ImportFileError`."""

    max_bytes: int = 50 * 1024 * 1024
    """Largest upload, checked before parsing; for ``.gz`` files also the largest decompressed size."""
    max_records: int = 200_000
    """Most records in one file."""
    max_line_chars: int = 1_000_000
    """Longest text of one record (a JSON line, or a CSV record including its separators)."""
    max_json_depth: int = 20
    """Deepest nesting of arrays/objects in one JSON line (the record object itself is level 1)."""
    max_text_chars: int = 200_000
    """Longest single prompt, system prompt, history turn or response."""


DEFAULT_LIMITS = ImportLimits()


@dataclass(frozen=True)
class Message:
    """One chat turn. ``role`` is ``"system"``, ``"user"`` or ``"assistant"``."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"role must be one of {', '.join(_ROLES)}, not {self.role!r}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class PromptRecord:
    """A prompt to answer: the final user turn ``text``, after ``system_prompt`` and ``history``.

    ``history`` holds the earlier user/assistant turns in order (user first, alternating, ending with
    an assistant turn; HH-RLHF imports keep the transcript verbatim, see the module docstring).
    ``metadata`` is a JSON-compatible dict; it is excluded from hashing so records stay hashable.
    """

    line: int
    text: str
    system_prompt: str = ""
    history: tuple[Message, ...] = ()
    metadata: dict[str, Any] = _dc_field(default_factory=dict, hash=False)

    def to_messages(self) -> list[dict[str, str]]:
        """Chat messages ready for a chat template: ``[system?] + history + [user text]``."""
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.extend(m.to_dict() for m in self.history)
        messages.append({"role": "user", "content": self.text})
        return messages


@dataclass(frozen=True)
class PairRecord:
    """Two responses to one prompt, with the preference if it is known (``None``: not judged)."""

    line: int
    prompt: PromptRecord
    response_a: str
    response_b: str
    preferred: Preferred | None = None
    metadata: dict[str, Any] = _dc_field(default_factory=dict, hash=False)
    # A gold pair (JSON Lines `"gold": true`): `preferred` is its known answer, used to measure
    # annotators; it is mixed into their queues instead of being kept as a pre-label.
    gold: bool = False


# --------------------------------------------------------------------------------------------------
# File format, size and encoding
# --------------------------------------------------------------------------------------------------

_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
}
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document such as .xls"),
)


def detect_format(filename: str) -> tuple[str, bool]:
    """Return ``(format, gzipped)`` for a file name, with format ``"jsonl"``, ``"csv"`` or ``"tsv"``.

    The choice is made by extension only (case-insensitive): ``.jsonl``/``.json``/``.ndjson`` are
    JSON Lines, ``.csv`` and ``.tsv`` are delimited text, and a trailing ``.gz`` means gzip around
    either. Anything else raises :class:`ImportFileError` naming the extension.
    """
    base = re.split(r"[\\/]", filename.strip())[-1].lower()
    gzipped = base.endswith(".gz")
    if gzipped:
        base = base[: -len(".gz")]
    dot = base.rfind(".")
    supported = "use .jsonl, .json, .csv or .tsv, optionally gzip-compressed (.jsonl.gz)"
    if dot <= 0:
        raise ImportFileError(f"file name {filename!r} has no recognised extension; {supported}")
    ext = base[dot:]
    fmt = _EXTENSIONS.get(ext)
    if fmt is None:
        shown = ext + (".gz" if gzipped else "")
        raise ImportFileError(f"unsupported file type {shown!r}; {supported}")
    return fmt, gzipped


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _gunzip(data: bytes, limits: ImportLimits) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        raise ImportFileError("file is named .gz but is not a valid gzip file (it is not gzip-compressed)")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            out = gz.read(limits.max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportFileError(f"not a valid gzip file ({exc})") from None
    if len(out) > limits.max_bytes:
        raise ImportFileError(
            f"file is too large when decompressed (more than {_human_size(limits.max_bytes)}; the limit is {_human_size(limits.max_bytes)})"
        )
    return out


def _looks_like_utf16_without_bom(data: bytes) -> bool:
    head = data[:64]
    if len(head) < 4:
        return False
    head = head[: len(head) - len(head) % 2]
    evens, odds = head[0::2], head[1::2]
    return (evens.count(0) == 0 and odds.count(0) == len(odds)) or (odds.count(0) == 0 and evens.count(0) == len(evens))


def _load_bytes(
    data: bytes | bytearray | memoryview,
    filename: str,
    limits: ImportLimits,
    allowed: Sequence[str],
    what: str,
) -> tuple[str, bytes]:
    """Check name, size and encoding; return ``(format, utf8_bytes_without_bom)``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    fmt, gzipped = detect_format(filename)
    if fmt not in allowed:
        raise ImportFileError(f"{what} files must be {' or '.join(_FORMAT_NAMES[f] for f in allowed)}")
    if len(data) > limits.max_bytes:
        raise ImportFileError(f"file is too large ({_human_size(len(data))}; the limit is {_human_size(limits.max_bytes)})")
    if gzipped:
        data = _gunzip(data, limits)
    elif data.startswith(_GZIP_MAGIC):
        raise ImportFileError(f"file is gzip-compressed; name it with a .gz ending (e.g. {filename}.gz)")
    if data.startswith(_UTF32_BOMS):
        raise ImportFileError("file is UTF-32; save it as UTF-8", line=1)
    if data.startswith(_UTF16_BOMS):
        raise ImportFileError("file is UTF-16; save it as UTF-8", line=1)
    if data.startswith(_ZIP_MAGIC):
        raise ImportFileError("file is a ZIP archive (an Excel workbook is one too), not text; extract it or save the sheet as CSV UTF-8")
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise ImportFileError(f"binary file ({kind}), not text; upload a UTF-8 text file", line=1)
    nul = data.find(b"\x00")
    if nul >= 0:
        if _looks_like_utf16_without_bom(data):
            raise ImportFileError("file is UTF-16; save it as UTF-8", line=1)
        raise ImportFileError("binary file (contains NUL bytes); upload a UTF-8 text file", line=_line_of_offset(data, nul))
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    return fmt, data


_FORMAT_NAMES = {"jsonl": "JSON Lines (.jsonl, .jsonl.gz)", "csv": "CSV (.csv)", "tsv": "TSV (.tsv)"}


def _utf8_error(raw: bytes, exc: UnicodeDecodeError, line: int, column: int) -> ImportFileError:
    bad = raw[exc.start] if exc.start < len(raw) else 0
    return ImportFileError(f"not valid UTF-8 (byte 0x{bad:02x} at position {column}); save the file as UTF-8", line=line)


# --------------------------------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------------------------------


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NonFinite(Exception):
    def __init__(self, token: str) -> None:
        self.token = token


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _reject_constant(token: str) -> Any:
    raise _NonFinite(token)


def _parse_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NonFinite(token)
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_constant=_reject_constant, parse_float=_parse_float)
# A JSON string (skipped as a whole) or one bracket; used to measure nesting without recursion.
_DEPTH_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_depth(text: str, line: int, max_depth: int) -> None:
    depth = 0
    for match in _DEPTH_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise ImportFileError(f"JSON is nested too deeply (more than {max_depth} levels)", line=line)
        elif token in "]}":
            depth -= 1


def _check_strings(obj: Any, line: int) -> None:
    """Refuse NUL characters and unpaired surrogates (both arrive only through ``\\u`` escapes)."""
    stack: list[tuple[Any, str | None]] = [(obj, None)]
    while stack:
        value, top = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                name = top if top is not None else key
                _check_string(key, line, name)
                stack.append((item, name))
        elif isinstance(value, list):
            stack.extend((item, top) for item in value)
        elif isinstance(value, str):
            _check_string(value, line, top)


def _check_string(text: str, line: int, field: str | None) -> None:
    if "\x00" in text:
        raise ImportFileError("contains a NUL character (\\u0000), which cannot be stored", line=line, field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise ImportFileError(
            f"contains an unpaired surrogate escape (\\u{code:04x}); the text is not valid Unicode",
            line=line,
            field=field,
        ) from None


def _parse_json_line(text: str, line: int, limits: ImportLimits) -> dict[str, Any]:
    if text.count("[") + text.count("{") > limits.max_json_depth:
        _check_depth(text, line, limits.max_json_depth)
    try:
        value = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise ImportFileError(f"invalid JSON: duplicate key {exc.key!r} in one object", line=line) from None
    except _NonFinite as exc:
        raise ImportFileError(f"invalid JSON: {exc.token} is not allowed (numbers must be finite)", line=line) from None
    except RecursionError:
        raise ImportFileError(f"JSON is nested too deeply (more than {limits.max_json_depth} levels)", line=line) from None
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        if text.strip() in ("{", "[") or (text.lstrip().startswith("[") and text.count("{") == 0):
            message += "; the file must hold one JSON object per line (JSON Lines), not pretty-printed JSON"
        raise ImportFileError(message, line=line) from None
    if not isinstance(value, dict):
        hint = "; each line must hold one record, not an array of records" if isinstance(value, list) else ""
        raise ImportFileError(f"expected a JSON object {{...}}, got {_type_name(value)}{hint}", line=line)
    if "\\u" in text:
        _check_strings(value, line)
    return value


def _iter_jsonl(data: bytes, limits: ImportLimits) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, object)`` for every non-blank line; raise on the first bad line."""
    count = 0
    for line, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _utf8_error(raw, exc, line, exc.start + 1) from None
        if not text.strip():
            continue
        count += 1
        if count > limits.max_records:
            raise ImportFileError(f"too many records (the limit is {limits.max_records:,})", line=line)
        if len(text) > limits.max_line_chars:
            raise ImportFileError(
                f"line is too long ({len(text):,} characters; the limit is {limits.max_line_chars:,})",
                line=line,
            )
        yield line, _parse_json_line(text, line, limits)
    if count == 0:
        raise ImportFileError("file has no records")


# --------------------------------------------------------------------------------------------------
# Field validation shared by the JSON formats
# --------------------------------------------------------------------------------------------------

_PROMPT_FIELDS = frozenset({"prompt", "text", "system", "system_prompt", "history", "messages", "metadata", "id"})
PROMPT_FIELDS = _PROMPT_FIELDS  # for the parsers of other task kinds (rankings, conversations)
_PAIR_FIELDS = _PROMPT_FIELDS | {"response_a", "response_b", "preferred", "gold"}
_HH_FIELDS = frozenset({"chosen", "rejected"})
_FIELD_HINTS = {
    "chosen": "HH-RLHF files with 'chosen'/'rejected' conversations use the HH-RLHF import",
    "rejected": "HH-RLHF files with 'chosen'/'rejected' conversations use the HH-RLHF import",
}


def _check_fields(obj: Mapping[str, Any], allowed: frozenset[str], line: int) -> None:
    for key in obj:
        if key in allowed:
            continue
        message = "unknown field"
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
        if key in _FIELD_HINTS:
            message += f" ({_FIELD_HINTS[key]})."
        elif close:
            message += f"; did you mean {close[0]!r}?"
        else:
            message += "."
        message += f" Allowed fields: {', '.join(sorted(allowed))}"
        raise ImportFileError(message, line=line, field=key)


def _text(value: Any, name: str, line: int, limits: ImportLimits, *, allow_empty: bool = False, hint: str = "") -> str:
    if not isinstance(value, str):
        raise ImportFileError(f"must be a string, got {_type_name(value)}{hint}", line=line, field=name)
    if not allow_empty and not value.strip():
        raise ImportFileError("must be a non-empty string", line=line, field=name)
    if len(value) > limits.max_text_chars:
        raise ImportFileError(
            f"text is too long ({len(value):,} characters; the limit is {limits.max_text_chars:,})",
            line=line,
            field=name,
        )
    return value


def _one_of(obj: Mapping[str, Any], names: tuple[str, str], line: int) -> str | None:
    """The key present among two aliases (``None`` if neither); both present is an error."""
    present = [n for n in names if n in obj and obj[n] is not None]
    if len(present) == 2:
        raise ImportFileError(f"give either {names[0]!r} or {names[1]!r}, not both", line=line)
    return present[0] if present else None


def _turns(value: Any, name: str, line: int, limits: ImportLimits, *, allow_system: bool) -> list[Message]:
    """Validate a list of ``{"role", "content"}`` objects (roles and content only; order is checked
    by the caller)."""
    if not isinstance(value, list):
        raise ImportFileError(f"must be an array of messages, got {_type_name(value)}", line=line, field=name)
    roles = ("system", "user", "assistant") if allow_system else ("user", "assistant")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise ImportFileError(f"must be an object with 'role' and 'content', got {_type_name(item)}", line=line, field=where)
        for key in item:
            if key not in ("role", "content"):
                raise ImportFileError(
                    f"unknown field {key!r} in a message (only 'role' and 'content' are allowed)",
                    line=line,
                    field=where,
                )
        for key in ("role", "content"):
            if key not in item:
                raise ImportFileError("missing required field", line=line, field=f"{where}.{key}")
        role = item["role"]
        if role not in roles:
            allowed = " or ".join(repr(r) for r in roles)
            shown = repr(role) if isinstance(role, str) else _type_name(role)
            raise ImportFileError(f"must be {allowed}, got {shown}", line=line, field=f"{where}.role")
        content = _text(item["content"], f"{where}.content", line, limits, allow_empty=(role == "system"))
        messages.append(Message(role, content))
    return messages


def _check_alternation(messages: Sequence[Message], offset: int, name: str, line: int) -> None:
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role == "system":
            raise ImportFileError("a system message may only come first", line=line, field=f"{name}[{i + offset}].role")
        if message.role != expected:
            raise ImportFileError(
                f"expected {expected!r} here (turns must alternate user/assistant, starting with user)",
                line=line,
                field=f"{name}[{i + offset}].role",
            )


def _metadata(obj: Mapping[str, Any], line: int) -> dict[str, Any]:
    raw = obj.get("metadata")
    if raw is None:
        metadata: dict[str, Any] = {}
    elif isinstance(raw, dict):
        metadata = dict(raw)
    else:
        raise ImportFileError(f"must be an object, got {_type_name(raw)}", line=line, field="metadata")
    record_id = obj.get("id")
    if record_id is not None:
        if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
            raise ImportFileError(f"must be a string or an integer, got {_type_name(record_id)}", line=line, field="id")
        if "id" in metadata and metadata["id"] != record_id:
            raise ImportFileError("differs from metadata.id; give the id once", line=line, field="id")
        metadata = {"id": record_id, **metadata}
    return metadata


def _prompt_from_object(obj: Mapping[str, Any], line: int, limits: ImportLimits, metadata: dict[str, Any]) -> PromptRecord:
    text_key = _one_of(obj, ("prompt", "text"), line)
    system_key = _one_of(obj, ("system", "system_prompt"), line)
    if obj.get("messages") is not None:
        for other in ("prompt", "text", "system", "system_prompt", "history"):
            if obj.get(other) is not None:
                raise ImportFileError(f"give either 'messages' or {other!r}, not both", line=line, field="messages")
        messages = _turns(obj["messages"], "messages", line, limits, allow_system=True)
        system_prompt = ""
        offset = 0
        if messages and messages[0].role == "system":
            system_prompt = messages[0].content
            offset = 1
        turns = messages[offset:]
        if not turns:
            raise ImportFileError("must hold at least one user message", line=line, field="messages")
        _check_alternation(turns, offset, "messages", line)
        if turns[-1].role != "user":
            raise ImportFileError(
                "the last message must be from the user (it is the prompt to answer)",
                line=line,
                field="messages",
            )
        return PromptRecord(line, turns[-1].content, system_prompt, tuple(turns[:-1]), metadata)

    if text_key is None:
        for name in ("prompt", "text"):
            if name in obj:  # present but null
                raise ImportFileError("must be a string, got null", line=line, field=name)
        raise ImportFileError("missing required field (give 'prompt', 'text' or 'messages')", line=line, field="prompt")
    text = _text(
        obj[text_key], text_key, line, limits, hint=("; put a conversation in 'messages'" if isinstance(obj[text_key], list) else "")
    )
    system_prompt = ""
    if system_key is not None:
        system_prompt = _text(obj[system_key], system_key, line, limits, allow_empty=True)
    history: list[Message] = []
    if obj.get("history") is not None:
        history = _turns(obj["history"], "history", line, limits, allow_system=False)
        _check_alternation(history, 0, "history", line)
        if history and history[-1].role != "assistant":
            raise ImportFileError(
                "must end with an assistant turn (the prompt itself is the next user turn)",
                line=line,
                field="history",
            )
    return PromptRecord(line, text, system_prompt, tuple(history), metadata)


def prompt_of_record(obj: Mapping[str, Any], line: int, limits: ImportLimits = DEFAULT_LIMITS) -> PromptRecord:
    """The prompt fields of one JSON Lines record (as :func:`parse_prompts` reads them), for the
    parsers of other task kinds (rankings, conversations) that share them."""
    return _prompt_from_object(obj, line, limits, _metadata(obj, line))


def check_fields(obj: Mapping[str, Any], allowed: frozenset[str], line: int) -> None:
    """:class:`ImportFileError` naming the first key of `obj` not in `allowed` (with a close match)."""
    _check_fields(obj, allowed, line)


def text_of_field(value: Any, name: str, line: int, limits: ImportLimits = DEFAULT_LIMITS) -> str:
    """A non-empty string field within the limits, or :class:`ImportFileError` naming it."""
    return _text(value, name, line, limits)


def _preferred(value: Any, line: int) -> Preferred | None:
    if value is None:
        return None
    if isinstance(value, str) and value in _PREFERRED_VALUES:
        return value  # type: ignore[return-value]
    shown = repr(value) if isinstance(value, str) else _type_name(value)
    raise ImportFileError(f"must be one of 'a', 'b', 'tie' or null, got {shown}", line=line, field="preferred")


def _pair(line: int, prompt: PromptRecord, a: str, b: str, preferred: Preferred | None, metadata: dict[str, Any]) -> PairRecord:
    if a == b:
        raise ImportFileError("is identical to response_a; a pair needs two different responses", line=line, field="response_b")
    return PairRecord(line, prompt, a, b, preferred, metadata)


# --------------------------------------------------------------------------------------------------
# CSV / TSV
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    text: int
    text_name: str
    system: int | None
    extra: dict[str, int]  # role name (response_a, ...) -> column index
    metadata: tuple[tuple[str, int], ...]


def _csv_records(
    data: bytes,
    fmt: str,
    limits: ImportLimits,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> Iterator[tuple[int, _Columns, list[str]]]:
    """Yield ``(start_line, columns, row)`` for every data row; raise on the first bad one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of_offset(data, exc.start)
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise _utf8_error(data, exc, line, exc.start - line_start + 1) from None
    first = text.lstrip()[:1]
    if first in ("{", "["):
        raise ImportFileError(
            f"this looks like JSON, not {fmt.upper()}; name the file .jsonl if it holds one JSON object per line",
            line=_line_of_offset(data, len(data) - len(data.lstrip())),
        )
    needed = limits.max_line_chars + 1
    if csv.field_size_limit() < needed:  # process-wide; only ever raised
        csv.field_size_limit(needed)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",", strict=True)
    columns: _Columns | None = None
    width = 0
    count = 0
    previous = 0
    start = 1
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _header(row, start, required, optional)
                width = len(row)
                continue
            count += 1
            if count > limits.max_records:
                raise ImportFileError(f"too many records (the limit is {limits.max_records:,})", line=start)
            if len(row) != width:
                raise ImportFileError(
                    f"row has {len(row)} fields but the header has {width} columns (quote fields that contain the separator)",
                    line=start,
                )
            size = sum(len(cell) for cell in row) + len(row) - 1
            if size > limits.max_line_chars:
                raise ImportFileError(
                    f"record is too long ({size:,} characters; the limit is {limits.max_line_chars:,})",
                    line=start,
                )
            yield start, columns, row
    except csv.Error as exc:
        start = previous + 1
        message = str(exc)
        if "unexpected end of data" in message:
            message = "a quoted field that starts on this line is never closed"
        elif "field larger than field limit" in message:
            message = f"record is too long (a field is over {limits.max_line_chars:,} characters)"
        raise ImportFileError(f"invalid {fmt.upper()}: {message}", line=start) from None
    if count == 0:
        raise ImportFileError("file has no records")


def _header(row: list[str], line: int, required: tuple[str, ...], optional: tuple[str, ...]) -> _Columns:
    names = [cell.strip() for cell in row]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise ImportFileError(f"column {i + 1} of the header has no name", line=line)
        key = name.lower()
        if key in index:
            raise ImportFileError(f"duplicate column {name!r} in the header", line=line)
        index[key] = i
    if "prompt" in index and "text" in index:
        raise ImportFileError("the header has both a 'prompt' and a 'text' column; keep one", line=line)
    if "system_prompt" in index and "system" in index:
        raise ImportFileError("the header has both a 'system_prompt' and a 'system' column; keep one", line=line)
    found = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    text_name = "prompt" if "prompt" in index else "text"
    if text_name not in index:
        raise ImportFileError(
            f"missing required column 'prompt' (or 'text'); the first row must be a header naming the columns, found: {found}",
            line=line,
        )
    for name in required:
        if name not in index:
            raise ImportFileError(f"missing required column {name!r}; the header has: {found}", line=line)
    system = index.get("system_prompt", index.get("system"))
    extra = {name: index[name] for name in (*required, *optional) if name in index}
    used = {index[text_name], *extra.values(), *([system] if system is not None else [])}
    metadata = tuple((names[i], i) for i in range(len(names)) if i not in used)
    return _Columns(index[text_name], names[index[text_name]], system, extra, metadata)


def _csv_prompt(line: int, columns: _Columns, row: list[str], limits: ImportLimits) -> PromptRecord:
    text = _text(row[columns.text], columns.text_name, line, limits)
    system = ""
    if columns.system is not None:
        system = _text(row[columns.system], "system_prompt", line, limits, allow_empty=True)
    metadata = {name: row[i] for name, i in columns.metadata}
    return PromptRecord(line, text, system, (), metadata)


# --------------------------------------------------------------------------------------------------
# Public parsers
# --------------------------------------------------------------------------------------------------


def parse_jsonl(data: bytes, filename: str | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> list[tuple[int, dict[str, Any]]]:
    """Parse a JSON Lines file into ``(line, object)`` pairs, one per non-blank line, for callers that
    validate the fields themselves (their errors should name the line too).

    The file gets the same checks as the other parsers (size, encoding, binary content, one JSON object
    per line, duplicate keys, non-finite numbers, NUL and unpaired surrogate escapes, depth, line length
    and record count limits), and the first problem raises :class:`ImportFileError` naming its line.
    ``filename`` is checked like theirs (``.jsonl``/``.json``/``.ndjson``, optionally ``.gz``); without
    one (text pasted into a form) the data are taken as uncompressed JSON Lines.
    """
    if filename is None:
        if bytes(data[:2]) == _GZIP_MAGIC:
            raise ImportFileError("file is gzip-compressed; decompress it first")
        filename = "data.jsonl"
    _, text = _load_bytes(data, filename, limits, ("jsonl",), "JSON Lines")
    return list(_iter_jsonl(text, limits))


def parse_prompts(data: bytes, filename: str, limits: ImportLimits = DEFAULT_LIMITS) -> list[PromptRecord]:
    """Parse a prompts file (JSON Lines or CSV/TSV, optionally gzipped) into :class:`PromptRecord`\\ s.

    The whole file is checked before anything is returned; the first problem raises
    :class:`ImportFileError`. Duplicate prompts are kept. See the module docstring for the formats.
    """
    fmt, text = _load_bytes(data, filename, limits, ("jsonl", "csv", "tsv"), "prompt")
    if fmt == "jsonl":

        def jsonl() -> Iterator[PromptRecord]:
            for line, obj in _iter_jsonl(text, limits):
                _check_fields(obj, _PROMPT_FIELDS, line)
                yield _prompt_from_object(obj, line, limits, _metadata(obj, line))

        return list(jsonl())

    def delimited() -> Iterator[PromptRecord]:
        for line, columns, row in _csv_records(text, fmt, limits, (), ()):
            yield _csv_prompt(line, columns, row, limits)

    return list(delimited())


def parse_pairs(data: bytes, filename: str, limits: ImportLimits = DEFAULT_LIMITS) -> list[PairRecord]:
    """Parse a file of ready-made preference pairs (JSON Lines or CSV/TSV, optionally gzipped).

    Each pair has a prompt (as for :func:`parse_prompts`), two different non-empty responses and an
    optional preference. The record's ``metadata`` (including ``id``) is on the :class:`PairRecord`
    and a copy of it on ``prompt.metadata``, so whichever the caller stores keeps it. Duplicate pairs
    are kept.
    """
    fmt, text = _load_bytes(data, filename, limits, ("jsonl", "csv", "tsv"), "pair")
    if fmt == "jsonl":

        def jsonl() -> Iterator[PairRecord]:
            for line, obj in _iter_jsonl(text, limits):
                _check_fields(obj, _PAIR_FIELDS, line)
                metadata = _metadata(obj, line)
                prompt = _prompt_from_object(obj, line, limits, dict(metadata))
                responses = []
                for name in ("response_a", "response_b"):
                    if name not in obj:
                        raise ImportFileError("missing required field", line=line, field=name)
                    responses.append(_text(obj[name], name, line, limits))
                preferred = _preferred(obj.get("preferred"), line)
                gold = obj.get("gold")
                if gold is not None and not isinstance(gold, bool):
                    raise ImportFileError(f"must be true, false or null, got {_type_name(gold)}", line=line, field="gold")
                if gold and preferred is None:
                    raise ImportFileError(
                        "a gold pair needs its known answer in 'preferred' ('a', 'b' or 'tie')", line=line, field="preferred"
                    )
                record = _pair(line, prompt, responses[0], responses[1], preferred, metadata)
                yield dataclasses.replace(record, gold=True) if gold else record

        return list(jsonl())

    def delimited() -> Iterator[PairRecord]:
        for line, columns, row in _csv_records(text, fmt, limits, ("response_a", "response_b"), ("preferred",)):
            base = _csv_prompt(line, columns, row, limits)
            prompt = PromptRecord(line, base.text, base.system_prompt, (), dict(base.metadata))
            a = _text(row[columns.extra["response_a"]], "response_a", line, limits)
            b = _text(row[columns.extra["response_b"]], "response_b", line, limits)
            preferred: Preferred | None = None
            if "preferred" in columns.extra:
                cell = row[columns.extra["preferred"]].strip()
                preferred = _preferred(cell or None, line)
            yield _pair(line, prompt, a, b, preferred, base.metadata)

    return list(delimited())


# --------------------------------------------------------------------------------------------------
# Anthropic HH-RLHF
# --------------------------------------------------------------------------------------------------

_HH_ASSISTANT = "\n\nAssistant:"
_HH_HUMAN_START = "\n\nHuman: "
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}
_HH_NAME = {"user": "Human", "assistant": "Assistant"}


def _common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by binary search on C-level slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _hh_pair(obj: Mapping[str, Any], line: int, limits: ImportLimits) -> PairRecord:
    _check_fields(obj, _HH_FIELDS, line)
    for name in ("chosen", "rejected"):
        if name not in obj:
            raise ImportFileError("missing required field", line=line, field=name)
        if not isinstance(obj[name], str):
            raise ImportFileError(f"must be a string, got {_type_name(obj[name])}", line=line, field=name)
    chosen: str = obj["chosen"]
    rejected: str = obj["rejected"]
    if chosen == rejected:
        raise ImportFileError("is identical to 'chosen'; a pair needs two different replies", line=line, field="rejected")
    prefix = chosen[: _common_prefix_length(chosen, rejected)]
    cut = prefix.rfind(_HH_ASSISTANT)
    if cut < 0:
        raise ImportFileError(
            "no '\\n\\nAssistant:' turn before the point where 'chosen' and 'rejected' differ, so the "
            "replies cannot be told apart from the conversation",
            line=line,
        )
    conversation = chosen[:cut]
    if not conversation.startswith(_HH_HUMAN_START):
        raise ImportFileError("the conversation must start with '\\n\\nHuman: '", line=line, field="chosen")
    parts = _HH_TURN.split(conversation)
    turns = [Message(_HH_ROLE[role], content) for role, content in zip(parts[1::2], parts[2::2])]
    if turns[-1].role != "user":
        raise ImportFileError("the last turn before the replies must be a Human turn", line=line, field="chosen")
    for i, turn in enumerate(turns):
        _text(turn.content, f"chosen (turn {i + 1})", line, limits, allow_empty=True)
    start = cut + len(_HH_ASSISTANT)
    replies = []
    for name, conversation_text in (("chosen", chosen), ("rejected", rejected)):
        reply = conversation_text[start:]
        if reply.startswith(" "):
            reply = reply[1:]
        replies.append(_text(reply, name, line, limits, allow_empty=True))
    if replies[0] == replies[1]:
        raise ImportFileError("the chosen and rejected replies are identical", line=line, field="rejected")
    prompt = PromptRecord(line, turns[-1].content, "", tuple(turns[:-1]))
    return PairRecord(line, prompt, replies[0], replies[1], "a", {})


def parse_hh_rlhf(data: bytes, filename: str, limits: ImportLimits = DEFAULT_LIMITS) -> list[PairRecord]:
    """Parse Anthropic HH-RLHF JSON Lines (``.jsonl`` or ``.jsonl.gz``) into pairs with ``preferred="a"``.

    See the module docstring for how prompt and replies are split. Duplicate pairs are kept.
    """
    _, text = _load_bytes(data, filename, limits, ("jsonl",), "HH-RLHF")
    return list(_hh_pair(obj, line, limits) for line, obj in _iter_jsonl(text, limits))


def hh_prompt(prompt: PromptRecord) -> str:
    """The HH-RLHF text of a prompt: its turns as ``"\\n\\nHuman: ..."``/``"\\n\\nAssistant: ..."``,
    ending with ``"\\n\\nAssistant:"`` (no space). The system prompt has no place in this format and
    is left out."""
    turns = [*prompt.history, Message("user", prompt.text)]
    return "".join(f"\n\n{_HH_NAME[t.role]}: {t.content}" for t in turns) + _HH_ASSISTANT


def hh_conversation(prompt: PromptRecord, reply: str) -> str:
    """A whole HH-RLHF conversation string: ``hh_prompt(prompt) + " " + reply``.

    For pairs from :func:`parse_hh_rlhf` this rebuilds the original ``chosen`` (with ``response_a``)
    and ``rejected`` (with ``response_b``) strings exactly.
    """
    return f"{hh_prompt(prompt)} {reply}"
