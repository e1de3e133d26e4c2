/* Page behaviour, kept out of the HTML: the Content-Security-Policy forbids inline script and
   htmx's eval (issue 12). Elements opt in with data attributes; listeners sit on the document,
   so content htmx swaps in later works too. */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("[data-action=switch-language]")) {
      // Come back to this very page (path and query) in the new language.
      el.form.next.value = location.pathname + location.search;
      el.form.submit();
    }
  });

  document.addEventListener("click", function (event) {
    var el = event.target.closest ? event.target.closest("[data-action]") : null;
    if (!el) return;
    switch (el.dataset.action) {
      case "select-all":
        document.querySelectorAll(el.dataset.targets).forEach(function (box) {
          box.checked = el.checked;
        });
        break;
      case "remove-line": {
        var rows = el.closest("tbody");
        el.closest("tr").remove();
        htmx.trigger(rows, "change");  // the total recalculates
        break;
      }
      case "search-picker":
        htmx.trigger("#qbo-picker-form", "submit");
        break;
      case "open-sync-dialog": {
        var menu = el.closest("details");
        if (menu) menu.open = false;
        document.getElementById("qbo-sync-dialog").showModal();
        htmx.trigger("#qbo-picker-form", "submit");
        break;
      }
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
    if (form.matches("[data-htmx-only]")) {
      event.preventDefault();  // htmx sends it; the browser must not navigate
    }
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var el = event.detail.elt;
    if (el && el.matches && el.matches("[data-unique-index]")) {
      // A new invoice line needs a form index no other row has.
      event.detail.parameters.index = Date.now();
    }
  });
})();
