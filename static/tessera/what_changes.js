// The hook page's dry runs: "What changes" compares the editor's text with
// what is live on the tenant's recorded requests and clients; the Run panel's
// "Run on recorded inputs" runs the text on each of them instead of one
// payload. The server renders both (admin/hooks/hook/what_changes.html).
(function () {
  "use strict";

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function dryRun(url, script, mode) {
    var body = new URLSearchParams({script: script, mode: mode});
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrfToken(), "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (data) { return {status: response.status, data: data}; },
        function () { return {status: response.status, data: {error: "Unexpected response (" + response.status + ")."}}; });
    });
  }

  function wire(button, statusElement, result, mode, page) {
    if (!button) return;
    button.addEventListener("click", function () {
      var editor = window.tesseraHookEditor;
      if (!editor) return;
      button.disabled = true;
      statusElement.textContent = "Replaying…";
      statusElement.className = "";
      dryRun(page.dataset.whatChangesUrl, editor.getValue(), mode)
        .then(function (r) {
          button.disabled = false;
          if (r.status !== 200) {
            statusElement.textContent = r.data.error;
            statusElement.className = r.data.busy ? "tessera-busy" : "error";
            return;
          }
          statusElement.textContent = "";
          result.innerHTML = r.data.html;
          result.hidden = false;
        })
        .catch(function (e) { button.disabled = false; statusElement.textContent = String(e); });
    });
  }

  function init() {
    var page = document.getElementById("hook-page");
    if (!page || !page.dataset.whatChangesUrl) return;
    wire(document.getElementById("what-changes-button"), document.getElementById("what-changes-status"),
      document.getElementById("what-changes-result"), "compare", page);
    wire(document.getElementById("replay-button"), document.getElementById("run-status"),
      document.getElementById("replay-result"), "replay", page);
  }

  // After hook_editor.js, which starts once django-ace made its editors.
  window.addEventListener("load", function () { window.setTimeout(init, 0); });
})();
