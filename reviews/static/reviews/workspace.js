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

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error(response.status);
      return response.text();
    });
  }

  // A long original is not in the page: the edit field loads it when the editor opens.
  function loadEditFields() {
    document.querySelectorAll("textarea[data-load]").forEach(function (area) {
      if (area.dataset.loading) return;
      area.dataset.loading = "yes";
      fetchText(area.dataset.load).then(function (text) {
        area.defaultValue = text;
        area.value = text;
        area.disabled = false;
        var note = area.parentNode.querySelector(".edit-loading");
        if (note) note.remove();
        area.dispatchEvent(new Event("original"));
      });
    });
  }

  function startLiveDiffs() {
    document.querySelectorAll("textarea[data-diff]").forEach(function (area) {
      var container = document.getElementById(area.dataset.diff);
      if (!container) return;
      // The original is the field's initial text, or (after an error, when the field holds
      // the reviewer's edit) the copy the server put in data-original or lets us load.
      var original = null;
      var pending = null;
      function setOriginal(text) {
        original = text.replace(/\r\n?/g, "\n");
        update();
      }
      function update() {
        pending = null;
        if (original === null || area.disabled) return;
        renderDiff(container, original, area.value.replace(/\r\n?/g, "\n"));
      }
      area.addEventListener("input", function () {
        if (pending === null) pending = setTimeout(update, 150);
      });
      area.addEventListener("original", function () {
        setOriginal(area.defaultValue);
      });
      if (area.dataset.original !== undefined) setOriginal(area.dataset.original);
      else if (area.dataset.loadOriginal) fetchText(area.dataset.loadOriginal).then(setOriginal);
      else if (!area.dataset.load) setOriginal(area.defaultValue);
    });
    var editor = document.getElementById("edit-area");
    if (editor) {
      editor.addEventListener("toggle", function () {
        if (editor.open) loadEditFields();
      });
      if (editor.open) loadEditFields();
    }
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

    // Codes that do not apply to the chosen decision are hidden and cannot be ticked (a
    // disabled box is not sent); those that do are numbered for Shift+1..9.
    function filterReasonCodes(action) {
      var number = 0;
      form.querySelectorAll(".reason-code").forEach(function (label) {
        var applies = (label.dataset.applies || "").split(/\s+/);
        var fits = !action || applies.indexOf(action) !== -1;
        var input = label.querySelector("input");
        var key = label.querySelector(".code-key");
        label.hidden = !fits;
        if (input) {
          input.disabled = !fits;
          if (!fits) input.checked = false;
        }
        if (key) {
          number += fits ? 1 : 0;
          key.hidden = !fits || number > 9;
          key.textContent = "\u21e7" + number;
        }
      });
    }

    function visibleReasonCodes() {
      return Array.prototype.filter.call(form.querySelectorAll(".reason-code"), function (label) {
        return !label.hidden;
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
      // Tabbing onto a decision button chooses it too (and narrows the reason codes). A
      // pointer press focuses it as well, but then the click sends it: narrowing the codes
      // at that moment would move the button away from under the pointer.
      var pressing = false;
      form.addEventListener("pointerdown", function () {
        pressing = true;
      }, true);
      document.addEventListener("pointerup", function () {
        setTimeout(function () {
          pressing = false;
        }, 0);
      }, true);
      form.querySelectorAll('button[name="action"]').forEach(function (button) {
        button.addEventListener("focus", function () {
          if (chosen !== button && !pressing) choose(button.value, false);
        });
      });
      var submitting = false;
      form.addEventListener("submit", function (event) {
        if (submitting) event.preventDefault(); // a double click sends one decision
        submitting = true;
        form.dataset.submitted = "yes";
      });
      // Opening the editor is choosing to edit.
      var editor = document.getElementById("edit-area");
      if (editor) {
        editor.addEventListener("toggle", function () {
          if (editor.open && form.dataset.action !== "edit") choose("edit", false);
        });
      }
      // After an error the page comes back with the decision that was chosen: keep it,
      // and put the focus on the first field in error.
      if (form.dataset.action) choose(form.dataset.action, false);
      focusFirstError();
    }

    function focusFirstError() {
      var name = form && form.dataset.firstError;
      if (!name) return;
      var targets = {
        checklist: 'input[name="checklist"]',
        justification: "#justification",
        reason_codes: ".reason-code:not([hidden]) input",
        edited_output: "#edit-text",
        edited_action: "#edit-params",
        escalate_to: "#escalate-to"
      };
      var field = form.querySelector(targets[name] || "#justification");
      if (!field) return;
      if (name === "edited_output" || name === "edited_action") {
        var area = document.getElementById("edit-area");
        if (area) area.open = true;
      }
      field.focus();
    }

    function toggleBox(input) {
      if (!input || input.disabled) return;
      input.checked = !input.checked;
      input.focus();
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
      var digit = /^Digit([1-9])$/.exec(event.code || "");
      if (digit) {
        var index = Number(digit[1]) - 1;
        event.preventDefault();
        if (event.shiftKey) {
          var code = visibleReasonCodes()[index];
          toggleBox(code && code.querySelector("input"));
        } else {
          toggleBox(document.getElementById("checklist-" + index));
        }
        return;
      }
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

  // --- Long values: "Show all" loads the rest, as text -------------------------------------

  // The same characters the server marks (reviews/admin/presentation.py HIDDEN_CHARACTERS).
  var HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

  function fillMarked(element, text) {
    element.textContent = "";
    var last = 0;
    text.replace(HIDDEN, function (character, offset) {
      if (offset > last) element.appendChild(document.createTextNode(text.slice(last, offset)));
      var mark = document.createElement("mark");
      mark.className = "hidden-character";
      var code = character.charCodeAt(0).toString(16).toUpperCase();
      mark.textContent = "\u27e8U+" + ("0000" + code).slice(-4) + "\u27e9";
      element.appendChild(mark);
      last = offset + character.length;
      return character;
    });
    if (last < text.length) element.appendChild(document.createTextNode(text.slice(last)));
  }

  function startShowAll() {
    document.querySelectorAll("a[data-show-all]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var more = link.closest(".value-more");
        var value = more && more.previousElementSibling;
        if (!value || !window.fetch) return; // without scripts the link opens the value as text
        event.preventDefault();
        link.textContent = "Loading\u2026";
        fetch(link.href, { credentials: "same-origin" })
          .then(function (response) {
            if (!response.ok) throw new Error(response.status);
            return response.text();
          })
          .then(function (text) {
            fillMarked(value, text); // text only: the content is untrusted
            more.remove();
          })
          .catch(function () {
            link.textContent = "Could not load it: open it as text";
            link.removeAttribute("data-show-all");
          });
      });
    });
  }

  // --- Claims: leaving the page gives the claim back -----------------------------------------

  // The next item is claimed when a decision lands on it; a reviewer who leaves without
  // deciding (another page, a closed tab) gives it back, so it does not sit locked for the
  // length of a claim. Sending a decision or the claim/release forms is not leaving.
  function startReleaseOnLeave() {
    var page = document.querySelector("[data-release-url]");
    var form = document.getElementById("decision-form");
    var token = document.querySelector('input[name="csrfmiddlewaretoken"]');
    if (!page || !token || !navigator.sendBeacon) return;
    var staying = false;
    document.querySelectorAll("form").forEach(function (each) {
      each.addEventListener("submit", function () {
        staying = true;
      });
    });
    window.addEventListener("pagehide", function () {
      if (staying || (form && form.dataset.submitted)) return;
      var data = new FormData();
      data.append("csrfmiddlewaretoken", token.value);
      navigator.sendBeacon(page.dataset.releaseUrl, data);
    });
  }

  function start() {
    startCountdown();
    startLiveDiffs();
    startShortcuts();
    startShowAll();
    startReleaseOnLeave();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
