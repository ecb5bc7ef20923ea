/*
 * The annotator page: shows one pair at a time and sends the judgment through the JSON API.
 *
 * Rules this file keeps, and why:
 * - Prompt and response content reaches the DOM through innerHTML ONLY from the `html` fields of
 *   the API payload. The server renders markdown with raw HTML disabled and allow-lists the tags
 *   (feedback_site/core/rendering.py), so model output cannot run script here. Anything else that
 *   came from data (system prompt, role names, criterion names) goes in with textContent.
 * - Nothing is lost: the draft (choice, strength, criteria, rationale) is saved in localStorage
 *   per assignment on every change, so a reload, a crash or a failed request keeps it. The API is
 *   idempotent per assignment, so retrying a submit after a network error cannot store twice.
 * - The lease is renewed every lease_seconds / 3 while the tab is visible, so an open page keeps
 *   its pair and an abandoned one gives it back to the queue quickly.
 * - Keyboard first: every action has a key (shown on the page), and keys never fire while the
 *   annotator is typing in the rationale.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("annotate-config").textContent);

  function $(id) { return document.getElementById(id); }

  var els = {
    root: $("annotate"),
    status: $("an-status"),
    loading: $("an-loading"),
    error: $("an-error"),
    errorText: $("an-error-text"),
    retry: $("an-retry"),
    empty: $("an-empty"),
    paused: $("an-paused"),
    pausedText: $("an-paused-text"),
    work: $("an-work"),
    convoTitle: $("an-convo-title"),
    system: $("an-system"),
    systemText: $("an-system-text"),
    history: $("an-history"),
    prompt: $("an-prompt"),
    left: $("an-left"),
    right: $("an-right"),
    controls: $("an-controls"),
    leftMeta: $("an-left-meta"),
    rightMeta: $("an-right-meta"),
    criteriaGroup: $("an-criteria-group"),
    criteria: $("an-criteria"),
    rationale: $("an-rationale"),
    submit: $("an-submit"),
    skip: $("an-skip"),
    draftNote: $("an-draft-note"),
    help: $("an-help"),
    helpToggle: $("an-help-toggle"),
    guideline: $("an-guideline"),
    judged: $("an-judged"),
    skipped: $("an-skipped"),
    remaining: $("an-remaining"),
  };

  var CHOICE_KEYS = { "1": "left", "2": "right", "3": "tie", "4": "both_bad" };
  var STRENGTH_KEYS = { q: "slight", w: "clear", e: "much" };
  var CRITERION_KEYS = { z: "left", x: "right", c: "tie" };
  var CHOICE_LABELS = { left: "Left is better", right: "Right is better", tie: "Tie", both_bad: "Both bad" };
  var STRENGTH_LABELS = { slight: "slightly", clear: "clearly", much: "much better" };
  var VOTE_LABELS = { left: "Left", right: "Right", tie: "Tie" };
  var ROLE_LABELS = { user: "User", assistant: "Assistant", system: "System" };

  var DRAFT_PREFIX = "annotate:draft:";
  var DRAFT_MAX_AGE_MS = 14 * 24 * 3600 * 1000;
  var GUIDELINE_SEEN_KEY = "annotate:guideline-seen:" + config.projectId;

  var state = {
    mode: "loading",      // loading | work | empty | error
    assignment: null,     // the payload currently shown
    draft: emptyDraft(),
    busy: false,          // a submit or skip is in flight: a second key press must not send another
    activeCriterion: 0,   // the criterion row Z/X/C vote on
    renewTimer: null,
    renewEveryMs: 0,
    lastRenewAt: 0,
  };

  /* ---------- time spent: counts only while the tab is visible ---------- */

  var clock = {
    accumulated: 0,
    since: null,
    reset: function (startMs) {
      this.accumulated = startMs || 0;
      this.since = document.visibilityState === "visible" ? performance.now() : null;
    },
    pause: function () {
      if (this.since !== null) { this.accumulated += performance.now() - this.since; this.since = null; }
    },
    resume: function () {
      if (this.since === null) { this.since = performance.now(); }
    },
    elapsed: function () {
      var running = this.since !== null ? performance.now() - this.since : 0;
      return Math.max(0, Math.round(this.accumulated + running));
    },
  };

  /* ---------- small helpers ---------- */

  function emptyDraft() { return { choice: "", strength: "", criteria: {}, rationale: "" }; }

  function sidedChoice(choice) { return choice === "left" || choice === "right"; }

  function assignmentUrl(name, id) {
    // The view reversed each URL with id 0; swap in the real one.
    return config.urls[name].replace("/0/", "/" + encodeURIComponent(id) + "/");
  }

  // Status line (aria-live): every action is announced for screen readers and shown to everyone.
  function announce(message, tone) {
    els.status.textContent = message || "";
    els.status.className = "an-status" + (message ? " is-visible" : "") + (tone ? " is-" + tone : "");
  }

  function detailOf(res, fallback) {
    var data = res && res.data;
    if (data && typeof data.detail === "string") { return data.detail; }
    if (data && data.detail && typeof data.detail === "object") {
      // DRF validation errors: {field: ["message"]}.
      return Object.keys(data.detail).map(function (k) {
        var v = data.detail[k];
        return k + ": " + (Array.isArray(v) ? v.join(" ") : String(v));
      }).join("; ");
    }
    return fallback;
  }

  // Django rotates the CSRF token at login; reading the cookie at each request keeps a page that
  // stayed open across a login in another tab working. The token rendered into the page is the
  // fallback when the cookie cannot be read.
  function csrfToken() {
    var name = config.csrfCookieName + "=";
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.indexOf(name) === 0) { return decodeURIComponent(part.slice(name.length)); }
    }
    return config.csrfToken;
  }

  // fetch() with the session's CSRF token; rejects only on network failure, like fetch itself.
  function api(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 204) { return { status: 204, ok: true, data: null }; }
      return response.json().catch(function () { return null; }).then(function (data) {
        return { status: response.status, ok: response.ok, data: data };
      });
    });
  }

  function sessionEnded(res) {
    if (res.status !== 401 && res.status !== 403) { return false; }
    var detail = detailOf(res, "");
    // A 403 can also be a role problem; only credentials/CSRF trouble means "log in again".
    return res.status === 401 || /credentials|CSRF|authenticat/i.test(detail);
  }

  function showSessionEnded() {
    announce("Your session has ended. Your draft is kept on this device; log in again (the page will reload) to continue.", "error");
  }

  /* ---------- drafts in localStorage ---------- */

  function draftKey(id) { return DRAFT_PREFIX + config.projectId + ":" + id; }

  function saveDraft() {
    var a = state.assignment;
    if (!a) { return; }
    var d = state.draft;
    var record = {
      choice: d.choice, strength: d.strength, criteria: d.criteria, rationale: d.rationale,
      elapsedMs: clock.elapsed(), savedAt: Date.now(),
    };
    try {
      localStorage.setItem(draftKey(a.assignment_id), JSON.stringify(record));
      els.draftNote.textContent = (d.choice || d.rationale) ? "Draft saved on this device" : "";
    } catch (err) {
      // Private mode or a full quota: annotating still works, only the safety net is gone.
      els.draftNote.textContent = "Drafts cannot be saved in this browser";
    }
  }

  function loadDraft(id) {
    try {
      var raw = localStorage.getItem(draftKey(id));
      return raw ? JSON.parse(raw) : null;
    } catch (err) { return null; }
  }

  function clearDraft(id) {
    try { localStorage.removeItem(draftKey(id)); } catch (err) { /* nothing to clear */ }
    els.draftNote.textContent = "";
  }

  // localStorage outlives the page: check what comes back from it instead of trusting it.
  function cleanDraft(raw, criteria) {
    var d = emptyDraft();
    if (!raw || typeof raw !== "object") { return d; }
    if (CHOICE_LABELS.hasOwnProperty(raw.choice)) { d.choice = raw.choice; }
    if (sidedChoice(d.choice) && STRENGTH_LABELS.hasOwnProperty(raw.strength)) { d.strength = raw.strength; }
    if (raw.criteria && typeof raw.criteria === "object") {
      criteria.forEach(function (name) {
        if (VOTE_LABELS.hasOwnProperty(raw.criteria[name])) { d.criteria[name] = raw.criteria[name]; }
      });
    }
    if (typeof raw.rationale === "string") { d.rationale = raw.rationale.slice(0, 10000); }
    return d;
  }

  function draftIsEmpty(d) {
    return !d.choice && !d.strength && !d.rationale && Object.keys(d.criteria).length === 0;
  }

  function pruneOldDrafts() {
    try {
      var now = Date.now();
      for (var i = localStorage.length - 1; i >= 0; i--) {
        var key = localStorage.key(i);
        if (!key || key.indexOf(DRAFT_PREFIX) !== 0) { continue; }
        var record = null;
        try { record = JSON.parse(localStorage.getItem(key)); } catch (err) { record = null; }
        if (!record || !record.savedAt || now - record.savedAt > DRAFT_MAX_AGE_MS) { localStorage.removeItem(key); }
      }
    } catch (err) { /* storage unavailable */ }
  }

  /* ---------- views ---------- */

  function showView(mode) {
    state.mode = mode;
    els.root.setAttribute("data-mode", mode);
    els.loading.hidden = mode !== "loading";
    els.error.hidden = mode !== "error";
    els.empty.hidden = mode !== "empty";
    els.paused.hidden = mode !== "paused";
    els.work.hidden = mode !== "work";
    els.controls.hidden = mode !== "work";
  }

  // Sanitised HTML only (see the header comment). Links open in a new tab so a click never
  // navigates away from the pair.
  function setSafeHtml(el, html) {
    el.innerHTML = typeof html === "string" ? html : "";
    Array.prototype.forEach.call(el.querySelectorAll("a[href]"), function (a) {
      a.setAttribute("target", "_blank");
      a.setAttribute("rel", "noopener noreferrer nofollow");
    });
  }

  function renderConversation(prompt) {
    els.systemText.textContent = prompt.system_prompt || "";
    els.system.hidden = !prompt.system_prompt;
    els.history.replaceChildren();
    (prompt.history || []).forEach(function (turn) {
      var li = document.createElement("li");
      var role = String(turn.role || "");
      li.className = "an-turn an-turn-" + (ROLE_LABELS.hasOwnProperty(role) ? role : "other");
      var label = document.createElement("div");
      label.className = "an-role";
      label.textContent = ROLE_LABELS[role] || role;
      var body = document.createElement("div");
      body.className = "md";
      setSafeHtml(body, turn.html);
      li.appendChild(label);
      li.appendChild(body);
      els.history.appendChild(li);
    });
    els.history.hidden = !(prompt.history && prompt.history.length);
    setSafeHtml(els.prompt, prompt.html);
  }

  // Length is a known bias in preference data; showing it plainly helps annotators notice it.
  function lengthNote(el) {
    var words = (el.textContent || "").trim().split(/\s+/).filter(Boolean).length;
    return words === 1 ? "1 word" : words + " words";
  }

  function buildCriteria(names) {
    els.criteria.replaceChildren();
    els.criteriaGroup.hidden = names.length === 0;
    names.forEach(function (name, index) {
      var row = document.createElement("div");
      row.className = "an-crit";
      row.setAttribute("role", "group");
      row.setAttribute("aria-label", "Criterion " + name);
      row.dataset.index = String(index);
      var label = document.createElement("span");
      label.className = "an-crit-name";
      label.textContent = name;
      row.appendChild(label);
      ["left", "right", "tie"].forEach(function (vote) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "an-opt an-opt-small";
        b.dataset.criterion = name;
        b.dataset.vote = vote;
        b.setAttribute("aria-pressed", "false");
        b.textContent = VOTE_LABELS[vote];
        row.appendChild(b);
      });
      els.criteria.appendChild(row);
    });
  }

  // Reflect state.draft in the controls (the draft is the single source of truth).
  function renderSelection() {
    var d = state.draft;
    Array.prototype.forEach.call(els.controls.querySelectorAll("[data-choice]"), function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.choice === d.choice));
    });
    var strengthOn = sidedChoice(d.choice);
    Array.prototype.forEach.call(els.controls.querySelectorAll("[data-strength]"), function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.strength === d.strength));
      b.setAttribute("aria-disabled", String(!strengthOn));
    });
    Array.prototype.forEach.call(els.criteria.querySelectorAll(".an-crit"), function (row) {
      row.classList.toggle("is-active", Number(row.dataset.index) === state.activeCriterion);
    });
    Array.prototype.forEach.call(els.criteria.querySelectorAll("[data-criterion]"), function (b) {
      b.setAttribute("aria-pressed", String(d.criteria[b.dataset.criterion] === b.dataset.vote));
    });
    if (els.rationale.value !== d.rationale) { els.rationale.value = d.rationale; }
    // Mark the picked side so the annotator sees their answer next to the text they chose.
    $("an-pane-left").classList.toggle("is-picked", d.choice === "left");
    $("an-pane-right").classList.toggle("is-picked", d.choice === "right");
    els.submit.setAttribute("aria-disabled", String(!d.choice || state.busy));
  }

  function setBusy(busy) {
    state.busy = busy;
    els.controls.setAttribute("aria-busy", String(busy));
    els.skip.setAttribute("aria-disabled", String(busy));
    renderSelection();
  }

  /* ---------- editing the draft ---------- */

  function setChoice(choice) {
    var d = state.draft;
    d.choice = choice;
    if (!sidedChoice(choice)) { d.strength = ""; }
    renderSelection();
    saveDraft();
    announce(CHOICE_LABELS[choice] + " selected. " + (sidedChoice(choice) ? "Q/W/E adds a strength; " : "") + "Enter submits.");
  }

  function setStrength(strength) {
    var d = state.draft;
    if (!sidedChoice(d.choice)) {
      announce("Strength applies once one side is better: press 1 (left) or 2 (right) first.", "warn");
      return;
    }
    d.strength = d.strength === strength ? "" : strength;
    renderSelection();
    saveDraft();
    announce(d.strength ? CHOICE_LABELS[d.choice] + ", " + STRENGTH_LABELS[d.strength] + "." : "Strength cleared.");
  }

  function setCriterion(name, vote, fromKeyboard) {
    var d = state.draft;
    var names = state.assignment ? state.assignment.criteria : [];
    if (!fromKeyboard && d.criteria[name] === vote) {
      delete d.criteria[name];  // a second click on the pressed button clears the vote
    } else {
      d.criteria[name] = vote;
    }
    var index = names.indexOf(name);
    // After a keyboard vote the highlight moves on, so Z/X/C can be pressed once per row.
    state.activeCriterion = fromKeyboard ? (index + 1) % names.length : index;
    renderSelection();
    saveDraft();
    announce(d.criteria[name] ? name + ": " + VOTE_LABELS[vote] + "." : name + ": vote cleared.");
  }

  /* ---------- the queue ---------- */

  function loadNext(notice) {
    stopRenewals();
    state.assignment = null;
    els.root.removeAttribute("data-assignment");
    showView("loading");
    return api("POST", config.urls.next).then(function (res) {
      if (res.status === 204) {
        showView("empty");
        announce((notice ? notice + " " : "") + "Nothing left to annotate — thank you.");
        return;
      }
      if (res.ok && res.data) {
        display(res.data, notice);
        return;
      }
      if (res.status === 403 && res.data && res.data.error === "paused") {
        // Paused (e.g. low gold accuracy): no new work until an admin lifts it; say why.
        showView("paused");
        els.pausedText.textContent = res.data.detail || "";
        announce(res.data.detail || "You are paused in this project.", "error");
        return;
      }
      if (sessionEnded(res)) { showSessionEnded(); }
      showError(detailOf(res, "The server answered " + res.status + "."));
    }, function () {
      showError("The server could not be reached. Check your connection and try again.");
    });
  }

  function showError(message) {
    showView("error");
    els.errorText.textContent = message;
    announce(message + " Press Enter or the button to try again.", "error");
  }

  // The safety screen's "blur with a warning" policy (feedback_site.safety): a flagged response
  // stays blurred behind a warning until the annotator clicks the warning or the text.
  function applySafetyFlag(side, body, data) {
    var pane = $("an-pane-" + side);
    var old = pane.querySelector(".an-safety-warning");
    if (old) old.parentNode.removeChild(old);
    body.classList.remove("an-blurred");
    var flag = data && data.safety_flag;
    if (!flag) return;
    var warning = document.createElement("button");
    warning.type = "button";
    warning.className = "an-safety-warning";
    warning.textContent = (flag.reason || "This response was flagged by the safety screen.") + " Click to show it.";
    body.classList.add("an-blurred");
    function reveal() {
      body.classList.remove("an-blurred");
      if (warning.parentNode) warning.parentNode.removeChild(warning);
    }
    warning.addEventListener("click", reveal);
    body.addEventListener("click", reveal, { once: true });
    pane.insertBefore(warning, body);
  }

  function display(payload, notice) {
    state.assignment = payload;
    // Exposed for support and tests: which assignment the page is showing.
    els.root.setAttribute("data-assignment", String(payload.assignment_id));
    renderConversation(payload.prompt || {});
    setSafeHtml(els.left, payload.left && payload.left.html);
    setSafeHtml(els.right, payload.right && payload.right.html);
    applySafetyFlag("left", els.left, payload.left);
    applySafetyFlag("right", els.right, payload.right);
    els.leftMeta.textContent = lengthNote(els.left);
    els.rightMeta.textContent = lengthNote(els.right);
    var criteria = Array.isArray(payload.criteria) ? payload.criteria : [];
    payload.criteria = criteria;
    buildCriteria(criteria);
    state.activeCriterion = 0;
    var saved = loadDraft(payload.assignment_id);
    state.draft = cleanDraft(saved, criteria);
    clock.reset(saved && typeof saved.elapsedMs === "number" ? saved.elapsedMs : 0);
    els.rationale.value = state.draft.rationale;
    els.draftNote.textContent = draftIsEmpty(state.draft) ? "" : "Draft restored from this device";
    showView("work");
    setBusy(false);
    els.left.scrollTop = 0;
    els.right.scrollTop = 0;
    // Keep keyboard focus on the page (not on a control of the previous pair) and bring the new
    // conversation into view if the annotator had scrolled down.
    els.convoTitle.focus({ preventScroll: true });
    if (els.work.getBoundingClientRect().top < 0) { els.work.scrollIntoView({ block: "start" }); }
    var restored = !draftIsEmpty(state.draft);
    announce((notice ? notice + " " : "") + (restored ? "Your unsent draft for this pair was restored." : "New pair loaded."),
      notice && /expired|not stored|already/i.test(notice) ? "warn" : "");
    startRenewals(payload.lease_seconds);
  }

  function submit() {
    if (state.mode !== "work" || state.busy || !state.assignment) { return; }
    var a = state.assignment;
    var d = state.draft;
    if (!d.choice) {
      announce("Pick an answer first: 1 left, 2 right, 3 tie or 4 both bad.", "warn");
      return;
    }
    // The API accepts up to 24 h; a tab left open over a weekend must not make the submit fail.
    var body = { choice: d.choice, time_spent_ms: Math.min(clock.elapsed(), 86400000) };
    if (d.strength && sidedChoice(d.choice)) { body.strength = d.strength; }
    if (Object.keys(d.criteria).length) { body.criteria = d.criteria; }
    if (d.rationale.trim()) { body.rationale = d.rationale; }
    saveDraft();  // a crash mid-request still leaves the answer on the device
    setBusy(true);
    announce("Saving…");
    api("POST", assignmentUrl("judgment", a.assignment_id), body).then(function (res) {
      setBusy(false);
      if (state.assignment !== a) { return; }
      if (res.status === 201 || res.status === 200) {
        clearDraft(a.assignment_id);
        refreshProgress();
        loadNext("Saved.");
      } else if (res.status === 409 || res.status === 404) {
        // The lease expired and the pair is full (or it is gone): the server says why.
        clearDraft(a.assignment_id);
        loadNext(detailOf(res, "This pair can no longer be judged."));
      } else if (sessionEnded(res)) {
        showSessionEnded();
      } else if (res.status >= 500) {
        announce("The server had a problem (" + res.status + "); your answers are kept. Press Enter to try again.", "error");
      } else {
        announce(detailOf(res, "The judgment was refused (" + res.status + ")."), "error");
      }
    }, function () {
      setBusy(false);
      announce("Network error: your judgment was not confirmed. Your answers are kept — press Enter to try again; a repeat is never stored twice.", "error");
    });
  }

  function skip() {
    if (state.mode !== "work" || state.busy || !state.assignment) { return; }
    var a = state.assignment;
    setBusy(true);
    announce("Skipping…");
    api("POST", assignmentUrl("skip", a.assignment_id)).then(function (res) {
      setBusy(false);
      if (state.assignment !== a) { return; }
      if (res.ok) {
        clearDraft(a.assignment_id);
        refreshProgress();
        loadNext("Skipped; that pair will not come back.");
      } else if (res.status === 409 || res.status === 404) {
        clearDraft(a.assignment_id);
        loadNext(detailOf(res, "This pair is no longer yours."));
      } else if (sessionEnded(res)) {
        showSessionEnded();
      } else {
        announce(detailOf(res, "The skip was refused (" + res.status + ")."), "error");
      }
    }, function () {
      setBusy(false);
      announce("Network error: the pair was not skipped. Press S to try again.", "error");
    });
  }

  function refreshProgress() {
    return api("GET", config.urls.progress).then(function (res) {
      if (!res.ok || !res.data) { return; }
      els.judged.textContent = String(res.data.judged);
      els.skipped.textContent = String(res.data.skipped);
      els.remaining.textContent = String(res.data.remaining_in_project);
      // "Nothing left" with pairs still open: say why, so the two numbers do not look contradictory.
      var others = document.getElementById("an-empty-others");
      var open = Number(res.data.remaining_in_project) || 0;
      if (others) {
        others.hidden = open === 0;
        others.textContent = open === 1
          ? "1 pair is still open in this project: it waits for other annotators (you judged or skipped it, or someone else holds it now)."
          : open + " pairs are still open in this project: they wait for other annotators (you judged or skipped them, or someone else holds them now).";
      }
    }, function () { /* progress is informative only; the next refresh catches up */ });
  }

  /* ---------- lease renewal ---------- */

  function startRenewals(leaseSeconds) {
    stopRenewals();
    state.renewEveryMs = Math.max(5, Number(leaseSeconds) || 600) * 1000 / 3;
    state.lastRenewAt = Date.now();
    state.renewTimer = window.setInterval(function () {
      if (document.visibilityState === "visible") { renew(); }
    }, state.renewEveryMs);
  }

  function stopRenewals() {
    if (state.renewTimer !== null) { window.clearInterval(state.renewTimer); state.renewTimer = null; }
  }

  function renew() {
    var a = state.assignment;
    if (!a || state.mode !== "work" || state.busy) { return; }
    state.lastRenewAt = Date.now();
    api("POST", assignmentUrl("renew", a.assignment_id)).then(function (res) {
      if (state.assignment !== a || state.busy) { return; }
      if (res.status === 409 || res.status === 404) {
        clearDraft(a.assignment_id);
        loadNext(detailOf(res, "Your lease on this pair ended."));
      } else if (sessionEnded(res)) {
        showSessionEnded();
      }
    }, function () { /* offline for a moment: the next tick tries again */ });
  }

  /* ---------- guideline and help ---------- */

  function toggleHelp(force) {
    var show = typeof force === "boolean" ? force : els.help.hidden;
    els.help.hidden = !show;
    els.helpToggle.setAttribute("aria-expanded", String(show));
  }

  function toggleGuideline() {
    if (!els.guideline) { announce("This project has no guidelines yet.", "warn"); return; }
    els.guideline.open = !els.guideline.open;
  }

  function initGuideline() {
    if (!els.guideline) { return; }
    var version = els.guideline.dataset.version;
    var seen = null;
    try { seen = localStorage.getItem(GUIDELINE_SEEN_KEY); } catch (err) { seen = null; }
    // Open a version the annotator has not seen yet; afterwards it stays folded away.
    if (seen !== version) {
      els.guideline.open = true;
      try { localStorage.setItem(GUIDELINE_SEEN_KEY, version); } catch (err) { /* ignore */ }
    }
  }

  /* ---------- keyboard ---------- */

  function isTextEntry(el) {
    if (!el || el === document.body) { return false; }
    if (el.isContentEditable) { return true; }
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") { return true; }
    if (tag === "INPUT") {
      return !/^(button|submit|reset|checkbox|radio|range|color|file|image)$/i.test(el.type);
    }
    return false;
  }

  function onKeydown(event) {
    if (event.defaultPrevented || event.isComposing) { return; }
    var target = event.target;

    if (isTextEntry(target)) {
      if (event.key === "Escape") {
        event.preventDefault();
        target.blur();
        els.convoTitle.focus({ preventScroll: true });
        announce("Left the text box; shortcuts are active again.");
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target === els.rationale) {
        event.preventDefault();
        submit();
      }
      return;  // typing: no shortcut fires
    }
    // Browser and OS shortcuts (Ctrl+R, Cmd+W, Alt+←) keep working.
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }

    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;

    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (key === "Escape" && !els.help.hidden) { event.preventDefault(); toggleHelp(false); return; }
    if (key === "g") { event.preventDefault(); toggleGuideline(); return; }

    if (state.mode === "error" && key === "Enter") { event.preventDefault(); loadNext(); return; }
    if (state.mode !== "work") { return; }

    if (key === "Enter") {
      // Enter on a link, the guideline toggle or a non-answer button keeps its usual meaning.
      if (target.closest && target.closest("a, summary, .an-skip, .an-help-toggle")) { return; }
      event.preventDefault();
      if (!event.repeat) { submit(); }
      return;
    }
    if (event.repeat) { return; }
    if (CHOICE_KEYS.hasOwnProperty(key)) { event.preventDefault(); setChoice(CHOICE_KEYS[key]); return; }
    if (STRENGTH_KEYS.hasOwnProperty(key)) { event.preventDefault(); setStrength(STRENGTH_KEYS[key]); return; }
    if (CRITERION_KEYS.hasOwnProperty(key)) {
      var names = state.assignment.criteria;
      if (!names.length) { return; }
      event.preventDefault();
      setCriterion(names[state.activeCriterion % names.length], CRITERION_KEYS[key], true);
      return;
    }
    if (key === "r") {
      event.preventDefault();  // otherwise the "r" would be typed into the box
      els.rationale.focus();
      return;
    }
    if (key === "s") { event.preventDefault(); skip(); }
  }

  /* ---------- wiring ---------- */

  els.root.addEventListener("click", function (event) {
    var b = event.target.closest("button");
    if (!b || state.mode !== "work") { return; }
    if (b.dataset.choice) { setChoice(b.dataset.choice); }
    else if (b.dataset.strength) { setStrength(b.dataset.strength); }
    else if (b.dataset.criterion) { setCriterion(b.dataset.criterion, b.dataset.vote, false); }
  });
  els.submit.addEventListener("click", submit);
  els.skip.addEventListener("click", skip);
  els.retry.addEventListener("click", function () { loadNext(); });
  els.helpToggle.addEventListener("click", function () { toggleHelp(); });
  $("an-help-close").addEventListener("click", function () { toggleHelp(false); els.helpToggle.focus(); });
  els.rationale.addEventListener("input", function () {
    state.draft.rationale = els.rationale.value;
    saveDraft();
  });
  document.addEventListener("keydown", onKeydown);

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      clock.resume();
      // Timers are throttled in hidden tabs; renew at once if a beat was missed.
      if (state.mode === "work" && Date.now() - state.lastRenewAt >= state.renewEveryMs) { renew(); }
    } else {
      clock.pause();
      saveDraft();
    }
  });
  window.addEventListener("pagehide", saveDraft);

  pruneOldDrafts();
  initGuideline();
  refreshProgress();
  loadNext();
})();

// The sticky choice bar grows when its controls wrap; the page's scroll padding (annotate.css)
// follows its real height so that nothing scrolled into view ends up behind it.
(function () {
  "use strict";
  var bar = document.getElementById("an-bar");
  if (!bar || typeof ResizeObserver === "undefined") return;
  new ResizeObserver(function () {
    document.documentElement.style.setProperty("--an-bar-height", Math.ceil(bar.getBoundingClientRect().height) + "px");
  }).observe(bar);
})();
