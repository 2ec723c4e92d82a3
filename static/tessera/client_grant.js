// Client grant form: show only the scopes of the chosen API.
(function () {
  "use strict";
  function sync() {
    var api = document.getElementById("id_api");
    if (!api) return;
    document.querySelectorAll("input[name=scopes]").forEach(function (box) {
      var item = box.closest("div") || box.parentNode;
      var match = box.dataset.api === api.value;
      item.style.display = match ? "" : "none";
      if (!match) box.checked = false;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var api = document.getElementById("id_api");
    if (!api) return;
    api.addEventListener("change", sync);
    if (window.django && django.jQuery) django.jQuery(api).on("change", sync);
    sync();
  });
})();
