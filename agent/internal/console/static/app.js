// Environment console pages. Data comes from the agent's REST API
// (/api/v1/…) with the session cookie; live updates from /console/events.
"use strict";

(() => {
  const {el, clear, $, api, watch, describe, say, badge, when, table} = Ferry;
  const page = document.body.dataset.page;
  const envName = document.body.dataset.envName || "this environment";
  const ACTIVE = ["CREATED", "TO_BE_VALIDATED"];
  let watcher = null;

  Ferry.onUnauthorized = () => {
    if (watcher) watcher.close();
    const next = location.pathname + location.search;
    location.assign("/console/signin?expired=1&next=" + encodeURIComponent(next));
  };

  // ---- common to signed-in pages ----
  function renderBanner(st) {
    const b = $("#banner");
    if (!b || page === "signin") return;
    clear(b);
    if (st && !st.hubReachable) {
      b.append(el("div", {class: "msg msg-warn"}, el("p", {},
        el("strong", {}, "The hub is unreachable"), " (" + (st.link || "disconnected") + "). ",
        "Tasks already delivered here can still be accepted or rejected, and your session keeps working until it expires. ",
        "Promotion requests and sign-in need the hub.")));
    }
    if (st && st.environments && st.environments.length) {
      $("#env-name").textContent = st.environments.map(e => e.name).join(", ");
    }
  }

  function renderTaskCount(tasks) {
    const c = $("#task-count");
    if (!c) return;
    const n = (tasks && tasks.items || []).length;
    c.hidden = n === 0;
    c.textContent = String(n);
    c.setAttribute("aria-label", n + " pending");
  }

  async function common(extraPaths, onUpdate) {
    $("#sign-out").addEventListener("click", async () => {
      try { await api("/console/session", {method: "DELETE", onUnauthorized: false}); } catch (e) { /* signed out anyway */ }
      location.assign("/console/signin");
    });
    api("/api/v1/session").then(s => { $("#who").textContent = "Signed in as " + (s.name || s.userId); }).catch(() => {});
    const paths = ["/api/v1/status", "/api/v1/tasks", ...extraPaths];
    watcher = watch(paths, (path, status, body) => {
      if (path === "/api/v1/status" && status === 200) renderBanner(body);
      if (path === "/api/v1/tasks" && status === 200) renderTaskCount(body);
      if (onUpdate) onUpdate(path, status, body);
    });
  }

  function problemOf(status, body) {
    return new Ferry.Problem(Object.assign({status}, body && typeof body === "object" ? body : {detail: String(body)}));
  }

  // ---- sign in ----
  function signinPage() {
    const form = $("#signin-form");
    const msg = $("#signin-msg");
    const q = new URLSearchParams(location.search);
    if (q.get("expired")) say(msg, "warn", "Your session has expired or is not valid here. Sign in again.");
    (q.get("expired") ? $("#password") : $("#username")).focus();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {username: $("#username").value.trim(), password: $("#password").value, organization: $("#organization").value.trim()};
      const missing = Object.entries(body).filter(([, v]) => !v).map(([k]) => k);
      if (missing.length) {
        say(msg, "error", "Enter your " + missing.join(", ") + ".");
        $("#" + missing[0]).focus();
        return;
      }
      const btn = $("#signin-submit");
      btn.disabled = true;
      say(msg, "info", "Signing in…");
      try {
        await api("/console/session", {method: "POST", body, onUnauthorized: false});
        location.assign(document.body.dataset.next || "/console/apis");
      } catch (e) {
        btn.disabled = false;
        if (e.code === "hub_unreachable") {
          clear(msg); msg.className = "msg msg-error";
          msg.append(el("p", {}, el("strong", {}, "The hub cannot be reached. "), e.detail),
            el("p", {}, el("a", {href: "/console/tasks"}, "Go to Tasks with your existing session")));
        } else {
          say(msg, "error", describe(e, "Sign-in failed").replace(" Sign in again.", ""));
        }
        $("#password").focus();
      }
    });
  }

  // ---- APIs list ----
  function apisPage() {
    let items = [];
    const box = $("#apis");
    function render() {
      const f = $("#filter").value.trim().toLowerCase();
      const shown = items.filter(a => !f || (a.name || "").toLowerCase().includes(f));
      clear(box).append(table(["Name", "Version", "Definition", "Cross ID", "Updated"], shown.map(a => [
        el("a", {href: "/console/apis/" + encodeURIComponent(a.id), "data-api-name": a.name}, a.name || a.id),
        a.version || "—", a.definitionVersion || "—", el("span", {class: "mono small"}, a.crossId || "—"), when(a.updatedAt),
      ]), {caption: "APIs", empty: items.length ? "No API matches the filter." : "This environment has no API yet."}));
      box.setAttribute("aria-busy", "false");
    }
    async function load() {
      box.setAttribute("aria-busy", "true");
      try {
        const out = await api("/api/v1/apis");
        items = out.items || [];
        say("#apis-msg", "", "");
        render();
      } catch (e) {
        say("#apis-msg", "error", describe(e, "The APIs could not be listed"),
          e.status >= 500 ? " Check that this environment's API management is running, then choose Refresh." : "");
        clear(box);
        box.setAttribute("aria-busy", "false");
      }
    }
    $("#filter").addEventListener("input", render);
    $("#refresh").addEventListener("click", load);
    load();
    common([]);
  }

  // ---- one API, General, Promote ----
  function apiPage() {
    const id = document.body.dataset.apiId;
    let theAPI = null, promos = [], targets = null, lastRequest = null;
    const dlg = $("#promote-dialog");

    function mine(p) { return theAPI && (p.apiId === theAPI.id || (theAPI.crossId && p.crossId === theAPI.crossId)); }

    function renderProps(a) {
      const props = $("#api-props");
      clear(props);
      const rows = [["Name", a.name], ["Version", a.version || "—"], ["Description", a.description || "—"],
        ["Definition", a.definitionVersion || "—"], ["ID", el("span", {class: "mono"}, a.id)],
        ["Cross ID", el("span", {class: "mono"}, a.crossId || "— (assigned on first promotion)")], ["Updated", when(a.updatedAt)]];
      for (const [k, v] of rows) props.append(el("dt", {}, k), el("dd", {}, v));
    }

    function renderPromos() {
      const list = promos.filter(p => mine(p) && p.direction !== "incoming");
      clear($("#api-promos")).append(table(["To", "Status", "Requester", "Requested", "Updated", "Reason"], list.map(p => ({
        attrs: {"data-promotion-id": p.id},
        cells: [p.targetEnvName || p.targetEnvId, badge(p.status), p.requester || "—", when(p.createdAt), when(p.updatedAt), p.reason || ""],
      })), {caption: "Promotions of this API", empty: "This API has not been promoted from " + envName + " yet."}));
    }

    // blocking returns the active promotion of this API to env, if any.
    function blocking(envId) {
      return promos.find(p => mine(p) && p.targetEnvId === envId && ACTIVE.includes(p.status));
    }

    function renderTargets() {
      const sel = $("#promote-env");
      const keep = sel.value;
      clear(sel);
      const reasons = clear($("#promote-reasons"));
      if (!targets) return;
      sel.append(el("option", {value: ""}, targets.length ? "Choose an environment" : "No other environment in the organization"));
      let enabled = 0;
      for (const t of targets) {
        const b = blocking(t.id);
        let label = t.name;
        if (b) {
          const why = "a promotion of this API is already " + (b.status === "CREATED" ? "requested" : "waiting for validation") +
            " (requested by " + (b.requester || "someone") + ", " + Ferry.fmtTime(b.createdAt) + ")";
          label += " — unavailable: " + why;
          reasons.append(el("li", {"data-env": t.name}, t.name + ": " + why + ". Wait until " + t.name + "'s admin accepts or rejects it, or cancel it at the hub."));
        } else if (!t.online) {
          label += " (agent offline: the request waits until it connects)";
          enabled++;
        } else {
          enabled++;
        }
        sel.append(el("option", {value: t.id, disabled: !!b, "data-name": t.name}, label));
      }
      if (keep && [...sel.options].some(o => o.value === keep && !o.disabled)) sel.value = keep;
      $("#promote-submit").disabled = enabled === 0;
    }

    function renderRequest() {
      if (!lastRequest) return;
      const p = promos.find(x => x.id === lastRequest.id) || lastRequest;
      const m = $("#promote-msg");
      clear(m);
      m.className = "msg msg-ok";
      m.append(el("p", {}, "Promotion requested: ", el("strong", {}, (p.apiName || theAPI.name) + " → " + (p.targetEnvName || p.targetEnvId)),
        ". Status: ", el("span", {id: "promote-status"}, badge(p.status)), p.status === "TO_BE_VALIDATED" ? " — waiting for " + (p.targetEnvName || "the target") + "'s admin." : ""));
    }

    async function loadTargets() {
      try {
        const out = await api("/api/v1/promotion-targets");
        targets = out.items || [];
        renderTargets();
      } catch (e) {
        targets = null;
        clear($("#promote-env")).append(el("option", {value: ""}, "Environments could not be loaded"));
        $("#promote-submit").disabled = true;
        say("#promote-msg", "error", describe(e, "The organization's environments could not be loaded"),
          e.status === 503 ? " Promotion requests need the hub; try again when it is reachable." : "");
      }
    }

    $("#promote-open").addEventListener("click", async () => {
      say("#promote-msg", "", "");
      lastRequest = null;
      $("#promote-api-name").textContent = theAPI.name + (theAPI.version ? " " + theAPI.version : "");
      dlg.showModal();
      $("#promote-env").focus();
      await loadTargets();
    });
    $("#promote-cancel").addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => $("#promote-open").focus());
    $("#promote-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const sel = $("#promote-env");
      if (!sel.value) {
        say("#promote-msg", "error", "Choose the environment to promote to.");
        sel.focus();
        return;
      }
      const btn = $("#promote-submit");
      btn.disabled = true;
      say("#promote-msg", "info", "Sending the request…");
      try {
        const p = await api("/api/v1/apis/" + encodeURIComponent(id) + "/_promote", {method: "POST", body: {targetEnv: sel.value}});
        lastRequest = p;
        promos = [p, ...promos.filter(x => x.id !== p.id)];
        renderTargets();
        renderRequest();
        renderPromos();
        sel.value = "";
      } catch (e) {
        let hint = "";
        if (e.status === 409) hint = " Only one request per API and environment can be active.";
        if (e.status === 503) hint = " Promotion requests need the hub; try again when it is reachable.";
        say("#promote-msg", "error", describe(e, "The promotion was not requested"), hint);
      } finally {
        btn.disabled = false;
        renderTargets();
      }
    });

    (async () => {
      try {
        theAPI = await api("/api/v1/apis/" + encodeURIComponent(id));
        $("#api-title").textContent = theAPI.name + (theAPI.version ? " " + theAPI.version : "");
        $("#api-crumb").textContent = theAPI.name;
        document.title = theAPI.name + " · " + document.title;
        renderProps(theAPI);
        $("#promote-open").disabled = false;
        renderPromos();
      } catch (e) {
        say("#api-msg", "error", describe(e, "This API could not be read"), " ", el("a", {href: "/console/apis"}, "Back to the APIs list"));
      }
    })();
    common(["/api/v1/promotions"], (path, status, body) => {
      if (path !== "/api/v1/promotions" || status !== 200) return;
      promos = body.items || [];
      if (theAPI) { renderPromos(); renderRequest(); if (dlg.open && targets) renderTargets(); }
    });
  }

  // ---- tasks ----
  function tasksPage() {
    const box = $("#tasks");
    const decided = new Set();   // ids decided here: hidden even if a stale update lists them
    const cards = new Map();     // id -> card element
    let first = true;

    function planBlock(t, card) {
      const area = el("div", {class: "plan", "aria-live": "polite"}, el("p", {class: "muted"}, "Looking at what accepting would change…"));
      api("/console/changes/" + encodeURIComponent(t.id)).then(ch => {
        clear(area);
        if (ch.etag) card.dataset.etag = ch.etag;
        const summary = el("dl", {class: "props"}, (ch.summary || []).flatMap(f => [el("dt", {}, f.label), el("dd", {}, f.value)]));
        if (ch.action === "create") {
          card.dataset.action = "create";
          area.append(el("p", {class: "plan-action"}, el("span", {class: "badge badge-info"}, "NEW API"), " Accepting ",
            el("strong", {}, "creates a new API"), " in " + envName + "."),
          el("details", {open: true}, el("summary", {}, "What will be created"), summary));
        } else if (ch.action === "update") {
          card.dataset.action = "update";
          area.append(el("p", {class: "plan-action"}, el("span", {class: "badge badge-warn"}, "UPDATE"), " Accepting ",
            el("strong", {}, "updates the existing API " + (ch.existingApiName || ch.existingApiId)),
            " (", el("span", {class: "mono small"}, ch.existingApiId), ", found by " + (ch.matchedBy === "crossId" ? "its cross ID" : "an earlier promotion") + ")."));
          if (ch.detail) area.append(el("p", {class: "msg msg-warn"}, ch.detail));
          else if (!ch.changes.length) area.append(el("p", {}, "The incoming definition is the same as the existing one: nothing changes."));
          else {
            const rows = ch.changes.map(c => el("tr", {},
              el("td", {class: "path"}, c.path), el("td", {}, c.kind),
              el("td", {class: "before"}, c.before || ""), el("td", {class: "after"}, c.after || "")));
            area.append(el("details", {open: true}, el("summary", {}, "Changes to the existing API (" + (ch.changes.length + (ch.omitted || 0)) + ")"),
              el("div", {class: "table-wrap"}, el("table", {class: "diff"},
                el("caption", {class: "visually-hidden"}, "Changes to the existing API"),
                el("thead", {}, el("tr", {}, ["Field", "Change", "Now in " + envName, "After accepting"].map(h => el("th", {scope: "col"}, h)))),
                el("tbody", {}, rows))),
              ch.omitted ? el("p", {class: "muted small"}, ch.omitted + " more changes are not shown.") : null));
          }
          area.append(el("details", {}, el("summary", {}, "Incoming definition"), summary));
        } else {
          area.append(el("p", {class: "msg msg-warn"}, "It is not known yet whether accepting creates or updates an API: " + (ch.detail || "the API management could not be asked") + ". You can still decide; the agent looks again on accept."),
            el("details", {}, el("summary", {}, "Incoming definition"), summary));
        }
      }).catch(e => {
        clear(area).append(el("p", {class: "msg msg-warn"}, describe(e, "The change preview is not available")));
      });
      return area;
    }

    async function decide(t, card, verb, reason) {
      const buttons = card.querySelectorAll("button");
      buttons.forEach(b => b.disabled = true);
      say("#tasks-msg", "info", (verb === "accept" ? "Accepting " : "Rejecting ") + t.apiName + "…");
      try {
        // Accepting what was reviewed: the agent refuses (412) if the
        // target API changed since the preview was made.
        const headers = verb === "accept" && card.dataset.etag ? {"If-Match": '"' + card.dataset.etag + '"'} : {};
        const d = await api("/api/v1/tasks/" + encodeURIComponent(t.id) + "/_" + verb, {method: "POST", headers, body: verb === "reject" && reason ? {reason} : {}});
        decided.add(t.id);
        card.remove();
        cards.delete(t.id);
        renderTaskCount({items: [...cards.keys()]});
        if (!cards.size) renderEmpty();
        const name = t.apiName + (t.apiVersion ? " " + t.apiVersion : "");
        if (d.outcome === "ACCEPTED") {
          say("#tasks-msg", "ok", "Accepted: " + name + " was " + (d.created ? "created" : "updated") + " in " + envName + ". ",
            el("a", {href: d.targetApiId ? "/console/apis/" + encodeURIComponent(d.targetApiId) : "/console/apis"}, "Open it"), " or see the ",
            el("a", {href: "/console/apis"}, "APIs list"), ".");
        } else if (d.outcome === "REJECTED") {
          say("#tasks-msg", "ok", "Rejected: the request to promote " + name + " from " + (t.sourceEnvName || "the source") + " was rejected" + (reason ? " (" + reason + ")" : "") + ". The requester sees it in their console.");
        } else {
          say("#tasks-msg", "error", "Accepted, but the import into this environment's API management failed: " + (d.reason || "unknown error") + ". The promotion is marked as ERROR; ask for a new request once the cause is fixed.");
        }
        $("#main").focus();
      } catch (e) {
        buttons.forEach(b => b.disabled = false);
        say("#tasks-msg", "error", describe(e, "The decision was not recorded"));
        if (e.status === 412) {
          // The target API changed since the preview: show it as it is now.
          const old = card.querySelector(".plan");
          if (old) old.replaceWith(planBlock(t, card));
        }
      }
    }

    function card(t) {
      const name = t.apiName + (t.apiVersion ? " " + t.apiVersion : "");
      const c = el("article", {class: "card task", "data-task-id": t.id, "aria-labelledby": "t-" + t.id});
      const rejectForm = el("form", {class: "reject-form", hidden: true},
        el("label", {for: "reason-" + t.id}, "Reason for rejecting ", el("span", {class: "hint"}, "Optional. The requester sees it.")),
        el("textarea", {id: "reason-" + t.id, maxlength: 1024}),
        el("div", {class: "actions"},
          el("button", {type: "submit", class: "danger"}, "Reject the request"),
          el("button", {type: "button", onclick: () => { rejectForm.hidden = true; c.querySelector(".reject-open").focus(); }}, "Cancel")));
      rejectForm.addEventListener("submit", (ev) => { ev.preventDefault(); decide(t, c, "reject", rejectForm.querySelector("textarea").value.trim()); });
      c.append(
        el("h2", {id: "t-" + t.id}, "Promotion of " + name),
        el("div", {class: "meta"},
          el("span", {}, "From ", el("strong", {}, t.sourceEnvName || t.sourceEnvId)),
          el("span", {}, "Requested by ", el("strong", {}, t.requester || "unknown")),
          el("span", {}, "When ", when(t.requestedAt))),
        planBlock(t, c),
        el("div", {class: "actions"},
          el("button", {type: "button", class: "primary accept", onclick: () => decide(t, c, "accept")}, "Accept"),
          el("button", {type: "button", class: "danger reject-open", onclick: () => { rejectForm.hidden = false; rejectForm.querySelector("textarea").focus(); }}, "Reject")),
        rejectForm);
      return c;
    }

    function renderEmpty() {
      if (!box.querySelector(".card")) clear(box).append(el("div", {class: "empty table-wrap"}, "No promotion request is waiting for a decision in " + envName + "."));
    }

    function render(items) {
      items = items.filter(t => !decided.has(t.id));
      const ids = new Set(items.map(t => t.id));
      for (const [id, c] of cards) if (!ids.has(id)) { c.remove(); cards.delete(id); }
      if (!items.length) { renderEmpty(); return; }
      box.querySelectorAll(".empty, p.muted").forEach(n => n.remove());
      for (const t of items) {
        if (!cards.has(t.id)) {
          const c = card(t);
          cards.set(t.id, c);
          box.append(c);
        }
      }
    }

    common([], (path, status, body) => {
      if (path !== "/api/v1/tasks") return;
      box.setAttribute("aria-busy", "false");
      if (status !== 200) {
        say("#tasks-msg", "error", describe(problemOf(status, body), "The tasks could not be listed"));
        return;
      }
      if (first) { first = false; clear(box); }
      render(body.items || []);
    });
  }

  // ---- promotions ----
  function promotionsPage() {
    common(["/api/v1/promotions"], (path, status, body) => {
      if (path !== "/api/v1/promotions") return;
      if (status !== 200) {
        say("#promos-msg", "error", describe(problemOf(status, body), "The promotions could not be listed"));
        return;
      }
      say("#promos-msg", "", "");
      const items = body.items || [];
      const row = (p, other) => ({attrs: {"data-promotion-id": p.id}, cells: [
        el("span", {}, el("strong", {}, p.apiName), p.apiVersion ? " " + p.apiVersion : ""), other,
        p.requester || "—", badge(p.status), p.reason || "", when(p.createdAt), when(p.updatedAt)]});
      clear($("#outgoing")).append(table(["API", "To", "Requester", "Status", "Reason", "Requested", "Updated"],
        items.filter(p => p.direction !== "incoming").map(p => row(p, p.targetEnvName || p.targetEnvId)),
        {caption: "Outgoing promotions", empty: "No promotion was requested from " + envName + " yet."}));
      clear($("#incoming")).append(table(["API", "From", "Requester", "Status", "Reason", "Requested", "Updated"],
        items.filter(p => p.direction === "incoming").map(p => row(p, p.sourceEnvName || p.sourceEnvId)),
        {caption: "Incoming promotions", empty: "No promotion was requested to " + envName + " yet."}));
    });
  }

  const pages = {signin: signinPage, apis: apisPage, api: apiPage, tasks: tasksPage, promotions: promotionsPage};
  (pages[page] || (() => {}))();
})();
