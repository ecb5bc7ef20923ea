// POST a JSON body to the site's REST API (/api/v1) as the logged-in user, with Django's CSRF
// token. Resolves with the parsed body, or null for 204 (nothing left); rejects with an Error
// whose message is the API's `detail` and whose `code` is its `error` (e.g. "paused").
(function () {
  "use strict";
  function csrf() {
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function post(url, body) {
    return fetch("/api/v1" + url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().then(function (data) {
        if (!response.ok) {
          var error = new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data));
          error.code = data.error;
          throw error;
        }
        return data;
      });
    });
  }
  window.feedbackApi = { post: post };
})();
