// RehabFlow: small behaviours; everything else is server-rendered (htmx for partial updates).
document.addEventListener("DOMContentLoaded", () => {
  // A form submits once: later clicks while the request runs do nothing (the server also refuses a
  // second completion of the same task, see app.inbox.views).
  document.body.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.submitted === "yes") {
      event.preventDefault();
      return;
    }
    if (form.matches("[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (form.matches("[data-once]")) {
      form.dataset.submitted = "yes";
      setTimeout(() => { form.dataset.submitted = ""; }, 15000);
    }
  });
  // "Select all" checkboxes for bulk actions.
  document.body.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches("[data-select-all]")) {
      document.querySelectorAll(box.dataset.selectAll).forEach((b) => { b.checked = box.checked; });
    }
  });
});
