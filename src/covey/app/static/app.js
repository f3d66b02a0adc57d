// Covey app pages: live updates over server-sent events (the parts marked data-live are
// fetched again when the device's client says something changed), the handle check as
// you type, sending without a page reload, and attachments. Pages work without it.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";

  function refresh() {
    var live = document.querySelectorAll("[data-live]");
    if (!live.length) { return; }
    fetch(window.location.href, {credentials: "same-origin"}).then(function (answer) {
      return answer.ok ? answer.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var list = document.querySelector(".messages");
      var atBottom = list && (window.innerHeight + window.scrollY >= document.body.scrollHeight - 80);
      live.forEach(function (part) {
        var next = fresh.getElementById(part.id);
        if (next && next.innerHTML !== part.innerHTML) { part.innerHTML = next.innerHTML; }
      });
      if (atBottom) { window.scrollTo(0, document.body.scrollHeight); }
    });
  }

  if (window.EventSource && document.querySelector("[data-live]")) {
    var timer = null;
    var source = new EventSource("/events");
    var later = function () { clearTimeout(timer); timer = setTimeout(refresh, 60); };
    source.addEventListener("changed", later);
    // Whatever changed between rendering this page and (re)connecting is fetched now.
    source.addEventListener("open", later);
  }

  // Handle rules, checked as you type.
  var handle = document.getElementById("handle");
  var check = document.getElementById("handle-check");
  if (handle && check) {
    var rule = /^[a-z0-9][a-z0-9_.-]{2,31}$/;
    handle.addEventListener("input", function () {
      var value = handle.value;
      var problem = "";
      if (!value) { problem = ""; }
      else if (/[A-Z]/.test(value)) { problem = "Use lowercase letters only."; }
      else if (!/^[a-z0-9]/.test(value)) { problem = "Start with a letter or a digit."; }
      else if (/[^a-z0-9_.-]/.test(value)) { problem = "Only a–z, 0–9, _ . and - are allowed."; }
      else if (value.length < 3) { problem = "Too short: at least 3 characters."; }
      else if (value.length > 32) { problem = "Too long: at most 32 characters."; }
      var ok = value && rule.test(value);
      check.textContent = ok ? "✓ " + value + " is a valid handle." : problem;
      check.className = "check " + (ok ? "ok" : (problem ? "bad" : ""));
      handle.setAttribute("aria-invalid", problem ? "true" : "false");
    });
  }

  // Send without reloading (Enter sends, Shift+Enter makes a new line).
  var composer = document.getElementById("composer");
  var message = document.getElementById("message");
  if (composer && message) {
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = message.value.trim();
      if (!text) { message.focus(); return; }
      var body = new URLSearchParams({csrf: csrf, message: text});
      fetch(composer.action, {method: "POST", credentials: "same-origin", body: body,
                              headers: {"X-Requested-With": "fetch"}})
        .then(function (answer) {
          if (answer.ok) { message.value = ""; refresh(); }
          else { answer.text().then(function (t) { document.getElementById("attach-status").textContent = "Not sent: " + t; }); }
        });
      message.focus();
    });
    message.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
    window.scrollTo(0, document.body.scrollHeight);
  }

  var attach = document.getElementById("attach");
  var file = document.getElementById("file");
  var attachStatus = document.getElementById("attach-status");
  if (attach && file) {
    attach.addEventListener("click", function () { file.click(); });
    file.addEventListener("change", function () {
      var chosen = file.files && file.files[0];
      if (!chosen) { return; }
      attachStatus.textContent = "Sending " + chosen.name + "…";
      fetch(attach.dataset.action, {
        method: "POST", credentials: "same-origin", body: chosen,
        headers: {"X-CSRF-Token": csrf, "X-File-Name": encodeURIComponent(chosen.name),
                  "Content-Type": "application/octet-stream"}
      }).then(function (answer) {
        return answer.json().then(function (body) {
          attachStatus.textContent = answer.ok ? "Sent " + body.name + "." : "Not sent: " + body.error;
          file.value = "";
          refresh();
        });
      }).catch(function () { attachStatus.textContent = "Not sent: the app is not answering."; });
    });
  }
})();
