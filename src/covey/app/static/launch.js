// Redeem the one-time token from the address's fragment for this instance's session
// cookie, then drop the fragment so the token never stays in the history.
(function () {
  "use strict";
  var status = document.getElementById("launch-status");
  var match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(window.location.hash);
  if (!match) {
    status.textContent = "This page needs the address that covey app printed (it ends in #token=…). " +
      "Copy it from the terminal, or restart covey app.";
    return;
  }
  history.replaceState(null, "", "/");
  fetch("/session", {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: match[1]})
  }).then(function (answer) {
    if (answer.ok) { window.location.replace("/"); return; }
    return answer.text().then(function (text) { status.textContent = text; });
  }).catch(function () {
    status.textContent = "The app is not answering: is covey app still running?";
  });
})();
