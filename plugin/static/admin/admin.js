/* The embedded admin's settings page: figures, earn rules and the rewards catalogue, edited through /api/admin/.
 * Plain script, no dependencies. Every call carries the Shopify session token as a Bearer token: App Bridge's
 * shopify.idToken() when App Bridge is loaded, else the id_token Shopify put in the page's URL. */
(function () {
  "use strict";

  var form = document.getElementById("settings-form");
  var rewardsList = document.getElementById("rewards");
  var rewardTemplate = document.getElementById("reward-template");
  var statusEl = document.getElementById("status");
  var saveButton = document.getElementById("save");
  var errorSummary = document.getElementById("error-summary");
  var errorSummaryList = document.getElementById("error-summary-list");

  var KINDS = ["fixed_amount", "percentage", "free_shipping"];
  var REWARD_FIELDS = [
    "id", "title", "kind", "points", "amount", "percent", "min_subtotal", "lifetime_days", "customer_only", "single_use"
  ];
  var LABELS = {
    earn: "Earn rate",
    "earn.points": "Points",
    "earn.per_amount": "Per amount spent",
    pending_days: "Pending days",
    include_shipping: "Shipping charges",
    include_taxes: "Taxes",
    include_tips: "Tips",
    include_gift_cards: "Gift card purchases",
    earn_on_test_orders: "Test orders earn points",
    guest_orders_earn_by_email: "Guest checkouts earn points",
    rewards: "Rewards",
    id: "ID",
    title: "Title",
    kind: "Kind",
    points: "Points",
    amount: "Amount off",
    percent: "Percent off",
    min_subtotal: "Minimum subtotal",
    lifetime_days: "Code valid for (days)",
    customer_only: "Only the customer who redeemed",
    single_use: "Code can be used once"
  };
  var FRIENDLIER = {
    "Field may not be null.": "Enter a value.",
    "Missing data for required field.": "Enter a value."
  };

  var state = { currency: null, saving: false, loaded: false, nextUid: 1 };

  // ---------------------------------------------------------------- session token and API

  function urlToken() {
    return new URLSearchParams(window.location.search).get("id_token") || "";
  }

  async function sessionToken() {
    if (window.shopify && typeof window.shopify.idToken === "function") {
      try {
        return await window.shopify.idToken();
      } catch (error) {
        return urlToken();
      }
    }
    return urlToken();
  }

  function ApiError(status, code, message, fields) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.fields = fields || null;
  }

  async function api(method, path, body) {
    var headers = { Accept: "application/json", Authorization: "Bearer " + (await sessionToken()) };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, "network", "The loyalty app could not be reached. Check your connection and try again.");
    }
    var data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      var problem = (data && data.error) || {};
      throw new ApiError(
        response.status,
        problem.code || "http_" + response.status,
        problem.message || "The loyalty app answered " + response.status + ".",
        problem.fields
      );
    }
    return data;
  }

  // ---------------------------------------------------------------- banner and status

  function showBanner(title, message) {
    document.getElementById("banner-title").textContent = title;
    document.getElementById("banner-message").textContent = message;
    document.getElementById("banner").hidden = false;
  }

  function hideBanner() {
    document.getElementById("banner").hidden = true;
  }

  function bannerFor(error) {
    if (error.status === 401) {
      showBanner(
        "Your session could not be verified",
        String(error.message).replace(/\.?\s*$/, ". ") + "Open the app again from your Shopify admin."
      );
    } else {
      showBanner("Something went wrong", error.message);
    }
  }

  function setStatus(text, tone) {
    statusEl.textContent = text;
    statusEl.className = "status" + (tone ? " status-" + tone : "");
  }

  // ---------------------------------------------------------------- numbers and money

  var integerFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function currencySymbol(code) {
    try {
      var parts = new Intl.NumberFormat(undefined, { style: "currency", currency: code }).formatToParts(0);
      var symbol = parts.filter(function (p) { return p.type === "currency"; })[0];
      return symbol ? symbol.value : code;
    } catch (error) {
      return code;
    }
  }

  function showCurrency(scope) {
    var code = state.currency;
    scope.querySelectorAll("[data-currency-label]").forEach(function (el) {
      el.textContent = code ? "(" + code + ")" : "";
    });
    scope.querySelectorAll("[data-currency-code]").forEach(function (el) {
      el.textContent = code ? currencySymbol(code) : "";
      el.hidden = !code;
    });
  }

  function defaultTitle(kind, amount, percent) {
    if (kind === "fixed_amount") {
      var value = Number(amount);
      return (amount && isFinite(value) ? value.toFixed(2) : "…") + " off";
    }
    if (kind === "percentage") {
      var text = String(percent || "").trim();
      if (text && isFinite(Number(text))) {
        if (text.indexOf(".") >= 0) text = text.replace(/0+$/, "").replace(/\.$/, "");
        text = text.replace(/^0+(?=\d)/, "");
      }
      return (text || "…") + "% off";
    }
    return "Free shipping";
  }

  // ---------------------------------------------------------------- summary

  function showSummary(summary) {
    state.currency = summary.currency || null;
    document.querySelectorAll("[data-stat]").forEach(function (el) {
      var value = summary[el.getAttribute("data-stat")];
      el.textContent = typeof value === "number" ? integerFormat.format(value) : "–";
    });
    var note = document.getElementById("reversed-note");
    if (summary.points_reversed) {
      note.textContent = integerFormat.format(summary.points_reversed) + " points were taken back on refunds.";
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    if (summary.shop) document.getElementById("shop-name").textContent = summary.shop;
    document.getElementById("summary").hidden = false;
    showCurrency(document);
  }

  // ---------------------------------------------------------------- form: fill and read

  function setControl(control, value) {
    if (control.type === "checkbox") {
      control.checked = !!value;
    } else {
      control.value = value === null || value === undefined ? "" : String(value);
    }
  }

  function readControl(control) {
    var type = control.getAttribute("data-type");
    if (type === "boolean") return control.checked;
    var raw = control.value.trim();
    if (type === "integer") {
      if (raw === "") return null;
      var number = Number(raw);
      return isFinite(number) ? number : raw; // the server says what is wrong with anything else
    }
    if (raw === "") return null;
    return raw;
  }

  function simpleControls() {
    return Array.prototype.filter.call(form.querySelectorAll("[data-path]"), function (el) {
      return !el.closest(".reward");
    });
  }

  function fillForm(settings) {
    simpleControls().forEach(function (control) {
      var path = control.getAttribute("data-path").split(".");
      var value = settings;
      path.forEach(function (key) { value = value === null || value === undefined ? undefined : value[key]; });
      setControl(control, value);
    });
    rewardsList.textContent = "";
    (settings.rewards || []).forEach(function (reward) { addRewardRow(reward); });
    renumberRewards();
  }

  function readForm() {
    var settings = {};
    simpleControls().forEach(function (control) {
      var path = control.getAttribute("data-path").split(".");
      var target = settings;
      for (var i = 0; i < path.length - 1; i++) {
        target = target[path[i]] = target[path[i]] || {};
      }
      target[path[path.length - 1]] = readControl(control);
    });
    settings.rewards = Array.prototype.map.call(rewardsList.children, readReward);
    return settings;
  }

  function readReward(row) {
    var reward = {};
    var kind = row.querySelector('[data-field="kind"]').value;
    REWARD_FIELDS.forEach(function (name) {
      var control = row.querySelector('[data-field="' + name + '"]');
      var holder = control.closest("[data-kind-only]");
      if (holder && holder.getAttribute("data-kind-only") !== kind) return; // not this kind's value
      var value = readControl(control);
      if (value === null && control.hasAttribute("data-optional")) return; // absent: the server's default
      reward[name] = value;
    });
    return reward;
  }

  // ---------------------------------------------------------------- rewards rows

  function uniqueRewardId() {
    var taken = {};
    rewardsList.querySelectorAll('[data-field="id"]').forEach(function (el) { taken[el.value.trim()] = true; });
    for (var n = rewardsList.children.length + 1; ; n++) {
      if (!taken["reward-" + n]) return "reward-" + n;
    }
  }

  function addRewardRow(reward) {
    var fragment = rewardTemplate.content.cloneNode(true);
    var row = fragment.querySelector(".reward");
    var uid = "r" + state.nextUid++;
    row.setAttribute("data-uid", uid);
    var rowSlot = row.querySelector('[data-slot="row"]');
    rowSlot.id = uid + "-error";

    REWARD_FIELDS.forEach(function (name) {
      var control = row.querySelector('[data-field="' + name + '"]');
      control.id = uid + "-" + name;
      var label = row.querySelector('[data-for="' + name + '"]');
      label.setAttribute("for", control.id);
      var help = row.querySelector('[data-help-for="' + name + '"]');
      if (help) {
        help.id = control.id + "-help";
        control.setAttribute("aria-describedby", help.id);
      }
      row.querySelector('[data-error-for-field="' + name + '"]').id = control.id + "-error";
    });

    var values = reward || {
      id: uniqueRewardId(), kind: "fixed_amount", points: null, amount: null, percent: null,
      min_subtotal: null, lifetime_days: 30, customer_only: true, single_use: true
    };
    REWARD_FIELDS.forEach(function (name) {
      if (name !== "title") setControl(row.querySelector('[data-field="' + name + '"]'), values[name]);
    });
    var kindSelect = row.querySelector('[data-field="kind"]');
    if (KINDS.indexOf(values.kind) < 0 && values.kind) {
      var unknown = document.createElement("option"); // keep a kind this page does not know rather than lose it
      unknown.value = unknown.textContent = values.kind;
      kindSelect.appendChild(unknown);
      kindSelect.value = values.kind;
    }
    // A title the server generated is left blank, so it follows the amount when the merchant changes it.
    var title = row.querySelector('[data-field="title"]');
    var generated = defaultTitle(values.kind, values.amount, values.percent);
    title.value = values.title && values.title !== generated ? values.title : "";

    rewardsList.appendChild(fragment);
    showCurrency(row);
    updateKind(row);
    return row;
  }

  function updateKind(row) {
    var kind = row.querySelector('[data-field="kind"]').value;
    row.querySelectorAll("[data-kind-only]").forEach(function (holder) {
      holder.hidden = holder.getAttribute("data-kind-only") !== kind;
    });
    var title = row.querySelector('[data-field="title"]');
    title.placeholder = defaultTitle(
      kind, row.querySelector('[data-field="amount"]').value, row.querySelector('[data-field="percent"]').value
    );
  }

  function renumberRewards() {
    Array.prototype.forEach.call(rewardsList.children, function (row, index) {
      row.querySelectorAll("[data-reward-number]").forEach(function (el) { el.textContent = String(index + 1); });
      row.querySelector("fieldset").setAttribute("data-error-for", "rewards." + index);
      REWARD_FIELDS.forEach(function (name) {
        row.querySelector('[data-field="' + name + '"]').setAttribute("data-path", "rewards." + index + "." + name);
      });
    });
    document.getElementById("rewards-empty").hidden = rewardsList.children.length > 0;
  }

  rewardsList.addEventListener("change", function (event) {
    if (event.target.matches('[data-field="kind"]')) updateKind(event.target.closest(".reward"));
  });
  rewardsList.addEventListener("input", function (event) {
    if (event.target.matches('[data-field="amount"], [data-field="percent"]')) {
      updateKind(event.target.closest(".reward"));
    }
  });
  rewardsList.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove]");
    if (!button) return;
    var row = button.closest(".reward");
    var next = row.nextElementSibling || row.previousElementSibling;
    var name = row.querySelector('[data-field="id"]').value.trim();
    clearErrors("rewards");
    row.remove();
    renumberRewards();
    markDirty();
    setStatus((name ? "Reward " + name : "Reward") + " removed. Save to keep this change.");
    (next ? next.querySelector("[data-remove]") : document.getElementById("add-reward")).focus();
  });
  document.getElementById("add-reward").addEventListener("click", function () {
    clearErrors("rewards");
    var row = addRewardRow(null);
    renumberRewards();
    markDirty();
    row.querySelector('[data-field="id"]').focus();
  });

  // ---------------------------------------------------------------- errors

  function flatten(node, path, out) {
    if (node === null || node === undefined) return;
    if (typeof node === "string") {
      out.push({ path: path, message: node });
    } else if (Array.isArray(node)) {
      node.forEach(function (item, index) {
        if (typeof item === "string") out.push({ path: path, message: item });
        else flatten(item, path.concat(String(index)), out);
      });
    } else if (typeof node === "object") {
      Object.keys(node).forEach(function (key) {
        flatten(node[key], key === "_schema" ? path : path.concat(String(key)), out);
      });
    } else {
      out.push({ path: path, message: String(node) });
    }
  }

  function visible(el) {
    return !el.closest("[hidden]");
  }

  function describedBy(el, id, add) {
    var ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) { return x && x !== id; });
    if (add) ids.push(id);
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  }

  function appendMessage(slot, message) {
    var line = document.createElement("span");
    line.className = "error-line";
    line.textContent = message;
    slot.appendChild(line);
    slot.hidden = false;
  }

  function findControl(path) {
    var control = form.querySelector('[data-path="' + CSS.escape(path) + '"]');
    return control && visible(control) ? control : null;
  }

  function findGroup(path) {
    return form.querySelector('[data-error-for="' + CSS.escape(path) + '"]');
  }

  function groupSlot(group) {
    var slots = group.querySelectorAll("[data-error-slot]");
    for (var i = 0; i < slots.length; i++) {
      if (slots[i].closest("[data-error-for]") === group) return slots[i];
    }
    return null;
  }

  function labelFor(path) {
    return LABELS[path.join(".")] || LABELS[path[path.length - 1]] || path[path.length - 1];
  }

  function describePath(path) {
    if (path[0] === "rewards" && path.length > 1 && /^\d+$/.test(path[1])) {
      var rest = path.length > 2 ? ": " + labelFor(path.slice(2)) : "";
      return "Reward " + (Number(path[1]) + 1) + rest;
    }
    return labelFor(path);
  }

  /* Puts each message next to its input (or its group when the input is not on the page); returns what it placed. */
  function showErrors(fields) {
    clearErrors("");
    var errors = [];
    flatten(fields, [], errors);
    var placed = [];
    errors.forEach(function (error) {
      var message = FRIENDLIER[error.message] || error.message;
      var control = error.path.length ? findControl(error.path.join(".")) : null;
      if (control) {
        var slot = document.getElementById(control.id + "-error");
        appendMessage(slot, message);
        control.setAttribute("aria-invalid", "true");
        describedBy(control, slot.id, true);
        placed.push({ error: error, message: message, target: control });
        return;
      }
      for (var depth = error.path.length; depth > 0; depth--) {
        var group = findGroup(error.path.slice(0, depth).join("."));
        var groupError = group && groupSlot(group);
        if (groupError && visible(groupError.parentNode)) {
          var rest = error.path.slice(depth);
          var redundant = rest.length === 1 && rest[0] === error.path[depth - 1]; // {"rewards": {"rewards": [...]}}
          var prefix = rest.length && !redundant ? labelFor(rest) + ": " : "";
          appendMessage(groupError, prefix + message);
          describedBy(group, groupError.id, true);
          placed.push({ error: error, message: prefix + message, target: groupError });
          return;
        }
      }
      placed.push({ error: error, message: message, target: null });
    });

    errorSummaryList.textContent = "";
    placed.forEach(function (item) {
      var li = document.createElement("li");
      var text = (item.error.path.length ? describePath(item.error.path) + ": " : "") + item.message;
      if (item.target) {
        var link = document.createElement("a");
        link.href = "#" + item.target.id;
        link.textContent = text;
        link.addEventListener("click", function (event) {
          event.preventDefault();
          focusError(item.target);
        });
        li.appendChild(link);
      } else {
        li.textContent = text;
      }
      errorSummaryList.appendChild(li);
    });
    errorSummary.hidden = placed.length === 0;

    var invalid = Array.prototype.filter.call(form.querySelectorAll('[aria-invalid="true"]'), visible);
    if (invalid.length) {
      invalid[0].focus();
    } else {
      errorSummary.focus();
    }
  }

  function focusError(target) {
    if (target.matches("input, select, textarea, button")) {
      target.focus();
    } else {
      target.setAttribute("tabindex", "-1");
      target.focus();
    }
  }

  /* Clears the messages whose path starts with prefix ("" for all). */
  function clearErrors(prefix) {
    function matches(path) {
      return !prefix || path === prefix || path.indexOf(prefix + ".") === 0;
    }
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (control) {
      if (!matches(control.getAttribute("data-path") || "")) return;
      control.removeAttribute("aria-invalid");
      describedBy(control, control.id + "-error", false);
      var slot = document.getElementById(control.id + "-error");
      slot.textContent = "";
      slot.hidden = true;
    });
    form.querySelectorAll("[data-error-for]").forEach(function (group) {
      if (!matches(group.getAttribute("data-error-for"))) return;
      var slot = groupSlot(group);
      if (!slot) return;
      describedBy(group, slot.id, false);
      slot.textContent = "";
      slot.hidden = true;
    });
    if (!prefix) {
      errorSummaryList.textContent = "";
      errorSummary.hidden = true;
    }
  }

  // ---------------------------------------------------------------- save

  function markDirty() {
    if (state.loaded && !state.saving) setStatus("Unsaved changes");
  }

  form.addEventListener("input", markDirty);
  form.addEventListener("change", markDirty);

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (state.saving) return;
    state.saving = true;
    saveButton.setAttribute("aria-disabled", "true");
    saveButton.textContent = "Saving…";
    setStatus("Saving…");
    try {
      var answer = await api("PUT", "/api/admin/settings", readForm());
      hideBanner();
      clearErrors("");
      var focused = document.activeElement && document.activeElement.getAttribute("data-path");
      fillForm(answer.settings); // as the server normalised it ("5" becomes "5.00")
      var again = focused && findControl(focused);
      if (again && again !== document.activeElement) again.focus(); // the row it was in was drawn again
      setStatus("Saved (version " + answer.version + ")", "success");
    } catch (error) {
      if (error.status === 422 && error.fields) {
        setStatus("Not saved: some settings need attention.", "critical");
        showErrors(error.fields);
      } else {
        setStatus("Not saved.", "critical");
        bannerFor(error);
        if (error.status === 422) showErrors({ _schema: [error.message] });
      }
    } finally {
      state.saving = false;
      saveButton.removeAttribute("aria-disabled");
      saveButton.textContent = "Save";
    }
  });

  // ---------------------------------------------------------------- tabs: Programme and Support

  var tabs = Array.prototype.slice.call(document.querySelectorAll('#tabs [role="tab"]'));

  function selectTab(tab, focus) {
    tabs.forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    });
    if (focus) tab.focus();
    if (tab.id === "tab-support") support.opened();
  }

  tabs.forEach(function (tab, index) {
    tab.addEventListener("click", function () { selectTab(tab, false); });
    tab.addEventListener("keydown", function (event) {
      var next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  });

  // ---------------------------------------------------------------- support desk

  /* Look-up, audited point changes with undo, CSV, parked deliveries and API keys, through /api/admin/support/.
   * Nothing is fetched until the Support tab is first opened. */
  var support = (function () {
    var BASE = "/api/admin/support/";
    var REASONS = (document.getElementById("admin").getAttribute("data-reason-codes") || "other").split(",");
    var REASON_LABELS = {
      goodwill: "Goodwill", correction: "Correction", refund: "Refund", fraud: "Fraud", duplicate: "Duplicate",
      other: "Other"
    };
    var KIND_LABELS = {
      earn: "Earned", bonus: "Bonus", reverse: "Reversed", redeem: "Redeemed", return: "Returned", adjust: "Adjusted"
    };
    var current = null; // the member on show: {customer_id, ...}
    var opened = false;
    var pendingKeys = {}; // form id -> Idempotency-Key kept until the server answers, so a retry cannot apply twice
    var undoTarget = null;
    var undoReturn = null;

    document.querySelectorAll("[data-reasons]").forEach(function (select) {
      REASONS.forEach(function (code) {
        var option = document.createElement("option");
        option.value = code;
        option.textContent = REASON_LABELS[code] || code;
        select.appendChild(option);
      });
    });

    function el(id) { return document.getElementById(id); }

    function say(id, text, tone) {
      var status = el(id);
      status.textContent = text;
      status.className = "status" + (tone ? " status-" + tone : "");
    }

    function newKey() {
      if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
      return "k-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
    }

    async function write(formId, path, body) {
      pendingKeys[formId] = pendingKeys[formId] || newKey();
      try {
        var answer = await call("POST", path, body, { "Idempotency-Key": pendingKeys[formId] });
        delete pendingKeys[formId];
        return answer;
      } catch (error) {
        if (error.status !== 0) delete pendingKeys[formId]; // refused: a corrected request is a new one
        throw error;
      }
    }

    async function call(method, path, body, extraHeaders) {
      if (!extraHeaders) return api(method, BASE + path, body);
      var headers = { Accept: "application/json", Authorization: "Bearer " + (await sessionToken()) };
      Object.keys(extraHeaders).forEach(function (name) { headers[name] = extraHeaders[name]; });
      var init = { method: method, headers: headers, credentials: "same-origin" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      var response;
      try {
        response = await fetch(BASE + path, init);
      } catch (error) {
        throw new ApiError(0, "network", "The loyalty app could not be reached. Check your connection and try again.");
      }
      var data = await response.json().catch(function () { return null; });
      if (!response.ok) {
        var problem = (data && data.error) || {};
        throw new ApiError(response.status, problem.code || "http_" + response.status,
          problem.message || "The loyalty app answered " + response.status + ".");
      }
      return data;
    }

    // -------------------------------------------------------------- errors next to fields

    function clearFormErrors(form) {
      form.querySelectorAll('[aria-invalid="true"]').forEach(function (control) {
        control.removeAttribute("aria-invalid");
        describedBy(control, control.id + "-error", false);
      });
      form.querySelectorAll(".field-error").forEach(function (slot) {
        slot.textContent = "";
        slot.hidden = true;
      });
    }

    function fieldError(form, control, message) {
      var slot = el(control ? control.id + "-error" : "s-" + form.id.replace(/-form$/, "") + "-error");
      appendMessage(slot, message);
      if (control) {
        control.setAttribute("aria-invalid", "true");
        describedBy(control, slot.id, true);
      }
      return control;
    }

    /* The service answers one sentence naming what it is about: [pattern, field name] pairs find the field. */
    function showRefusal(form, error, patterns) {
      var message = error.message;
      var control = null;
      for (var i = 0; i < patterns.length && error.status !== 401; i++) {
        if (patterns[i][0].test(message)) {
          control = form.querySelector('[name="' + patterns[i][1] + '"]');
          break;
        }
      }
      if (error.status === 401) bannerFor(error);
      fieldError(form, control, message);
      (control || form.querySelector("button[type=submit]")).focus();
    }

    function integerOrNull(input) {
      var text = input.value.trim();
      if (!text) return null;
      return /^[-+]?\d+$/.test(text) ? Number(text) : NaN;
    }

    // -------------------------------------------------------------- member

    function signed(points) {
      return (points > 0 ? "+" : points < 0 ? "−" : "") + integerFormat.format(Math.abs(points));
    }

    function explain(line, undone) {
      if (line.source === "support") {
        var parts = ["Support action " + line.support_action_id, "by " + (line.by || "?")];
        if (line.order) parts.push("order " + line.order);
        parts.push((REASON_LABELS[line.reason_code] || line.reason_code) + ": " + (line.note || ""));
        if (undone) parts.push("undone by action " + undone);
        return parts.join(" · ");
      }
      var what = [];
      if (line.source === "refund") what.push("Refund " + line.refund_id + (line.order ? " on order " + line.order : ""));
      else if (line.source === "redemption") what.push("Reward redemption " + line.redemption_id);
      else if (line.order) what.push("Order " + line.order);
      else if (line.order_id) what.push("Order " + line.order_id);
      if (line.explanation) what.push(line.explanation);
      return what.join(" · ") || line.source;
    }

    function showMember(card, actions) {
      current = card;
      var undoneBy = {};
      var isUndo = {};
      (actions || []).forEach(function (a) {
        undoneBy[a.id] = a.undone_by;
        isUndo[a.id] = a.action === "undo";
      });
      el("member-title").textContent = (card.name ? card.name + " · " : "") + (card.email || "no email") +
        " · customer " + card.customer_id;
      document.querySelectorAll("[data-member]").forEach(function (dd) {
        var value = card[dd.getAttribute("data-member")];
        dd.textContent = typeof value === "number" ? integerFormat.format(value) : "–";
      });
      var rows = el("history-rows");
      rows.textContent = "";
      card.history.forEach(function (line) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-posting", line.id);
        var when = new Date(line.at);
        [
          isNaN(when) ? line.at : when.toLocaleString(),
          KIND_LABELS[line.kind] || line.kind,
          signed(line.points),
          integerFormat.format(line.balance_after),
          explain(line, undoneBy[line.support_action_id])
        ].forEach(function (text, index) {
          var td = document.createElement("td");
          td.textContent = text;
          if (index === 2 || index === 3) td.className = "num";
          tr.appendChild(td);
        });
        var cell = document.createElement("td");
        var id = line.support_action_id;
        if (id && !undoneBy[id] && !isUndo[id]) {
          var button = document.createElement("button");
          button.type = "button";
          button.className = "btn";
          button.setAttribute("data-undo", id);
          button.innerHTML = 'Undo<span class="visually-hidden"> action </span>';
          button.querySelector("span").textContent = " action " + id;
          cell.appendChild(button);
        }
        tr.appendChild(cell);
        rows.appendChild(tr);
      });
      el("history-empty").hidden = card.history.length > 0;
      el("csv-link").href = BASE + "members/" + card.customer_id + "/history?format=csv";
      showRewards(card);
      el("member").hidden = false;
    }

    // The member's rewards; an issued, unused one can be cancelled (code deleted, points returned).
    function showRewards(card) {
      var box = el("member-rewards");
      if (!box) {
        box = document.createElement("div");
        box.id = "member-rewards";
        el("member").appendChild(box);
      }
      box.textContent = "";
      var heading = document.createElement("h3");
      heading.textContent = "Rewards";
      box.appendChild(heading);
      var list = document.createElement("ul");
      (card.redemptions || []).forEach(function (r) {
        var li = document.createElement("li");
        li.textContent = r.reward + " · " + integerFormat.format(r.points) + " points · " + r.status +
          (r.code ? " · " + r.code : "") + " ";
        if (r.status === "issued") {
          var button = document.createElement("button");
          button.type = "button";
          button.className = "btn";
          button.setAttribute("data-cancel-redemption", r.id);
          button.textContent = "Cancel reward " + r.id;
          button.addEventListener("click", async function () {
            var note = window.prompt("Why is reward " + r.id + " cancelled? (kept in the history)");
            if (!note || !note.trim()) return;
            try {
              await call("POST", "redemptions/" + r.id + "/cancel", {reason_code: "other", note: note.trim()});
              await loadMember("customer_id=" + card.customer_id);
            } catch (error) {
              window.alert(error.message || String(error));
            }
          });
          li.appendChild(button);
        }
        list.appendChild(li);
      });
      if (!list.children.length) {
        var none = document.createElement("p");
        none.textContent = "No rewards redeemed.";
        box.appendChild(none);
      } else {
        box.appendChild(list);
      }
    }

    async function loadMember(query) {
      var card = await call("GET", "members?" + query);
      var trail = await call("GET", "actions?customer_id=" + card.customer_id);
      showMember(card, trail.actions);
      return card;
    }

    function reload() {
      return loadMember("customer_id=" + current.customer_id);
    }

    el("find-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = event.currentTarget;
      clearFormErrors(form);
      var email = el("s-find-email").value.trim();
      var customer = el("s-find-customer").value.trim();
      if (!email && !customer) {
        fieldError(form, el("s-find-email"), "Enter an email or a customer ID.");
        el("s-find-email").focus();
        return;
      }
      if (customer && !/^\d+$/.test(customer)) {
        fieldError(form, el("s-find-customer"), "A customer ID is a number.");
        el("s-find-customer").focus();
        return;
      }
      say("find-status", "Looking…");
      try {
        var card = await loadMember(customer ? "customer_id=" + customer : "email=" + encodeURIComponent(email));
        say("find-status", "Found customer " + card.customer_id + ": " + integerFormat.format(card.balance) +
          " points.", "success");
      } catch (error) {
        el("member").hidden = true;
        current = null;
        say("find-status", error.status === 404 ? "No member found." : error.message, "critical");
        if (error.status === 401) bannerFor(error);
      }
    });

    el("adjust-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = event.currentTarget;
      clearFormErrors(form);
      var points = integerOrNull(el("s-adjust-points"));
      if (points === null || isNaN(points) || points === 0) {
        fieldError(form, el("s-adjust-points"), "Enter a whole number of points other than 0.");
        el("s-adjust-points").focus();
        return;
      }
      try {
        var action = await write(form.id, "members/" + current.customer_id + "/adjustments", {
          points: points, reason_code: el("s-adjust-reason").value, note: el("s-adjust-note").value
        });
        form.reset();
        await reload();
        say("member-status", "Adjusted by " + signed(action.points) + ". New balance: " +
          integerFormat.format(action.balance_after) + ".", "success");
      } catch (error) {
        showRefusal(form, error, [[/reason_code/, "reason_code"], [/note/, "note"], [/points/, "points"]]);
      }
    });

    el("reverse-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = event.currentTarget;
      clearFormErrors(form);
      var order = el("s-reverse-order").value.trim();
      var points = integerOrNull(el("s-reverse-points"));
      if (!/^\d+$/.test(order)) {
        fieldError(form, el("s-reverse-order"), "Enter the order's numeric ID.");
        el("s-reverse-order").focus();
        return;
      }
      if (isNaN(points) || (points !== null && points < 1)) {
        fieldError(form, el("s-reverse-points"), "Enter a whole number of points, or leave it empty.");
        el("s-reverse-points").focus();
        return;
      }
      try {
        var action = await write(form.id, "orders/" + order + "/reversals", {
          points: points, reason_code: el("s-reverse-reason").value, note: el("s-reverse-note").value
        });
        form.reset();
        await reload();
        say("member-status", "Order " + order + " reversed: " + signed(action.points) + " points.", "success");
      } catch (error) {
        showRefusal(form, error, [
          [/reason_code/, "reason_code"], [/note/, "note"], [/^points/, "points"], [/order/, "order_id"]
        ]);
      }
    });

    el("history-rows").addEventListener("click", function (event) {
      var button = event.target.closest("[data-undo]");
      if (!button) return;
      undoTarget = Number(button.getAttribute("data-undo"));
      undoReturn = button;
      var form = el("undo-form");
      clearFormErrors(form);
      form.reset();
      el("undo-action-id").textContent = String(undoTarget);
      form.hidden = false;
      el("s-undo-reason").value = REASONS.indexOf("correction") >= 0 ? "correction" : REASONS[0];
      el("s-undo-note").focus();
    });

    function closeUndo() {
      el("undo-form").hidden = true;
      if (undoReturn && document.contains(undoReturn)) undoReturn.focus();
      undoTarget = null;
    }

    el("undo-cancel").addEventListener("click", closeUndo);
    el("undo-form").addEventListener("keydown", function (event) {
      if (event.key === "Escape") closeUndo();
    });

    el("undo-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = event.currentTarget;
      clearFormErrors(form);
      try {
        var action = await write(form.id + ":" + undoTarget, "actions/" + undoTarget + "/undo", {
          reason_code: el("s-undo-reason").value, note: el("s-undo-note").value
        });
        form.hidden = true;
        await reload();
        say("member-status", "Action " + action.undo_of + " undone (" + signed(action.points) + "). New balance: " +
          integerFormat.format(action.balance_after) + ".", "success");
        el("member-status").focus();
      } catch (error) {
        showRefusal(form, error, [[/reason_code/, "reason_code"], [/note/, "note"]]);
      }
    });

    el("csv-link").addEventListener("click", async function (event) {
      event.preventDefault();
      if (!current) return;
      say("member-status", "Preparing the CSV…");
      try {
        var response = await fetch(BASE + "members/" + current.customer_id + "/history?format=csv", {
          headers: { Authorization: "Bearer " + (await sessionToken()) }, credentials: "same-origin"
        });
        if (!response.ok) throw new Error("The loyalty app answered " + response.status + ".");
        var url = URL.createObjectURL(await response.blob());
        var link = document.createElement("a");
        link.href = url;
        link.download = "points-" + current.customer_id + ".csv";
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
        say("member-status", "History downloaded.", "success");
      } catch (error) {
        say("member-status", "The CSV could not be downloaded. " + error.message, "critical");
      }
    });
    el("csv-link").addEventListener("keydown", function (event) {
      if (event.key === " ") {
        event.preventDefault();
        event.currentTarget.click();
      }
    });

    // -------------------------------------------------------------- parked deliveries

    async function loadParked() {
      var list = el("parked-list");
      try {
        var answer = await call("GET", "parked");
        list.textContent = "";
        answer.parked.forEach(function (d) {
          var li = document.createElement("li");
          var text = document.createElement("span");
          text.className = "support-item-text";
          text.textContent = d.topic + " · received " + new Date(d.received_at).toLocaleString() + " · " +
            d.attempts + " attempt(s) · " + (d.reason || "");
          var button = document.createElement("button");
          button.type = "button";
          button.className = "btn";
          button.setAttribute("data-replay", d.id);
          button.innerHTML = 'Replay<span class="visually-hidden"></span>';
          button.querySelector("span").textContent = " delivery " + d.id;
          li.appendChild(text);
          li.appendChild(button);
          list.appendChild(li);
        });
        el("parked-empty").hidden = answer.parked.length > 0;
      } catch (error) {
        say("parked-status", error.message, "critical");
      }
    }

    el("parked-refresh").addEventListener("click", loadParked);
    el("parked-list").addEventListener("click", async function (event) {
      var button = event.target.closest("[data-replay]");
      if (!button) return;
      var id = button.getAttribute("data-replay");
      say("parked-status", "Replaying delivery " + id + "…");
      try {
        var answer = await call("POST", "parked/" + id + "/replay");
        await loadParked();
        say("parked-status", "Delivery " + id + " replayed: " + answer.status + ".",
          answer.status === "parked" ? "critical" : "success");
      } catch (error) {
        say("parked-status", error.message, "critical");
      }
      el("parked-refresh").focus();
    });

    // -------------------------------------------------------------- API keys

    async function loadKeys() {
      var list = el("keys-list");
      try {
        var answer = await call("GET", "keys");
        list.textContent = "";
        answer.keys.forEach(function (k) {
          var li = document.createElement("li");
          var text = document.createElement("span");
          text.className = "support-item-text";
          text.textContent = k.name + " · lsk_" + k.prefix + "_… · " + (k.scope === "write" ? "read and write" : "read") +
            " · created " + new Date(k.created_at).toLocaleDateString() +
            (k.revoked_at ? " · revoked " + new Date(k.revoked_at).toLocaleDateString() : "");
          li.appendChild(text);
          if (!k.revoked_at) {
            var button = document.createElement("button");
            button.type = "button";
            button.className = "btn btn-critical";
            button.setAttribute("data-revoke", k.id);
            button.innerHTML = 'Revoke<span class="visually-hidden"></span>';
            button.querySelector("span").textContent = " key " + k.name;
            li.appendChild(button);
          }
          list.appendChild(li);
        });
        el("keys-empty").hidden = answer.keys.length > 0;
      } catch (error) {
        say("keys-status", error.message, "critical");
      }
    }

    el("key-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = event.currentTarget;
      clearFormErrors(form);
      el("new-key").hidden = true;
      if (!el("s-key-name").value.trim()) {
        fieldError(form, el("s-key-name"), "Give the key a name, such as the tool that will use it.");
        el("s-key-name").focus();
        return;
      }
      try {
        var key = await call("POST", "keys", { name: el("s-key-name").value.trim(), scope: el("s-key-scope").value });
        form.reset();
        el("new-key-value").value = key.key;
        el("new-key").hidden = false;
        await loadKeys();
        say("keys-status", "Key " + key.name + " created.", "success");
        el("new-key-value").focus();
        el("new-key-value").select();
      } catch (error) {
        showRefusal(form, error, [[/name/, "name"], [/scope/, "scope"]]);
      }
    });

    el("keys-list").addEventListener("click", async function (event) {
      var button = event.target.closest("[data-revoke]");
      if (!button) return;
      try {
        var key = await call("POST", "keys/" + button.getAttribute("data-revoke") + "/revoke");
        await loadKeys();
        say("keys-status", "Key " + key.name + " revoked.", "success");
      } catch (error) {
        say("keys-status", error.message, "critical");
      }
      el("s-key-name").focus();
    });

    return {
      opened: function () {
        if (opened) return;
        opened = true;
        loadParked();
        loadKeys();
      }
    };
  })();

  // ---------------------------------------------------------------- start

  async function start() {
    var results = await Promise.allSettled([api("GET", "/api/admin/summary"), api("GET", "/api/admin/settings")]);
    document.getElementById("loading").hidden = true;
    var summary = results[0], settings = results[1];
    if (summary.status === "fulfilled") showSummary(summary.value);
    if (settings.status === "fulfilled") {
      fillForm(settings.value.settings);
      form.hidden = false;
      state.loaded = true;
      document.getElementById("tabs").hidden = false; // the session is good: staff may use the support desk too
    }
    var failed = [settings, summary].filter(function (r) { return r.status === "rejected"; })[0];
    if (failed) bannerFor(failed.reason instanceof ApiError ? failed.reason : new ApiError(0, "error", String(failed.reason)));
  }

  start();
})();
