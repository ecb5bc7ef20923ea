"""REST API v1 routes of the playground (mounted under /api/v1/)."""

from django.urls import path

from feedback_site.playground import api

urlpatterns = [
    path("projects/<int:project_id>/playground/chats/", api.chat_list, name="api-playground-chats"),
    path("playground/chats/<int:chat_id>/", api.chat_detail, name="api-playground-chat"),
    path("playground/chats/<int:chat_id>/messages", api.message_send, name="api-playground-send"),
    path("playground/chats/<int:chat_id>/stop", api.message_stop, name="api-playground-stop"),
    path("playground/chats/<int:chat_id>/messages/<int:message_id>/rating", api.message_rate, name="api-playground-rate"),
    path("playground/chats/<int:chat_id>/save", api.chat_save, name="api-playground-save"),
]
