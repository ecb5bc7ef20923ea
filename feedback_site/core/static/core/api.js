// The site's REST API (/api/v1) as the logged-in user. `post` sends a JSON body with Django's CSRF
// token; `get` reads. Both resolve with the parsed body, or null for 204 (nothing left), and
// reject with an Error whose message is the API's `detail` and whose `code` is its `error` (e.g.
// "paused").
(function () {
  "use strict";
  function csrf() {
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function answer(response) {
    if (response.status === 204) return null;
    return response.json().then(function (data) {
      if (!response.ok) {
        var error = new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data));
        error.code = data.error;
        throw error;
      }
      return data;
    });
  }
  function post(url, body) {
    return fetch("/api/v1" + url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then(answer);
  }
  function get(url) {
    return fetch("/api/v1" + url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(answer);
  }
  window.feedbackApi = { post: post, get: get };
})();
