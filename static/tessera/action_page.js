// The Action page's own part (the editor, Save, Run and secrets are the hook
// page's script, hook_editor.js): after a save, show what the build made of
// the draft (built, or failed with its error) and whether it is deployed.
(function () {
  "use strict";

  function showBuild(detail) {
    var status = document.querySelector("#action-status .tessera-status");
    if (status) {
      status.textContent = detail.status_display;
      status.classList.toggle("tessera-on", detail.status === "built");
      status.classList.toggle("tessera-failed", detail.status === "failed");
    }
    var errors = document.getElementById("action-build-errors");
    errors.innerHTML = "";
    (detail.errors || []).forEach(function (message) {
      var line = document.createElement("div");
      line.textContent = "Build failed: " + message;
      errors.appendChild(line);
    });
    errors.hidden = !(detail.errors || []).length;
    var saveStatus = document.getElementById("hook-save-status");
    if (detail.status === "failed") saveStatus.className = "tessera-save-status error";
    var sync = document.getElementById("action-sync");
    sync.textContent = detail.all_changes_deployed ? "all changes deployed" : "draft not deployed";
    sync.classList.toggle("tessera-on", !!detail.all_changes_deployed);
    // The runtime and dependencies form names the draft revision it edits.
    document.querySelectorAll("#settings-form input[name=base_version]").forEach(function (input) {
      input.value = detail.version;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.getElementById("hook-page");
    if (page) page.addEventListener("tessera:saved", function (event) { showBuild(event.detail); });
  });
})();
