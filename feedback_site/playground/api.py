"""Staff API of the playground: chats, messages (streamed through polling), save as prompt."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.api import strict_body
from feedback_site.core.errors import Invalid
from feedback_site.playground import services
from feedback_site.playground.models import Chat
from feedback_site.projects.permissions import STAFF_ROLES, project_for


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    lane = serializers.IntegerField()
    turn = serializers.IntegerField()
    role = serializers.CharField()
    status = serializers.CharField()
    content = serializers.CharField()
    withheld = serializers.BooleanField()
    error = serializers.CharField()
    model_version_id = serializers.IntegerField(allow_null=True)
    sampling = serializers.JSONField()
    token_count = serializers.IntegerField()
    updates = serializers.IntegerField()
    first_token_ms = serializers.FloatField(allow_null=True)
    queue_ms = serializers.FloatField(allow_null=True)
    total_ms = serializers.FloatField(allow_null=True)
    tokens_per_second = serializers.FloatField(allow_null=True)
    model_was_loaded = serializers.BooleanField(allow_null=True)
    safety = serializers.JSONField()
    my_rating = serializers.BooleanField(allow_null=True)


def message_data(message, reveal: bool = False, labels: dict[int, bool] | None = None) -> dict:
    withheld = message.withheld
    return {
        "id": message.pk,
        "lane": message.lane,
        "turn": message.turn,
        "role": message.role,
        "status": message.status,
        "content": "" if withheld and not reveal else message.content,
        "withheld": withheld,
        "error": message.error,
        "model_version_id": message.model_version_id,
        "sampling": message.sampling,
        "token_count": message.token_count,
        "updates": message.updates,
        "first_token_ms": message.first_token_ms,
        "queue_ms": message.queue_ms,
        "total_ms": message.total_ms,
        "tokens_per_second": message.tokens_per_second,
        "model_was_loaded": message.model_was_loaded,
        "safety": {
            "verdict": message.safety_verdict,
            "action": message.safety_action,
            "rule": message.safety_rule,
            "score": message.safety_score,
        }
        if message.safety_verdict
        else None,
        # The caller's thumbs on this answer (true up, false down), null when not rated.
        "my_rating": (labels or {}).get(message.pk),
    }


def chat_data(chat: Chat, reveal: bool = False, labels: dict[int, bool] | None = None) -> dict:
    messages = list(chat.messages.order_by("turn", "lane", "id"))
    return {
        "id": chat.pk,
        "project_id": chat.project_id,
        "system_prompt": chat.system_prompt,
        "versions": [
            {"lane": lane, "id": chat.version_for(lane).pk, "number": chat.version_for(lane).number, "name": chat.version_for(lane).name}
            for lane in chat.lanes()
        ],
        "busy": any(m.status in ("queued", "streaming") for m in messages),
        "messages": [message_data(m, reveal, labels) for m in messages],
        "created_at": chat.created_at,
    }


class ChatIn(serializers.Serializer):
    version_ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=2)
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class MessageIn(serializers.Serializer):
    content = serializers.CharField(trim_whitespace=False)
    temperature = serializers.FloatField(required=False)
    top_p = serializers.FloatField(required=False)
    top_k = serializers.IntegerField(required=False)
    max_new_tokens = serializers.IntegerField(required=False)
    seed = serializers.IntegerField(required=False)


class RatingIn(serializers.Serializer):
    # Checked by the ratings service (a 400 naming the field): "yes" or 1 is not a label.
    label = serializers.JSONField(required=False, default=None)
    reason = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class SaveIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["eval", "redteam"])
    lane = serializers.IntegerField(required=False, default=0)


def _reject_unknown(request, serializer_class) -> None:
    if not isinstance(request.data, dict):
        raise Invalid("expected a JSON object", code="bad_body")
    unknown = set(request.data) - set(serializer_class().fields)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}", code="bad_field")


@extend_schema(responses=OpenApiTypes.OBJECT, methods=["GET"], summary="Recent playground chats of a project (staff)")
@extend_schema(
    responses=OpenApiTypes.OBJECT, methods=["POST"], request=ChatIn, summary="Start a chat with one version, or two side by side"
)
@api_view(["GET", "POST"])
def chat_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        _reject_unknown(request, ChatIn)
        data = ChatIn(data=request.data)
        data.is_valid(raise_exception=True)
        chat = services.chat_create(project=project, actor=request.user, **data.validated_data)
        return Response(chat_data(chat), status=status.HTTP_201_CREATED)
    chats = Chat.objects.filter(project=project, created_by=request.user).select_related("version_a", "version_b")[:50]
    return Response(
        [
            {
                "id": c.pk,
                "system_prompt": c.system_prompt,
                "created_at": c.created_at,
                "version_ids": [c.version_for(lane).pk for lane in c.lanes()],
            }
            for c in chats
        ]
    )


@extend_schema(
    responses=OpenApiTypes.OBJECT, summary="A chat with every message; poll it while answers stream (?reveal=1 shows withheld text)"
)
@api_view(["GET"])
def chat_detail(request, chat_id: int):
    chat = services.chat_get(chat_id=chat_id, actor=request.user)
    labels = services.message_labels(chat=chat, actor=request.user)
    return Response(chat_data(chat, reveal=request.query_params.get("reveal") == "1", labels=labels))


@extend_schema(responses=OpenApiTypes.OBJECT, request=MessageIn, summary="Send a message (to both versions side by side); answers stream")
@api_view(["POST"])
def message_send(request, chat_id: int):
    chat = services.chat_get(chat_id=chat_id, actor=request.user)
    _reject_unknown(request, MessageIn)
    data = MessageIn(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    content = values.pop("content")
    answers = services.message_send(chat=chat, actor=request.user, content=content, sampling=values)
    return Response({"answers": [message_data(a) for a in answers]}, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary="Stop the answers being generated")
@api_view(["POST"])
def message_stop(request, chat_id: int):
    chat = services.chat_get(chat_id=chat_id, actor=request.user)
    return Response({"stopping": services.message_stop(chat=chat, actor=request.user)})


@extend_schema(
    responses=OpenApiTypes.OBJECT, request=RatingIn, summary="Thumbs up (label true) or down on one answer; rating it again changes it"
)
@api_view(["POST"])
def message_rate(request, chat_id: int, message_id: int):
    chat = services.chat_get(chat_id=chat_id, actor=request.user)
    rating, created = services.message_rate(chat=chat, actor=request.user, message_id=message_id, **strict_body(request, RatingIn))
    return Response(
        {"message_id": message_id, "label": rating.label, "reason": rating.reason},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@extend_schema(responses=OpenApiTypes.OBJECT, request=SaveIn, summary="Save the conversation as an evaluation or red-team prompt")
@api_view(["POST"])
def chat_save(request, chat_id: int):
    chat = services.chat_get(chat_id=chat_id, actor=request.user)
    _reject_unknown(request, SaveIn)
    data = SaveIn(data=request.data)
    data.is_valid(raise_exception=True)
    prompt = services.chat_save_prompt(chat=chat, actor=request.user, **data.validated_data)
    return Response(
        {
            "prompt_id": prompt.pk,
            "split": prompt.split,
            "text": prompt.text,
            "system_prompt": prompt.system_prompt,
            "history": prompt.history,
            "metadata": prompt.metadata,
        },
        status=status.HTTP_201_CREATED,
    )
