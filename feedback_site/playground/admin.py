from django.contrib import admin

from feedback_site.playground.models import Chat, ChatMessage


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "created_by", "version_a", "version_b", "created_at"]
    raw_id_fields = ["version_a", "version_b", "created_by"]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "chat", "lane", "turn", "role", "status", "token_count", "first_token_ms", "safety_verdict"]
    list_filter = ["status", "role", "safety_verdict"]
    raw_id_fields = ["chat", "model_version"]
