"""The playground API against tiny models through a real Celery worker on the `playground` queue:
answers stream (several growing partial states are observed), two versions answer side by side,
the second message is served from the worker's loaded models (LoRA sharing the base), and a
conversation is saved as an evaluation or red-team prompt."""

from __future__ import annotations

import time

import pytest

from feedback_site.annotation.models import Prompt

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _chat(client, project_id, version_ids, system_prompt=""):
    answer = client.post(
        f"/api/v1/projects/{project_id}/playground/chats/",
        {"version_ids": version_ids, "system_prompt": system_prompt},
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def _send(client, chat_id, content, **sampling):
    return client.post(f"/api/v1/playground/chats/{chat_id}/messages", {"content": content, **sampling}, content_type="application/json")


def _watch(client, chat_id, worker, timeout=120):
    """Poll like the page does (but tightly), recording every distinct state of each answer."""
    seen: dict[int, list[tuple[str, str]]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chat = client.get(f"/api/v1/playground/chats/{chat_id}/").json()
        for message in chat["messages"]:
            if message["role"] == "assistant":
                states = seen.setdefault(message["id"], [])
                state = (message["status"], message["content"])
                if not states or states[-1] != state:
                    states.append(state)
        if not chat["busy"]:
            return chat, seen
        if worker.process.poll() is not None:
            raise AssertionError(f"worker died:\n{worker.output()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError(f"answers did not finish in {timeout}s\n{worker.output()[-3000:]}")


def test_side_by_side_streams_then_reuses_loaded_models_and_saves_prompts(client, site_admin, playground_project, start_playground_worker):
    project, base, lora = playground_project
    worker = start_playground_worker()
    client.force_login(site_admin)
    chat = _chat(client, project.pk, [base.pk, lora.pk], system_prompt="Be brief.")
    assert [v["id"] for v in chat["versions"]] == [base.pk, lora.pk]

    sent = _send(client, chat["id"], "Tell me a story.", temperature=1.0, max_new_tokens=200, seed=3)
    assert sent.status_code == 202, sent.content
    busy = _send(client, chat["id"], "And another.")
    assert busy.status_code == 409 and busy.json()["error"] == "busy"

    final, seen = _watch(client, chat["id"], worker)
    answers = [m for m in final["messages"] if m["role"] == "assistant"]
    assert [a["lane"] for a in answers] == [0, 1] and all(a["status"] == "done" for a in answers), answers
    first = answers[0]
    partial = [content for status, content in seen[first["id"]] if status == "streaming" and content]
    assert len(partial) >= 3, seen[first["id"]]
    # Each observed partial state is a prefix of the next and of the final answer: it grew.
    for shorter, longer in zip(partial, partial[1:] + [first["content"]]):
        assert longer.startswith(shorter) and len(longer) >= len(shorter)
    assert first["updates"] >= 3 and first["token_count"] > 0 and first["first_token_ms"] > 0
    assert answers[0]["content"] != answers[1]["content"]  # the LoRA version answers differently
    assert all(a["model_was_loaded"] for a in answers)  # cold: base loaded, then the adapter added

    # Second message: both versions are still loaded in the worker (the adapter shares the base).
    assert _send(client, chat["id"], "Shorter please.", temperature=0.0, max_new_tokens=16).status_code == 202
    final, _ = _watch(client, chat["id"], worker)
    second = [m for m in final["messages"] if m["role"] == "assistant" and m["turn"] == 1]
    assert len(second) == 2 and all(m["status"] == "done" for m in second)
    assert [m["model_was_loaded"] for m in second] == [False, False]
    assert second[0]["sampling"]["temperature"] == 0.0

    saved = client.post(f"/api/v1/playground/chats/{chat['id']}/save", {"kind": "eval"}, content_type="application/json")
    assert saved.status_code == 201, saved.content
    prompt = Prompt.objects.get(pk=saved.json()["prompt_id"])
    assert prompt.split == "eval" and prompt.text == "Shorter please." and prompt.system_prompt == "Be brief."
    assert [m["role"] for m in prompt.history] == ["user", "assistant"]
    assert prompt.history[1]["content"] == answers[0]["content"]
    assert prompt.metadata["red_team"] is False
    again = client.post(f"/api/v1/playground/chats/{chat['id']}/save", {"kind": "eval"}, content_type="application/json")
    assert again.json()["prompt_id"] == prompt.pk  # one click twice: one prompt
    red = client.post(f"/api/v1/playground/chats/{chat['id']}/save", {"kind": "redteam", "lane": 1}, content_type="application/json")
    red_prompt = Prompt.objects.get(pk=red.json()["prompt_id"])
    assert red_prompt.metadata["red_team"] is True and red_prompt.history[1]["content"] == answers[1]["content"]


def test_playground_safety_withholds_flagged_answers_and_bad_input_is_400(
    client, site_admin, playground_project, start_playground_worker, add_member, make_user
):
    from feedback_site.safety.services import policy_update

    project, base, _ = playground_project
    # A rule every answer of the byte-level tiny model matches: any character at all.
    policy_update(project=project, actor=site_admin, action="review", use_default_rules=False, rules=[{"name": "anything", "pattern": "."}])
    worker = start_playground_worker()
    client.force_login(site_admin)
    chat = _chat(client, project.pk, [base.pk])
    assert _send(client, chat["id"], "Hello", temperature=1.0, max_new_tokens=30, seed=1).status_code == 202
    final, seen = _watch(client, chat["id"], worker)
    answer = next(m for m in final["messages"] if m["role"] == "assistant")
    assert answer["withheld"] and answer["content"] == ""
    assert answer["safety"]["verdict"] == "flagged" and answer["safety"]["rule"] == "anything"
    assert all(content == "" for _, content in seen[answer["id"]])  # never shown while streaming either
    revealed = client.get(f"/api/v1/playground/chats/{chat['id']}/?reveal=1").json()
    assert next(m for m in revealed["messages"] if m["role"] == "assistant")["content"] != ""

    bad = client.post(f"/api/v1/projects/{project.pk}/playground/chats/", {"version_ids": [999999]}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_version"
    bad = _send(client, chat["id"], "hi", top_p=0)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_top_p"
    bad = _send(client, chat["id"], "hi", colour="red")
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]

    annotator = make_user("ann-pg")
    add_member(project, annotator, "annotator")
    client.force_login(annotator)
    assert (
        client.post(
            f"/api/v1/projects/{project.pk}/playground/chats/", {"version_ids": [base.pk]}, content_type="application/json"
        ).status_code
        == 403
    )
    assert client.get(f"/api/v1/playground/chats/{chat['id']}/").status_code == 403
