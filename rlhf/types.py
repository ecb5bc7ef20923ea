"""Types shared across the library: a chat message and a conversation (TRL's conversational format)."""

Message = dict[str, str]
Conversation = list[Message]
