// Playground page: creates a chat through the REST API, sends messages and polls the chat while
// answers stream (the worker updates each answer every few tokens). No page reloads.
(function () {
  "use strict";
  const root = document.getElementById("playground");
  if (!root) return;
  const api = root.dataset.api;
  const projectId = root.dataset.project;
  const $ = (id) => document.getElementById(id);
  const state = { chatId: null, polling: false, revealed: new Set() };

  function csrf() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  async function call(method, url, body) {
    const response = await fetch(api + url, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText);
    return data;
  }
  function showError(message) { const el = $("pg-error"); el.textContent = message || ""; el.hidden = !message; }
  function sampling() {
    const out = {};
    for (const name of ["temperature", "top_p"]) out[name] = parseFloat($("pg-" + name).value);
    for (const name of ["top_k", "max_new_tokens", "seed"]) out[name] = parseInt($("pg-" + name).value, 10);
    return out;
  }
  // A chat is bound to the versions and system prompt it started with. The pickers stay usable:
  // changing one ends the current chat, and the next message starts a new one with the new choice.
  function lockSettings(locked) {
    $("pg-settings-note").hidden = !locked;
  }
  function newChat() {
    state.chatId = null; state.revealed.clear(); $("pg-lanes").innerHTML = ""; $("pg-saved").textContent = "";
    $("pg-save-eval").disabled = true; $("pg-save-redteam").disabled = true; $("pg-stop").hidden = true;
    $("pg-send").disabled = false; lockSettings(false); showError("");
  }

  function render(chat) {
    const lanes = $("pg-lanes");
    lanes.innerHTML = "";
    for (const version of chat.versions) {
      const lane = document.createElement("section");
      lane.className = "card pg-lane";
      lane.dataset.lane = version.lane;
      const title = document.createElement("h2");
      title.textContent = "v" + version.number + " · " + version.name;
      lane.appendChild(title);
      for (const message of chat.messages.filter((m) => m.lane === version.lane)) {
        const box = document.createElement("div");
        box.className = "pg-msg " + message.role;
        box.dataset.status = message.status;
        box.dataset.messageId = message.id;
        const text = document.createElement("div");
        text.className = "pg-text";
        text.textContent = message.content || (message.status === "queued" ? "…" : "");
        const flag = message.safety && message.safety.verdict === "flagged" ? message.safety : null;
        if (message.withheld) {
          text.textContent = "Withheld by the safety screen (" + flag.rule + "). ";
          const show = document.createElement("button");
          show.type = "button"; show.textContent = "Show anyway";
          show.addEventListener("click", () => { state.revealed.add(message.id); refresh(true); });
          text.appendChild(show);
        } else if (flag && !state.revealed.has(message.id)) {
          const warning = document.createElement("div");
          warning.className = "pg-warning";
          warning.textContent = "Flagged by the safety screen (" + flag.rule + "): click the text to show it.";
          box.appendChild(warning);
          text.classList.add("pg-warn");
          text.addEventListener("click", () => { state.revealed.add(message.id); text.classList.remove("pg-warn"); warning.remove(); });
        }
        box.appendChild(text);
        if (message.role === "assistant") {
          const meta = document.createElement("div");
          meta.className = "pg-meta";
          const parts = [message.status];
          if (message.token_count) parts.push(message.token_count + " tokens");
          if (message.first_token_ms != null) parts.push("first token " + Math.round(message.first_token_ms) + " ms");
          if (message.tokens_per_second) parts.push(message.tokens_per_second.toFixed(1) + " tok/s");
          if (message.error) parts.push(message.error);
          meta.textContent = parts.join(" · ");
          box.appendChild(meta);
          if (message.status === "done" && !message.withheld) box.appendChild(thumbs(message));
        }
        lane.appendChild(box);
      }
      lanes.appendChild(lane);
    }
    const hasMessages = chat.messages.length > 0;
    $("pg-save-eval").disabled = !hasMessages;
    $("pg-save-redteam").disabled = !hasMessages;
    $("pg-stop").hidden = !chat.busy;
    $("pg-send").disabled = chat.busy;
  }

  // Thumbs up / down on a finished answer: buttons (Tab, then Enter or Space) that record the
  // rating at once; pressing the other one changes it. Rating snapshots carry them to KTO.
  function thumbs(message) {
    const bar = document.createElement("div");
    bar.className = "pg-thumbs";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Rate this answer");
    for (const [label, text, name] of [[true, "✓ Good", "Good answer"], [false, "✗ Bad", "Bad answer"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pg-thumb";
      button.dataset.label = String(label);
      button.textContent = text;
      button.title = name;
      button.setAttribute("aria-label", name);
      button.setAttribute("aria-pressed", String(message.my_rating === label));
      button.addEventListener("click", async () => {
        try {
          await call("POST", "/playground/chats/" + state.chatId + "/messages/" + message.id + "/rating", { label });
          bar.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
        } catch (error) { showError(error.message); }
      });
      bar.appendChild(button);
    }
    return bar;
  }

  async function refresh(reveal) {
    if (!state.chatId) return null;
    const chat = await call("GET", "/playground/chats/" + state.chatId + "/" + (reveal ? "?reveal=1" : ""));
    render(chat);
    return chat;
  }
  async function poll() {
    if (state.polling) return;
    state.polling = true;
    try {
      for (;;) {
        const chat = await refresh(state.revealed.size > 0);
        if (!chat || !chat.busy) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } catch (error) { showError(error.message); }
    finally { state.polling = false; }
  }

  async function send(event) {
    event.preventDefault();
    const content = $("pg-input").value;
    if (!content.trim()) return;
    showError("");
    try {
      if (!state.chatId) {
        const versionIds = [parseInt($("pg-version-a").value, 10)];
        if ($("pg-version-b").value) versionIds.push(parseInt($("pg-version-b").value, 10));
        const chat = await call("POST", "/projects/" + projectId + "/playground/chats/", { version_ids: versionIds, system_prompt: $("pg-system").value });
        state.chatId = chat.id;
        lockSettings(true);
      }
      await call("POST", "/playground/chats/" + state.chatId + "/messages", Object.assign({ content }, sampling()));
      $("pg-input").value = "";
      poll();
    } catch (error) { showError(error.message); }
  }
  async function save(kind) {
    try {
      const saved = await call("POST", "/playground/chats/" + state.chatId + "/save", { kind, lane: 0 });
      $("pg-saved").textContent = (kind === "redteam" ? "Saved as red-team prompt #" : "Saved as evaluation prompt #") + saved.prompt_id;
    } catch (error) { showError(error.message); }
  }

  $("pg-form").addEventListener("submit", send);
  $("pg-input").addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send(event); });
  $("pg-save-eval").addEventListener("click", () => save("eval"));
  $("pg-save-redteam").addEventListener("click", () => save("redteam"));
  $("pg-stop").addEventListener("click", () => call("POST", "/playground/chats/" + state.chatId + "/stop").catch((e) => showError(e.message)));
  $("pg-new").addEventListener("click", newChat);
  for (const id of ["pg-version-a", "pg-version-b", "pg-system"]) {
    $(id).addEventListener("change", () => { if (state.chatId) newChat(); });
  }
})();
