// Grant forms (the grant page and each grant row on a client's page): show
// only the scopes of the row's chosen API.
(function () {
  "use strict";
  function rowOf(select) {
    return select.closest("tr") || select.closest("form");
  }
  function sync(select) {
    var row = rowOf(select);
    if (!row) return;
    var api = select.value;
    row.querySelectorAll("input[type=checkbox][name$=scopes]").forEach(function (box) {
      var item = box.closest("div") || box.parentNode;
      var match = box.dataset.api === api;
      item.style.display = match ? "" : "none";
      if (!match) box.checked = false;
    });
  }
  function apiSelects(root) {
    return root.querySelectorAll("select[name=api], select[name$=-api]");
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[name=api], select[name$=-api]")) sync(event.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    apiSelects(document).forEach(sync);
    // Rows added with "Add another grant".
    document.addEventListener("formset:added", function (event) {
      apiSelects(event.target).forEach(sync);
    });
  });
})();
