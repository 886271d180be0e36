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
  // The promise settles once every field is loaded (or could not be).
  var editFieldLoads = [];

  function loadEditFields() {
    document.querySelectorAll("textarea[data-load]").forEach(function (area) {
      if (area.dataset.loading) return;
      area.dataset.loading = "yes";
      var note = area.parentNode.querySelector(".edit-loading");
      editFieldLoads.push(
        fetchText(area.dataset.load)
          .then(function (text) {
            area.defaultValue = text;
            area.value = text;
            area.disabled = false;
            if (note) note.remove();
            area.dispatchEvent(new Event("original"));
          })
          .catch(function () {
            if (note) note.textContent = "Could not load it here: reload the page to try again.";
          })
      );
    });
    return Promise.all(editFieldLoads);
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

    function codeFits(label, action) {
      return !action || (label.dataset.applies || "").split(/\s+/).indexOf(action) !== -1;
    }

    // The ticked codes that do not apply to `action` (what pressing its button would send).
    function tickedMisfits(action) {
      return Array.prototype.filter
        .call(form.querySelectorAll(".reason-code"), function (label) {
          var input = label.querySelector("input");
          return input && input.checked && !input.disabled && !codeFits(label, action);
        })
        .map(function (label) {
          return label.querySelector("input").value;
        });
    }

    // Codes that do not apply to the chosen decision cannot be ticked (a disabled box is
    // not sent) and are hidden, except one that was ticked: it is unticked but stays in
    // sight, marked, with a note naming it, so nothing the reviewer chose vanishes unseen
    // (and a server error about it names a code on the page). Those that apply are
    // numbered for Shift+1..9.
    function filterReasonCodes(action) {
      var number = 0;
      var unticked = [];
      form.querySelectorAll(".reason-code").forEach(function (label) {
        var fits = codeFits(label, action);
        var input = label.querySelector("input");
        var key = label.querySelector(".code-key");
        var notApplies = label.querySelector(".not-applies");
        if (input && input.checked && !fits) {
          input.checked = false;
          unticked.push(input.value);
          label.classList.add("dropped");
        }
        if (fits) label.classList.remove("dropped");
        var dropped = label.classList.contains("dropped");
        label.hidden = !fits && !dropped;
        if (notApplies) notApplies.hidden = fits;
        if (input) input.disabled = !fits;
        if (key) {
          number += fits ? 1 : 0;
          key.hidden = !fits || number > 9;
          key.textContent = "\u21e7" + number;
        }
      });
      var note = document.getElementById("codes-unticked");
      if (note && unticked.length) {
        note.textContent =
          "Unticked " + unticked.join(", ") + ": " + (unticked.length > 1 ? "they do" : "it does") +
          " not apply to " + action + ". Check the reason codes before you send.";
        note.hidden = false;
      } else if (note && !form.querySelector(".reason-code.dropped")) {
        note.hidden = true;
      }
      return unticked;
    }

    function visibleReasonCodes() {
      return Array.prototype.filter.call(form.querySelectorAll(".reason-code"), function (label) {
        var input = label.querySelector("input");
        return !label.hidden && !(input && input.disabled);
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
          var before = document.activeElement;
          field.focus();
          if (field.disabled) {
            // A long original is still loading into it: focus it once it is there, unless
            // the reviewer has gone to another field meanwhile.
            loadEditFields().then(function () {
              var now = document.activeElement;
              if (!now || now === before || now === document.body) field.focus();
            });
          }
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
        if (submitting) {
          event.preventDefault(); // a double click sends one decision
          return;
        }
        // A click on a decision button both chooses and sends. Codes ticked for another
        // decision are never sent with it: the press only chooses, which unticks them with
        // a note, and the reviewer checks and presses again.
        var button = event.submitter;
        if (button && button.name === "action" && tickedMisfits(button.value).length) {
          event.preventDefault();
          choose(button.value, true);
          return;
        }
        submitting = true;
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
        reason_codes: ".reason-code:not([hidden]) input:not(:disabled)",
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

  // The same characters the server marks, the same way (reviews/admin/presentation.py
  // HIDDEN_CLASS, marked()): a run of one as one mark, ⟨U+200B⟩×3000, and at most MAX_MARKS
  // marks in a value, its further hidden characters left out and counted in one mark, where
  // that starts.
  var HIDDEN_RUNS = /([\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb])\1*/g;
  var MAX_MARKS = 50;

  function hiddenMark(text) {
    var mark = document.createElement("mark");
    mark.className = "hidden-character";
    mark.title = "Invisible characters the model wrote";
    mark.textContent = text;
    return mark;
  }

  function fillMarked(element, text) {
    element.textContent = "";
    var plain = "";
    var marks = 0;
    var leftOut = 0;
    var summary = null;
    var last = 0;
    var match;
    HIDDEN_RUNS.lastIndex = 0;
    while ((match = HIDDEN_RUNS.exec(text)) !== null) {
      plain += text.slice(last, match.index);
      last = match.index + match[0].length;
      if (marks === MAX_MARKS) {
        if (!summary) {
          if (plain) element.appendChild(document.createTextNode(plain));
          plain = "";
          summary = element.appendChild(hiddenMark(""));
        }
        leftOut += match[0].length;
        continue;
      }
      if (plain) element.appendChild(document.createTextNode(plain));
      plain = "";
      marks++;
      var code = match[1].charCodeAt(0).toString(16).toUpperCase();
      var run = match[0].length > 1 ? "\u00d7" + match[0].length : "";
      element.appendChild(hiddenMark("\u27e8U+" + ("0000" + code).slice(-4) + "\u27e9" + run));
    }
    plain += text.slice(last);
    if (plain) element.appendChild(document.createTextNode(plain));
    if (summary) {
      var words = leftOut.toLocaleString("en") + " more hidden character" + (leftOut > 1 ? "s" : "");
      summary.textContent = "\u27e8" + words + " from here on, not shown\u27e9";
    }
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

  // --- Claims: leaving the page gives an auto-advance claim back ---------------------------

  // After a decision the next item is claimed for the reviewer, and its page carries
  // data-leave-url (a claim taken on purpose, with Claim or Review next, does not: it is
  // never given back here). Leaving the page without deciding gives that claim back:
  //  - a link or a form out of the page (breadcrumbs, the safety policy, log out) first
  //    waits for the release, so the page it opens (the overview) never offers it;
  //  - any other way out (a closed tab, a typed address) sends a beacon on pagehide. So
  //    does a reload, after its new page was made: the server then ignores it, since only
  //    the newest page's token releases (reviews/admin/workspace.py AUTO_CLAIMS).
  // The forms of the page itself (decide, keep, stop reviewing) are not leaving.
  function startReleaseOnLeave() {
    var page = document.querySelector("[data-leave-url]");
    var csrf = document.querySelector('input[name="csrfmiddlewaretoken"]');
    if (!page || !csrf || !window.fetch) return;
    var released = false;
    var staying = false;

    function payload() {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", csrf.value);
      data.append("token", page.dataset.leaveToken);
      return data;
    }

    function releaseThen(go) {
      if (released) return go();
      released = true;
      var gone = false;
      function once() {
        if (gone) return;
        gone = true;
        go();
      }
      setTimeout(once, 3000); // a slow answer does not keep the reviewer here
      var request = { method: "POST", body: payload(), credentials: "same-origin", keepalive: true };
      fetch(page.dataset.leaveUrl, request).then(once, once);
    }

    var rawPath = page.dataset.rawUrl ? new URL(page.dataset.rawUrl, location.href).pathname : null;

    document.addEventListener("click", function (event) {
      if (released || event.defaultPrevented || event.button !== 0) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return; // a new tab or window
      var link = event.target.closest ? event.target.closest("a[href]") : null;
      if (!link || (link.target && link.target !== "_self") || link.hasAttribute("download")) return;
      var url = new URL(link.href, location.href);
      if (url.href.split("#")[0] === location.href.split("#")[0]) return; // within the page
      if (url.pathname === rawPath) return; // the submission itself, as a download or as text
      event.preventDefault();
      releaseThen(function () {
        location.assign(link.href);
      });
    });

    document.addEventListener("submit", function (event) {
      if (event.defaultPrevented) return; // not sent (a double click, codes to check)
      var form = event.target;
      if (page.contains(form)) {
        staying = true;
        return;
      }
      if (released) return;
      event.preventDefault();
      releaseThen(function () {
        HTMLFormElement.prototype.submit.call(form);
      });
    });

    window.addEventListener("pagehide", function () {
      if (staying || released || !navigator.sendBeacon) return;
      released = true;
      navigator.sendBeacon(page.dataset.leaveUrl, payload());
    });

    // Back to this page from the browser's cache after leaving it: show the claim as it is now.
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && released) location.reload();
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
