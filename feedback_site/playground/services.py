"""Every write of the playground: chats, sending a message, the worker's streaming updates, and
saving a conversation as an evaluation or red-team prompt.

Staff only (project admins and ML staff). Generation runs on the `playground` Celery queue; the
web process only creates rows and enqueues (it never imports torch).
"""

from __future__ import annotations

import time

from django.db import transaction
from django.utils import timezone

from feedback_site.annotation.models import Prompt, Split
from feedback_site.core.configs import build_config
from feedback_site.core.errors import Conflict, Invalid, NotFound
from feedback_site.core.queue import enqueue
from feedback_site.playground.models import OPEN_STATUSES, Chat, ChatMessage, MessageStatus
from feedback_site.projects.models import Project
from feedback_site.projects.permissions import STAFF_ROLES, require_role
from feedback_site.ratings.models import AnswerSource
from feedback_site.ratings.services import answer_labels, answer_rate
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.generation import SamplingConfig
from workers.task_names import PLAYGROUND_GENERATE

MAX_MESSAGE_CHARS = 20_000
MAX_SYSTEM_PROMPT_CHARS = 20_000
# The playground samples one answer at a time: every SamplingConfig field but batch_size, and
# longer answers by default than a generation run (a chat reply, not a candidate to compare).
PLAYGROUND_FIELDS = ("temperature", "top_p", "top_k", "max_new_tokens", "seed")
SAMPLING_DEFAULTS = {**{name: SamplingConfig.defaults()[name] for name in PLAYGROUND_FIELDS}, "max_new_tokens": 256}


def validate_sampling(values: dict) -> dict:
    unknown = set(values) - set(PLAYGROUND_FIELDS)
    if unknown:
        raise Invalid(f"unknown setting(s): {', '.join(sorted(unknown))}", code="bad_field")
    merged = {**SAMPLING_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    config = build_config(SamplingConfig, merged).to_dict()
    return {name: config[name] for name in PLAYGROUND_FIELDS}


def _policy(project: Project, version_id) -> ModelVersion:
    version = None
    if isinstance(version_id, int) and not isinstance(version_id, bool):
        version = ModelVersion.objects.filter(pk=version_id, project=project, kind=ModelKind.POLICY).first()
    if version is None:
        raise Invalid(f"version {version_id!r} is not a policy version of this project", code="bad_version")
    return version


def chat_create(*, project: Project, actor, version_ids: list, system_prompt: str = "") -> Chat:
    """A new chat with one version, or two side by side (the same messages go to both)."""
    require_role(actor, project, STAFF_ROLES)
    if not isinstance(version_ids, list) or not 1 <= len(version_ids) <= 2:
        raise Invalid("version_ids must list one version, or two for side by side", code="bad_version")
    versions = [_policy(project, v) for v in version_ids]
    if not isinstance(system_prompt, str) or len(system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
        raise Invalid(f"system_prompt must be text of at most {MAX_SYSTEM_PROMPT_CHARS} characters", code="bad_system_prompt")
    return Chat.objects.create(
        project=project,
        created_by=actor,
        system_prompt=system_prompt,
        version_a=versions[0],
        version_b=versions[1] if len(versions) == 2 else None,
    )


def chat_get(*, chat_id: int, actor) -> Chat:
    chat = Chat.objects.select_related("project", "version_a", "version_b").filter(pk=chat_id).first()
    if chat is None:
        raise NotFound("No such chat.")
    require_role(actor, chat.project_id, STAFF_ROLES)
    return chat


def lane_history(chat: Chat, lane: int, before_turn: int | None = None) -> list[dict[str, str]]:
    """The conversation a lane's version sees: system prompt, then finished turns of that lane."""
    messages: list[dict[str, str]] = []
    if chat.system_prompt:
        messages.append({"role": "system", "content": chat.system_prompt})
    rows = ChatMessage.objects.filter(chat=chat, lane=lane).order_by("turn", "id")
    if before_turn is not None:
        rows = rows.filter(turn__lt=before_turn)
    for row in rows:
        if row.role == "user" or row.status == MessageStatus.DONE:
            messages.append({"role": row.role, "content": row.content})
    return messages


def message_send(*, chat: Chat, actor, content: str, sampling: dict | None = None) -> list[ChatMessage]:
    """Add the user's message to every lane and queue one answer per lane. Returns the answers."""
    require_role(actor, chat.project_id, STAFF_ROLES)
    if not isinstance(content, str) or not content.strip():
        raise Invalid("content must be a non-empty message", code="bad_content")
    if len(content) > MAX_MESSAGE_CHARS:
        raise Invalid(f"content is longer than {MAX_MESSAGE_CHARS} characters", code="bad_content")
    values = validate_sampling(dict(sampling or {}))
    with transaction.atomic():
        locked = Chat.objects.select_for_update().get(pk=chat.pk)
        if ChatMessage.objects.filter(chat=locked, status__in=OPEN_STATUSES).exists():
            raise Conflict("The previous answer is still being generated; wait for it or stop it.", code="busy")
        last = ChatMessage.objects.filter(chat=locked).order_by("-turn").values_list("turn", flat=True).first()
        turn = 0 if last is None else last + 1
        answers = []
        for lane in locked.lanes():
            ChatMessage.objects.create(chat=locked, lane=lane, turn=turn, role="user", content=content)
            answers.append(
                ChatMessage.objects.create(
                    chat=locked,
                    lane=lane,
                    turn=turn,
                    role="assistant",
                    status=MessageStatus.QUEUED,
                    model_version=locked.version_for(lane),
                    sampling=values,
                )
            )
    for answer in answers:
        try:
            enqueue(PLAYGROUND_GENERATE, answer.pk)
        except Exception:
            ChatMessage.objects.filter(pk__in=[a.pk for a in answers], status=MessageStatus.QUEUED).update(
                status=MessageStatus.FAILED, error="The task queue is unavailable; nothing was generated."
            )
            raise
    return answers


def message_stop(*, chat: Chat, actor) -> int:
    """Ask the worker to stop the answers being generated; returns how many were open."""
    require_role(actor, chat.project_id, STAFF_ROLES)
    return ChatMessage.objects.filter(chat=chat, status__in=OPEN_STATUSES).update(cancel_requested=True)


# ---------------------------------------------------------------------------------------------
# Worker side: the task calls these (it never writes rows itself).
# ---------------------------------------------------------------------------------------------


def message_start(*, message_id: int) -> ChatMessage | None:
    """Mark an answer as streaming; None when there is nothing to do (finished, cancelled, gone)."""
    with transaction.atomic():
        message = ChatMessage.objects.select_for_update(of=("self",)).select_related("chat", "model_version").filter(pk=message_id).first()
        if message is None or message.status not in OPEN_STATUSES:
            return None
        if message.cancel_requested:
            message.status = MessageStatus.CANCELLED
            message.save(update_fields=["status", "updated_at"])
            return None
        message.status = MessageStatus.STREAMING
        message.content = ""  # a redelivered task starts the answer again
        message.queue_ms = (timezone.now() - message.created_at).total_seconds() * 1000
        message.save(update_fields=["status", "content", "queue_ms", "updated_at"])
        return message


def message_stream(*, message_id: int, content: str, tokens: int, first_token_ms: float | None = None) -> bool:
    """Publish the partial answer; returns True when staff asked to stop."""
    fields = {"content": content.replace("\x00", "\ufffd"), "token_count": tokens, "updated_at": timezone.now()}
    if first_token_ms is not None:
        fields["first_token_ms"] = first_token_ms
    from django.db.models import F

    ChatMessage.objects.filter(pk=message_id, status=MessageStatus.STREAMING).update(updates=F("updates") + 1, **fields)
    return ChatMessage.objects.filter(pk=message_id, cancel_requested=True).exists()


def message_finish(
    *,
    message_id: int,
    content: str,
    tokens: int,
    first_token_ms: float | None,
    total_ms: float,
    model_was_loaded: bool,
    cancelled: bool = False,
    safety_score: float | None = None,
) -> ChatMessage:
    """Store the whole answer with its statistics and the safety screen's decision."""
    from feedback_site.safety.services import decide, policy_for

    with transaction.atomic():
        message = ChatMessage.objects.select_for_update(of=("self",)).select_related("chat").get(pk=message_id)
        text = content.replace("\x00", "\ufffd")
        decision = decide(policy_for(message.chat.project_id), text, safety_score)
        message.content = text
        message.token_count = tokens
        message.first_token_ms = first_token_ms
        message.total_ms = total_ms
        message.tokens_per_second = tokens / (total_ms / 1000) if total_ms > 0 else None
        message.model_was_loaded = model_was_loaded
        message.status = MessageStatus.CANCELLED if cancelled else MessageStatus.DONE
        message.safety_verdict = decision["verdict"]
        message.safety_action = decision["action"]
        message.safety_rule = decision["matched_rule"]
        message.safety_score = decision["score"]
        message.updates += 1
        message.save()
        return message


def message_fail(*, message_id: int, error: str) -> None:
    ChatMessage.objects.filter(pk=message_id).exclude(status=MessageStatus.DONE).update(
        status=MessageStatus.FAILED, error=error[:2000], updated_at=timezone.now()
    )


def screen_partial(*, project_id: int, text: str, rules=None) -> dict | None:
    """Rules on a partial answer while it streams: a match withholds the rest under hide/review."""
    from feedback_site.safety.services import decide, policy_for

    decision = decide(policy_for(project_id), text, None, rules)
    return decision if decision["verdict"] == "flagged" else None


# ---------------------------------------------------------------------------------------------
# Thumbs up / down on an answer (rating snapshots carry them to KTO)
# ---------------------------------------------------------------------------------------------


def message_rate(*, chat: Chat, actor, message_id: int, label, reason: str = ""):
    """Staff rate what a version said: thumbs up or down (and a reason) on one finished answer of
    the chat. Returns (rating, created); rating it again changes the rating. The rating keeps the
    conversation the answer replied to (its lane's history), so a rating snapshot can use it."""
    require_role(actor, chat.project_id, STAFF_ROLES)
    message = ChatMessage.objects.filter(pk=message_id, chat=chat).first()
    if message is None:
        raise NotFound("No such message in this chat.")
    if message.role != "assistant" or message.status != MessageStatus.DONE:
        raise Invalid("only a finished answer can be rated", code="not_an_answer")
    if message.withheld:
        raise Invalid("an answer the safety screen withheld cannot be rated", code="withheld")
    question = ChatMessage.objects.get(chat=chat, lane=message.lane, turn=message.turn, role="user")
    conversation = lane_history(chat, message.lane, before_turn=message.turn) + [{"role": "user", "content": question.content}]
    return answer_rate(
        project=chat.project,
        actor=actor,
        source=AnswerSource.PLAYGROUND,
        source_id=str(message.pk),
        conversation=conversation,
        answer=message.content,
        label=label,
        reason=reason,
        model_version=message.model_version,
    )


def message_labels(*, chat: Chat, actor) -> dict[int, bool]:
    """The caller's thumbs on the chat's answers: {message id: label}."""
    ids = list(ChatMessage.objects.filter(chat=chat, role="assistant").values_list("pk", flat=True))
    return {int(key): label for key, label in answer_labels(source=AnswerSource.PLAYGROUND, source_ids=ids, rater=actor).items()}


# ---------------------------------------------------------------------------------------------
# Saving a conversation as a prompt
# ---------------------------------------------------------------------------------------------


def chat_save_prompt(*, chat: Chat, actor, kind: str, lane: int = 0) -> Prompt:
    """Save the conversation up to its last user message as a held-out prompt.

    kind "eval": an evaluation prompt (split=eval). kind "redteam": also split=eval, marked
    `metadata.red_team = true` so red-team sets can be selected. The history is the lane's
    earlier turns (user messages and that lane's finished answers). Saving the same turn of the
    same chat as the same kind twice returns the first prompt.
    """
    require_role(actor, chat.project_id, STAFF_ROLES)
    if kind not in ("eval", "redteam"):
        raise Invalid("kind must be 'eval' or 'redteam'", code="bad_kind")
    if lane not in chat.lanes():
        raise Invalid(f"lane must be one of {chat.lanes()}", code="bad_lane")
    last_user = ChatMessage.objects.filter(chat=chat, lane=lane, role="user").order_by("-turn").first()
    if last_user is None:
        raise Invalid("the chat has no message to save yet", code="empty_chat")
    metadata = {"source": "playground", "chat_id": chat.pk, "turn": last_user.turn, "red_team": kind == "redteam"}
    with transaction.atomic():
        existing = Prompt.objects.filter(
            project_id=chat.project_id,
            metadata__source="playground",
            metadata__chat_id=chat.pk,
            metadata__turn=last_user.turn,
            metadata__red_team=(kind == "redteam"),
        ).first()
        if existing is not None:
            return existing
        history = [m for m in lane_history(chat, lane, before_turn=last_user.turn) if m["role"] != "system"]
        return Prompt.objects.create(
            project_id=chat.project_id,
            text=last_user.content,
            system_prompt=chat.system_prompt,
            history=history,
            split=Split.EVAL,
            metadata=metadata,
        )


def now_ms() -> float:
    return time.perf_counter() * 1000
