// The hook page: Ctrl/Cmd+S saves the script without leaving the page (one
// save at a time; a failing script on the enabled hook needs a confirmation),
// Run executes the editor's (unsaved) text, secrets are added and deleted
// without a reload, and the run log refreshes itself.
(function () {
  "use strict";
  var POLL_MS = 3000;

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function aceFor(textareaId) {
    var textarea = document.getElementById(textareaId);
    if (!textarea) return null;
    var widget = textarea.parentNode.querySelector(".django-ace-widget");
    return widget && widget.editor ? widget.editor : null;
  }

  function post(url, fields) {
    // URL-encoded, not multipart: multipart turns the script's "\n" into "\r\n".
    var body = new URLSearchParams(fields instanceof FormData ? undefined : fields);
    if (fields instanceof FormData) fields.forEach(function (v, k) { body.append(k, v); });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrfToken(), "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (data) { return {status: response.status, data: data}; },
        function () { return {status: response.status, data: {error: "Unexpected response (" + response.status + ")."}}; });
    });
  }

  function pretty(value) {
    return value === undefined ? "undefined" : JSON.stringify(value, null, 2);
  }

  // The add page: picking Hook or Action swaps the starter code, as long as
  // the editor still holds the other starter (typed work is never replaced).
  function initAddPage() {
    var kind = document.getElementById("id_kind");
    var editor = aceFor("id_script");
    if (!kind || !editor || document.getElementById("hook-page")) return;
    var starters = JSON.parse(kind.getAttribute("data-starters") || "{}");
    var current = kind.value;
    kind.addEventListener("change", function () {
      if (editor.getValue() === starters[current]) {
        editor.setValue(starters[kind.value], -1);
      }
      current = kind.value;
    });
  }

  function init() {
    initAddPage();
    var page = document.getElementById("hook-page");
    // The hook page edits its script; the Action page (data-editor) its draft's code.
    var editor = page && aceFor(page.dataset.editor || "id_script");
    if (!page || !editor) return;
    var status = document.getElementById("hook-save-status");
    var baseVersion = document.getElementById("id_base_version");
    var dirtyMarker = document.getElementById("hook-dirty");
    var savedText = editor.getValue();
    var saving = false, saveQueued = false;
    window.tesseraHookEditor = editor;

    function setStatus(text, kind) {
      status.textContent = text;
      status.className = "tessera-save-status " + (kind || "");
    }

    // --- unsaved work -----------------------------------------------------
    function isDirty() { return editor.getValue() !== savedText; }
    function showDirty() {
      dirtyMarker.hidden = !isDirty();
      document.title = (isDirty() ? "● " : "") + document.title.replace(/^● /, "");
    }
    editor.on("change", showDirty);
    window.addEventListener("beforeunload", function (event) {
      if (!isDirty()) return undefined;
      event.preventDefault();
      event.returnValue = "";
      return "";
    });
    // Forms on this page that leave it on purpose (restore, enable) still warn
    // when the editor holds unsaved text: the browser's dialog is the warning.

    // --- save -------------------------------------------------------------
    // Saving the enabled hook may need a confirmation; an Action's draft never does.
    var confirmBox = document.getElementById("save-confirm");
    function hideConfirm() { if (confirmBox) confirmBox.hidden = true; }
    if (confirmBox) {
      document.getElementById("save-confirm-cancel").addEventListener("click", function () {
        hideConfirm(); setStatus("Not saved.", "error"); editor.focus();
      });
      document.getElementById("save-confirm-button").addEventListener("click", function () {
        hideConfirm(); save(true);
      });
    }

    function save(confirmFailing) {
      if (saving) { saveQueued = true; setStatus("Saving… (another save queued)"); return; }
      // A habitual Ctrl+S on saved text makes no new version.
      if (!isDirty()) { setStatus("No changes to save.", "ok"); return; }
      saving = true;
      hideConfirm();
      setStatus("Saving…");
      editor.getSession().clearAnnotations();
      var text = editor.getValue();
      var fields = {script: text, base_version: baseVersion.value};
      if (confirmFailing) fields.confirm_failing = "1";
      post(page.dataset.saveUrl, fields)
        .then(function (r) {
          if (r.status === 200) {
            savedText = text;
            showDirty();
            baseVersion.value = r.data.version;
            document.querySelectorAll(".tessera-restore input[name=base_version]").forEach(function (input) {
              input.value = r.data.version;
            });
            document.getElementById("hook-version").textContent = r.data.version;
            setStatus(r.data.message, "ok");
            addVersionRow(r.data.version);
            page.dispatchEvent(new CustomEvent("tessera:saved", {detail: r.data}));
            return;
          }
          // The confirm box says why; the status line does not repeat it.
          setStatus(r.data.confirm ? "Not saved." : r.data.error, "error");
          clearRunResult();
          if (r.data.confirm && confirmBox) {
            saveQueued = false;  // the admin decides first
            document.getElementById("save-confirm-text").textContent = r.data.error;
            // What changes, per client: rendered by the server from its dry run.
            document.getElementById("save-confirm-detail").innerHTML = r.data.dry_run ? r.data.dry_run.html : "";
            confirmBox.hidden = false;
            document.getElementById("save-confirm-button").focus();
          }
          if (r.data.line) {
            editor.getSession().setAnnotations([{
              row: r.data.line - 1, column: (r.data.column || 1) - 1, text: r.data.error, type: "error"
            }]);
            editor.gotoLine(r.data.line, (r.data.column || 1) - 1, true);
          }
        })
        .catch(function (e) { setStatus("Not saved: " + e, "error"); })
        .then(function () {
          saving = false;
          if (saveQueued) {
            saveQueued = false;
            if (isDirty()) save(false); else setStatus(status.textContent, "ok");
          }
        });
    }
    window.tesseraHookSave = save;

    // After a refused save the Run panel's last result (of other text) is
    // put away: the refusal above says what failed, once.
    function clearRunResult() {
      var result = document.getElementById("run-result");
      if (!result) return;
      result.hidden = true;
      var runStatus = document.getElementById("run-status");
      runStatus.textContent = "";
      runStatus.className = "";
    }

    function addVersionRow(number) {
      var body = document.querySelector("#versions tbody");
      if (!body) return;
      var actions = document.getElementById("version-actions-template");
      body.querySelectorAll("td.tessera-current").forEach(function (td) {
        td.classList.remove("tessera-current");
        var previous = td.textContent.replace(" (current)", "").trim();
        td.textContent = previous;
        var cell = td.parentNode.lastElementChild;
        if (actions && cell && !cell.children.length) {
          cell.innerHTML = actions.innerHTML.replace(/\/versions\/0\//g, "/versions/" + previous + "/");
          cell.querySelectorAll("input[name=base_version]").forEach(function (i) { i.value = number; });
        }
      });
      var tr = document.createElement("tr");
      var cells = [number + " (current)", null, "you", ""];
      cells.forEach(function (text, i) {
        var td = document.createElement("td");
        if (i === 1) td.appendChild(window.tessera.timeElement(new Date()));
        else td.textContent = text;
        if (i === 0) td.className = "tessera-current";
        tr.appendChild(td);
      });
      body.insertBefore(tr, body.firstChild);
    }

    editor.commands.addCommand({
      name: "save", bindKey: {win: "Ctrl-S", mac: "Command-S"},
      exec: function () { save(false); }
    });
    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && (event.key === "s" || event.key === "S")) {
        event.preventDefault();
        save(false);
      }
    });
    document.getElementById("save-button").addEventListener("click", function () { save(false); });

    // --- full screen and resizing ----------------------------------------
    var layout = document.getElementById("hook-layout");
    var fullButton = document.getElementById("fullscreen-button");
    var payloadEditor = aceFor("id_payload");
    function resizeEditors() {
      editor.resize();
      if (payloadEditor) payloadEditor.resize();
    }
    function setFullScreen(on) {
      layout.classList.toggle("tessera-fullscreen", on);
      document.body.classList.toggle("tessera-noscroll", on);
      fullButton.setAttribute("aria-pressed", on ? "true" : "false");
      fullButton.textContent = on ? "Exit full screen" : "Full screen";
      window.setTimeout(resizeEditors, 0);
    }
    fullButton.addEventListener("click", function () {
      setFullScreen(!layout.classList.contains("tessera-fullscreen"));
      editor.focus();
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && layout.classList.contains("tessera-fullscreen")) setFullScreen(false);
    });
    if (window.ResizeObserver) {
      document.querySelectorAll(".django-ace-widget").forEach(function (widget) {
        new ResizeObserver(resizeEditors).observe(widget);
      });
    }

    // --- secrets, without reloading the editor ---------------------------
    var secretStatus = document.getElementById("secret-status");
    var secretsBody = document.getElementById("secrets-body");
    function renderSecrets(secrets) {
      secretsBody.innerHTML = "";
      var columns = secretsBody.parentNode.querySelectorAll("thead th").length;
      if (!secrets.length) {
        var empty = document.createElement("tr");
        empty.className = "tessera-empty-row";
        empty.innerHTML = '<td colspan="' + columns + '" class="help">' + (secretsBody.dataset.empty ||
          "No secrets. Scripts read them as <code>context.webtask.secrets.NAME</code>.") + "</td>";
        secretsBody.appendChild(empty);
      }
      secrets.forEach(function (s) {
        var tr = document.createElement("tr");
        tr.dataset.secret = s.name;
        tr.innerHTML = '<td><code></code></td><td><code>_VALUE_NOT_SHOWN_</code></td><td>' +
          '<form method="post" class="tessera-inline-form tessera-secret-delete">' +
          '<button type="submit" class="tessera-button tessera-danger tessera-small">Delete</button></form></td>';
        tr.querySelector("code").textContent = s.name;
        tr.querySelector("form").action = s.delete_url;
        if (s.updated_at) {  // an Action's secrets show when each was last set
          var updated = document.createElement("td");
          updated.appendChild(window.tessera.timeElement(new Date(s.updated_at)));
          tr.insertBefore(updated, tr.lastElementChild);
        }
        secretsBody.appendChild(tr);
      });
    }
    function secretAnswer(r) {
      var ok = r.status === 200;
      secretStatus.textContent = ok ? r.data.message : r.data.error;
      secretStatus.className = "tessera-save-status " + (ok ? "ok" : "error");
      if (r.data.secrets) renderSecrets(r.data.secrets);
      return ok;
    }
    var secretForm = document.getElementById("secret-form");
    secretForm.addEventListener("submit", function (event) {
      event.preventDefault();
      post(secretForm.action, new FormData(secretForm)).then(function (r) {
        if (secretAnswer(r)) secretForm.reset();
      }).catch(function (e) { secretStatus.textContent = String(e); });
    });
    secretsBody.addEventListener("submit", function (event) {
      var form = event.target.closest("form.tessera-secret-delete");
      if (!form) return;
      event.preventDefault();
      post(form.action, {}).then(secretAnswer).catch(function (e) { secretStatus.textContent = String(e); });
    });

    // --- Run ----------------------------------------------------------------
    var runButton = document.getElementById("run-button");
    if (runButton) {
      runButton.addEventListener("click", function () {
        var runStatus = document.getElementById("run-status");
        runStatus.textContent = "Running…";
        runStatus.className = "";
        runButton.disabled = true;
        post(page.dataset.runUrl, {script: editor.getValue(), payload: payloadEditor.getValue()})
          .then(function (r) {
            runButton.disabled = false;
            if (r.status !== 200) {
              runStatus.textContent = r.data.error;
              runStatus.className = r.data.busy ? "tessera-busy" : "error";
              return;
            }
            runStatus.textContent = ""; runStatus.className = "";
            showReport(r.data);
            pollRuns();
          })
          .catch(function (e) { runButton.disabled = false; runStatus.textContent = String(e); });
      });
    }

    function showReport(report) {
      document.getElementById("run-result").hidden = false;
      var outcome = document.getElementById("run-outcome");
      outcome.textContent = report.outcome;
      outcome.className = "tessera-outcome tessera-outcome-" + report.outcome;
      document.getElementById("run-duration").textContent = report.duration_ms + " ms";
      var errorBox = document.getElementById("run-error-box");
      errorBox.hidden = !report.error;
      editor.getSession().clearAnnotations();
      if (report.error) {
        var e = report.error;
        var where = e.line ? " (line " + e.line + (e.column ? ", column " + e.column : "") + ")" : "";
        document.getElementById("run-error").textContent = e.name + ": " + e.message + where;
        if (e.line) {
          editor.getSession().setAnnotations([{row: e.line - 1, column: (e.column || 1) - 1,
            text: e.name + ": " + e.message, type: "error"}]);
        }
      }
      // A Hook passes a value to cb; an Action's result is what its api calls came to.
      var valueTitle = document.getElementById("run-value-title");
      if (report.kind === "action") valueTitle.textContent = "Action result";
      else valueTitle.innerHTML = "Value passed to <code>cb</code>";
      document.getElementById("run-value").textContent = report.ok || report.value !== null ? pretty(report.value) : "—";
      var claims = Object.assign({}, report.claims);
      if (report.scope) claims.scope = report.scope.join(" ");
      document.getElementById("run-claims").textContent = report.ok ? pretty(claims) : "—";
      var dropped = document.getElementById("run-dropped");
      dropped.innerHTML = "";
      (report.dropped || []).forEach(function (d) {
        var li = document.createElement("li");
        var code = document.createElement("code");
        code.textContent = d.name;
        li.appendChild(code);
        li.appendChild(document.createTextNode(": " + d.reason));
        dropped.appendChild(li);
      });
      document.getElementById("run-dropped-box").hidden = !(report.dropped || []).length;
      document.getElementById("run-console").textContent = report.console || "(no output)";
    }

    // --- run log ------------------------------------------------------------
    var runsBody = document.getElementById("runs-body");
    var runsSource = document.getElementById("runs-source");
    function cell(row, text, className) {
      var td = document.createElement("td");
      if (className) td.className = className;
      td.textContent = text;
      row.appendChild(td);
      return td;
    }
    var pollNumber = 0;
    function pollRuns() {
      if (!runsBody || document.hidden) return;
      var url = page.dataset.runsUrl + (runsSource.value ? "?source=" + encodeURIComponent(runsSource.value) : "");
      var mine = ++pollNumber;
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || mine !== pollNumber) return;  // a newer poll (or filter) answers
          runsBody.innerHTML = "";
          if (!data.runs.length) {
            var empty = document.createElement("tr");
            cell(empty, "No runs yet.", "help").colSpan = 6;
            runsBody.appendChild(empty);
          }
          data.runs.forEach(function (run) {
            var tr = document.createElement("tr");
            tr.dataset.source = run.source;
            cell(tr, "").appendChild(window.tessera.timeElement(new Date(run.started_at)));
            var source = cell(tr, "");
            var badge = document.createElement("span");
            badge.className = "tessera-badge tessera-source-" + run.source;
            badge.textContent = run.source_display + (run.version ? " (v" + run.version + ")" : "");
            source.appendChild(badge);
            cell(tr, run.outcome_display, "tessera-outcome tessera-outcome-" + run.outcome);
            cell(tr, run.duration_ms + " ms");
            cell(tr, run.console, "tessera-pre");
            cell(tr, run.error, "tessera-pre");
            runsBody.appendChild(tr);
          });
        })
        .catch(function () { /* the next poll retries */ });
    }
    if (!runsBody) return;  // the Action page has no run log of its own
    runsSource.addEventListener("change", pollRuns);
    pollRuns();
    window.setInterval(pollRuns, POLL_MS);
  }

  // django-ace creates its editors on window load; start after it.
  window.addEventListener("load", function () { window.setTimeout(init, 0); });
})();
