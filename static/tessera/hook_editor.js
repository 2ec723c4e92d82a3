// The hook page: Ctrl/Cmd+S saves the script without leaving the page, Run
// executes the editor's (unsaved) text, and the run log refreshes itself.
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
    var body = new FormData();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
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

  function init() {
    var page = document.getElementById("hook-page");
    var editor = aceFor("id_script");
    if (!page || !editor) return;
    var status = document.getElementById("hook-save-status");
    var baseVersion = document.getElementById("id_base_version");
    window.tesseraHookEditor = editor;

    function setStatus(text, kind) {
      status.textContent = text;
      status.className = "tessera-save-status " + (kind || "");
    }

    function save() {
      setStatus("Saving…");
      editor.getSession().clearAnnotations();
      post(page.dataset.saveUrl, {script: editor.getValue(), base_version: baseVersion.value})
        .then(function (r) {
          if (r.status === 200) {
            baseVersion.value = r.data.version;
            document.getElementById("hook-version").textContent = r.data.version;
            setStatus(r.data.message, "ok");
            addVersionRow(r.data.version);
            return;
          }
          setStatus(r.data.error, "error");
          if (r.data.line) {
            editor.getSession().setAnnotations([{
              row: r.data.line - 1, column: (r.data.column || 1) - 1, text: r.data.error, type: "error"
            }]);
            editor.gotoLine(r.data.line, (r.data.column || 1) - 1, true);
          }
        })
        .catch(function (e) { setStatus("Not saved: " + e, "error"); });
    }

    function addVersionRow(number) {
      var body = document.querySelector("#versions tbody");
      if (!body) return;
      body.querySelectorAll("td.tessera-current").forEach(function (td) {
        td.classList.remove("tessera-current");
        td.textContent = td.textContent.replace(" (current)", "");
      });
      var tr = document.createElement("tr");
      var cells = [number + " (current)", new Date().toLocaleString(), "you", ""];
      cells.forEach(function (text, i) {
        var td = document.createElement("td");
        td.textContent = text;
        if (i === 0) td.className = "tessera-current";
        tr.appendChild(td);
      });
      body.insertBefore(tr, body.firstChild);
    }

    editor.commands.addCommand({
      name: "save", bindKey: {win: "Ctrl-S", mac: "Command-S"},
      exec: function () { save(); }
    });
    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && (event.key === "s" || event.key === "S")) {
        event.preventDefault();
        save();
      }
    });

    var runButton = document.getElementById("run-button");
    if (runButton) {
      var payloadEditor = aceFor("id_payload");
      runButton.addEventListener("click", function () {
        var runStatus = document.getElementById("run-status");
        runStatus.textContent = "Running…";
        runButton.disabled = true;
        post(page.dataset.runUrl, {script: editor.getValue(), payload: payloadEditor.getValue()})
          .then(function (r) {
            runButton.disabled = false;
            if (r.status !== 200) { runStatus.textContent = r.data.error; runStatus.className = "error"; return; }
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

    var runsBody = document.getElementById("runs-body");
    function cell(row, text, className) {
      var td = document.createElement("td");
      if (className) td.className = className;
      td.textContent = text;
      row.appendChild(td);
      return td;
    }
    function pollRuns() {
      if (!runsBody || document.hidden) return;
      fetch(page.dataset.runsUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) return;
          runsBody.innerHTML = "";
          if (!data.runs.length) {
            var empty = document.createElement("tr");
            cell(empty, "No runs yet.", "help").colSpan = 6;
            runsBody.appendChild(empty);
          }
          data.runs.forEach(function (run) {
            var tr = document.createElement("tr");
            cell(tr, new Date(run.started_at).toLocaleString());
            cell(tr, run.source + (run.version ? " (v" + run.version + ")" : ""));
            cell(tr, run.outcome_display, "tessera-outcome tessera-outcome-" + run.outcome);
            cell(tr, run.duration_ms + " ms");
            cell(tr, run.console, "tessera-pre");
            cell(tr, run.error, "tessera-pre");
            runsBody.appendChild(tr);
          });
        })
        .catch(function () { /* the next poll retries */ });
    }
    pollRuns();
    window.setInterval(pollRuns, POLL_MS);
  }

  // django-ace creates its editors on window load; start after it.
  window.addEventListener("load", function () { window.setTimeout(init, 0); });
})();
