/*
 * Reviewer workspace: the claim countdown, the live diff under the edit fields and the
 * keyboard shortcuts. Plain JavaScript, no dependencies.
 *
 * Nothing here decides: a decision is sent only by a click on a decision button or by
 * Ctrl+Enter in the justification, and the server checks every rule again.
 */
(function () {
  "use strict";

  // --- Claim countdown --------------------------------------------------------------------

  function startCountdown() {
    var el = document.getElementById("claim-countdown");
    if (!el || !el.dataset.expires) return;
    var expires = Date.parse(el.dataset.expires);
    if (isNaN(expires)) return;
    // Count on the server's clock: correct by how far this machine's clock is off.
    var serverNow = Date.parse(el.dataset.now);
    var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

    function tick() {
      var left = Math.round((expires - (Date.now() + skew)) / 1000);
      if (left <= 0) {
        el.textContent = "Claim expired";
        el.classList.add("expired");
        el.classList.remove("ending");
        return false;
      }
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      el.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds + " left";
      el.classList.toggle("ending", left < 120);
      return true;
    }

    if (tick()) {
      var timer = setInterval(function () {
        if (!tick()) clearInterval(timer);
      }, 1000);
    }
  }

  // --- Word diff (longest common subsequence) ---------------------------------------------

  var TOKEN = /\s+|[^\s]+/g;
  var MAX_CELLS = 1000000; // beyond this the changed middle is shown as one deletion and one insertion

  function tokens(text) {
    return text.match(TOKEN) || [];
  }

  function diffTokens(a, b) {
    var segments = [];
    function push(op, list) {
      if (!list.length) return;
      var text = list.join("");
      var last = segments[segments.length - 1];
      if (last && last[0] === op) last[1] += text;
      else segments.push([op, text]);
    }

    // The common head and tail are cheap to find and usually most of the text.
    var start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) start++;
    var endA = a.length;
    var endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
      endA--;
      endB--;
    }
    push("equal", a.slice(0, start));

    var n = endA - start;
    var m = endB - start;
    if (n * m > MAX_CELLS) {
      push("delete", a.slice(start, endA));
      push("insert", b.slice(start, endB));
    } else {
      // lcs[i * (m + 1) + j] = length of the LCS of a[start+i..endA) and b[start+j..endB)
      var width = m + 1;
      var lcs = new Uint32Array((n + 1) * width);
      for (var i = n - 1; i >= 0; i--) {
        for (var j = m - 1; j >= 0; j--) {
          lcs[i * width + j] =
            a[start + i] === b[start + j]
              ? lcs[(i + 1) * width + j + 1] + 1
              : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
        }
      }
      i = 0;
      j = 0;
      while (i < n && j < m) {
        if (a[start + i] === b[start + j]) {
          push("equal", [a[start + i]]);
          i++;
          j++;
        } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
          push("delete", [a[start + i]]);
          i++;
        } else {
          push("insert", [b[start + j]]);
          j++;
        }
      }
      push("delete", a.slice(start + i, endA));
      push("insert", b.slice(start + j, endB));
    }
    push("equal", a.slice(endA));
    return segments;
  }

  function renderDiff(container, original, edited) {
    container.textContent = "";
    if (original === edited) {
      var same = document.createElement("span");
      same.className = "quiet";
      same.textContent = "No changes yet.";
      container.appendChild(same);
      return;
    }
    var pre = document.createElement("pre");
    pre.className = "diff";
    diffTokens(tokens(original), tokens(edited)).forEach(function (segment) {
      var node =
        segment[0] === "insert"
          ? document.createElement("ins")
          : segment[0] === "delete"
            ? document.createElement("del")
            : document.createElement("span");
      node.textContent = segment[1]; // text only: the content is untrusted
      pre.appendChild(node);
    });
    container.appendChild(pre);
  }

  function startLiveDiffs() {
    document.querySelectorAll("textarea[data-diff]").forEach(function (area) {
      var container = document.getElementById(area.dataset.diff);
      if (!container) return;
      var original = area.dataset.original || "";
      var pending = null;
      function update() {
        pending = null;
        renderDiff(container, original, area.value.replace(/\r\n?/g, "\n"));
      }
      area.addEventListener("input", function () {
        if (pending === null) pending = setTimeout(update, 150);
      });
      update();
    });
  }

  // --- Keyboard shortcuts -----------------------------------------------------------------

  var KEYS = { a: "approve", e: "edit", r: "reject", s: "escalate" };

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    if (target.isContentEditable) return true;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    if (tag !== "input") return false;
    var type = (target.type || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset"].indexOf(type) === -1;
  }

  function startShortcuts() {
    var form = document.getElementById("decision-form");
    var help = document.getElementById("shortcut-help");
    var hint = document.getElementById("decision-hint");
    var chosen = null;

    function filterReasonCodes(action) {
      form.querySelectorAll(".reason-code").forEach(function (label) {
        var applies = (label.dataset.applies || "").split(/\s+/);
        var fits = !action || applies.indexOf(action) !== -1;
        var input = label.querySelector("input");
        // A ticked code stays visible, so nothing is ever sent unseen.
        label.hidden = !fits && !(input && input.checked);
        label.classList.toggle("not-applicable", !fits);
      });
    }

    function choose(action, focusButton) {
      var button = form.querySelector('button[name="action"][value="' + action + '"]');
      if (!button) return;
      chosen = button;
      form.dataset.action = action;
      form.querySelectorAll('button[name="action"]').forEach(function (other) {
        other.classList.toggle("chosen", other === button);
      });
      filterReasonCodes(action);
      if (action === "edit") {
        var area = document.getElementById("edit-area");
        if (area) area.open = true;
        var field = document.getElementById("edit-text") || document.getElementById("edit-params");
        if (field) {
          field.focus();
          return;
        }
      }
      if (focusButton) button.focus();
    }

    function toggleHelp() {
      if (help) help.hidden = !help.hidden;
    }

    var toggle = document.getElementById("shortcut-toggle");
    if (toggle) toggle.addEventListener("click", toggleHelp);

    if (form) {
      // Tabbing onto a decision button chooses it too (and narrows the reason codes).
      form.querySelectorAll('button[name="action"]').forEach(function (button) {
        button.addEventListener("focus", function () {
          if (chosen !== button) choose(button.value, false);
        });
      });
      var submitting = false;
      form.addEventListener("submit", function (event) {
        if (submitting) event.preventDefault(); // a double click sends one decision
        submitting = true;
      });
    }

    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (form && event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.id === "justification") {
        event.preventDefault();
        if (!chosen) {
          if (hint) {
            hint.textContent = "Choose a decision first: a, e, r or s (or click a button).";
            hint.classList.add("attention");
          }
          return;
        }
        if (form.requestSubmit) form.requestSubmit(chosen);
        else chosen.click();
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) return;
      if (event.key === "?") {
        event.preventDefault();
        toggleHelp();
        return;
      }
      if (!form) return;
      if (KEYS[event.key]) {
        event.preventDefault();
        choose(KEYS[event.key], true);
      } else if (event.key === "j") {
        var justification = document.getElementById("justification");
        if (justification) {
          event.preventDefault();
          justification.focus();
        }
      }
    });
  }

  function start() {
    startCountdown();
    startLiveDiffs();
    startShortcuts();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
