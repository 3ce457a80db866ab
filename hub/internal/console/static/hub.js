// Hub console pages. Data comes from the hub's REST API with the token kept
// in this tab's sessionStorage; live updates from /console/events.
"use strict";

(() => {
  const {el, clear, $, api, watch, describe, say, badge, when, table, presence} = Ferry;
  const page = document.body.dataset.page;
  const store = window.sessionStorage;
  const K = {token: "ferry.hub.token", who: "ferry.hub.who", org: "ferry.hub.org"};
  let watcher = null;
  let org = null;          // the selected organization {id, name}
  let envNames = {};       // environment id -> name, for the selected org

  Ferry.setAuth(() => store.getItem(K.token) ? {Authorization: "Bearer " + store.getItem(K.token)} : {});
  Ferry.onUnauthorized = () => {
    if (watcher) watcher.close();
    store.removeItem(K.token);
    location.assign("/console/signin?expired=1&next=" + encodeURIComponent(location.pathname + location.search));
  };

  function orgPath(rest) { return "/api/v1/orgs/" + encodeURIComponent(org.id) + rest; }
  // The hub answers at most 100 items a page: all follows nextOffset and
  // returns every item of a list.
  async function all(path, opts) {
    const sep = path.includes("?") ? "&" : "?";
    let out = await api(path + sep + "limit=100", opts), items = out.items || [];
    for (let pages = 1; out.nextOffset && pages < 1000; pages++) {
      out = await api(path + sep + "limit=100&offset=" + out.nextOffset, opts);
      items = items.concat(out.items || []);
    }
    return items;
  }
  // restOfAudit follows nextAfterSeq from a first page of an audit query
  // (path without afterSeq) and returns every entry.
  async function restOfAudit(path, first) {
    let items = first.items || [], next = first.nextAfterSeq;
    for (let pages = 1; next && pages < 1000; pages++) {
      const out = await api(path + "&afterSeq=" + next);
      items = items.concat(out.items || []);
      next = out.nextAfterSeq;
    }
    return items;
  }
  function envName(id) { return envNames[id] || id || "—"; }
  function problemOf(status, body) {
    return new Ferry.Problem(Object.assign({status}, body && typeof body === "object" ? body : {detail: String(body)}));
  }
  function claims(tok) {
    try {
      const p = tok.split(".");
      if (p.length !== 3) return null;
      return JSON.parse(atob(p[1].replace(/-/g, "+").replace(/_/g, "/")));
    } catch (e) { return null; }
  }

  // ---- sign in ----
  function signinPage() {
    const msg = $("#signin-msg");
    const q = new URLSearchParams(location.search);
    const next = (q.get("next") || "").startsWith("/console/") && !(q.get("next") || "").startsWith("/console/signin") ? q.get("next") : "/console/";
    if (q.get("expired")) say(msg, "warn", "Your session has expired or was refused. Sign in again.");
    $("#organization").focus();
    async function finish(token, who) {
      store.setItem(K.token, token);
      try {
        await api("/api/v1/orgs", {onUnauthorized: false});
      } catch (e) {
        store.removeItem(K.token);
        throw e;
      }
      store.setItem(K.who, who);
      location.assign(next);
    }
    $("#password-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {org: $("#organization").value.trim(), username: $("#username").value.trim(), password: $("#password").value};
      const missing = [["organization", body.org], ["username", body.username], ["password", body.password]].filter(([, v]) => !v).map(([k]) => k);
      if (missing.length) { say(msg, "error", "Enter your " + missing.join(", ") + "."); $("#" + missing[0]).focus(); return; }
      say(msg, "info", "Signing in…");
      try {
        const s = await api("/api/v1/auth/session", {method: "POST", body, onUnauthorized: false});
        const c = claims(s.token) || {};
        await finish(s.token, c.name || body.username);
      } catch (e) {
        say(msg, "error", e.status === 401 ? "Sign-in refused: the organization, username or password is wrong. Check them and try again."
          : describe(e, "Sign-in failed").replace(" Sign in again.", ""));
        $("#password").focus();
      }
    });
    $("#token-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const tok = $("#token").value.trim();
      if (!tok) { say(msg, "error", "Paste an API token."); $("#token").focus(); return; }
      say(msg, "info", "Checking the token…");
      try {
        await finish(tok, "API token");
      } catch (e) {
        say(msg, "error", e.status === 401 ? "The hub does not accept this token: it is unknown, revoked or mistyped. Check it and try again."
          : describe(e, "Sign-in failed").replace(" Sign in again.", ""));
        $("#token").focus();
      }
    });
  }

  // ---- common to signed-in pages ----
  async function common() {
    if (!store.getItem(K.token)) {
      location.assign("/console/signin?next=" + encodeURIComponent(location.pathname + location.search));
      return false;
    }
    $("#who").textContent = store.getItem(K.who) || "";
    api("/api/v1/auth/me").then(me => {
      $("#who").textContent = me.kind === "platform" ? "Platform admin" : (me.displayName || me.username || "API token") + (me.kind === "token" ? " (API token)" : "");
    }).catch(() => {});
    $("#sign-out").addEventListener("click", () => {
      store.removeItem(K.token);
      store.removeItem(K.who);
      location.assign("/console/signin");
    });
    let orgs = [];
    try {
      orgs = await all("/api/v1/orgs");
    } catch (e) {
      say("#banner", "error", describe(e, "The organizations could not be listed"));
      return false;
    }
    const sel = $("#org-select");
    clear(sel);
    for (const o of orgs) sel.append(el("option", {value: o.id}, o.name));
    const want = new URLSearchParams(location.search).get("org") || store.getItem(K.org);
    org = orgs.find(o => o.id === want || o.name === want) || orgs[0] || null;
    sel.hidden = orgs.length < 2;
    if (!org) {
      sel.hidden = true;
      return "no-org";
    }
    sel.value = org.id;
    store.setItem(K.org, org.id);
    sel.addEventListener("change", () => { store.setItem(K.org, sel.value); location.reload(); });
    try {
      for (const e of await all(orgPath("/environments"))) envNames[e.id] = e.name;
    } catch (e) { /* names fall back to ids */ }
    // Users and tokens pages appear when the hub offers them to this caller.
    api(orgPath("/users"), {onUnauthorized: false}).then(() => { $("#nav-users").hidden = false; }).catch(() => {});
    api(orgPath("/tokens"), {onUnauthorized: false}).then(() => { $("#nav-tokens").hidden = false; }).catch(() => {});
    return true;
  }

  function live(paths, onUpdate) {
    if (watcher) watcher.close();
    watcher = watch(paths, onUpdate, {onState(ok) {
      const b = $("#banner");
      if (ok) { if (b.dataset.live === "lost") { clear(b); b.dataset.live = ""; } return; }
      b.dataset.live = "lost";
      say(b, "warn", "Live updates stopped: the hub cannot be reached. Retrying every 2 seconds; what you see may be out of date.");
    }});
  }

  // ---- map ----
  function mapPage(state) {
    if (state === "no-org") {
      clear($("#map"));
      say("#map-msg", "info", "There is no organization yet. As the platform admin, create one below.");
      $("#create-org").hidden = false;
      $("#create-org-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          const o = await api("/api/v1/orgs", {method: "POST", body: {name: $("#org-name").value.trim()}});
          store.setItem(K.org, o.id);
          location.reload();
        } catch (e) { say("#map-msg", "error", describe(e, "The organization was not created")); }
      });
      return;
    }
    let envs = null, insts = null;
    function render() {
      if (!envs || !insts) return;
      const box = $("#map");
      box.setAttribute("aria-busy", "false");
      const online = insts.filter(i => i.status === "online").length;
      clear(box).append(el("div", {class: "map"},
        el("div", {class: "map-org"}, el("span", {class: "kind"}, "Organization"), el("strong", {}, org.name),
          el("div", {class: "small"}, online + " of " + insts.length + " installations online")),
        envs.length ? el("div", {class: "map-stem", "aria-hidden": "true"}) : null,
        envs.length ? el("div", {class: "map-envs"}, envs.map(e => {
          const mine = insts.filter(i => (i.environments || []).some(x => x.id === e.id));
          return el("section", {class: "map-env", "data-env": e.name, "aria-label": "Environment " + e.name},
            el("span", {class: "kind"}, "Environment"), el("h2", {}, e.name),
            mine.length ? el("ul", {}, mine.map(i => el("li", {class: "installation", "data-installation-id": i.id, "data-status": i.status},
              presence(i.status), " · ", el("strong", {}, i.hostname || i.id),
              el("div", {class: "small muted"}, "agent " + (i.agentVersion || "?") + " · last seen ", i.lastSeen ? Ferry.ago(i.lastSeen) || "just now" : "never"))))
              : el("p", {class: "small muted"}, "No installation linked. ", el("a", {href: "/console/environments"}, "Create a link token")));
        })) : el("p", {class: "muted"}, "This organization has no environment yet. ", el("a", {href: "/console/environments"}, "Create one"))));
    }
    live([orgPath("/environments"), orgPath("/installations")], (path, status, body) => {
      if (status !== 200) { say("#map-msg", "error", describe(problemOf(status, body), "The map could not be read")); return; }
      say("#map-msg", "", "");
      if (path.endsWith("/environments")) {
        envs = body.items || [];
        for (const e of envs) envNames[e.id] = e.name;
      } else insts = body.items || [];
      render();
    });
  }

  // ---- environments and link tokens ----
  function environmentsPage() {
    let envs = [], insts = [];
    function render() {
      const box = $("#envs");
      box.setAttribute("aria-busy", "false");
      clear(box).append(table(["Environment", "Id", "Installations", "Created", ""], envs.map(e => {
        const mine = insts.filter(i => (i.environments || []).some(x => x.id === e.id));
        return {attrs: {"data-env": e.name}, cells: [el("strong", {}, e.name), el("span", {class: "mono small"}, e.id),
          mine.length ? mine.map(i => el("div", {}, presence(i.status), " ", i.hostname || i.id)) : el("span", {class: "muted"}, "none linked"),
          when(e.createdAt),
          el("button", {type: "button", class: "link-token", "data-env": e.name, onclick: (ev) => linkToken(e, ev.target)}, "Create link token")]};
      }), {caption: "Environments", empty: "No environment yet: create one below."}));
    }
    async function linkToken(e, btn) {
      btn.disabled = true;
      try {
        const t = await api(orgPath("/environments/" + encodeURIComponent(e.id) + "/link-tokens"), {method: "POST", body: {}});
        const box = $("#token-result");
        box.hidden = false;
        clear($("#token-result-text")).append("A one-time link token for ", el("strong", {}, e.name), " (", el("span", {class: "mono"}, t.id),
          "). It expires ", when(t.expiresAt), ". It is shown only now.");
        $("#agent-command").textContent = t.agentCommand;
        box.focus();
      } catch (err) {
        say("#envs-msg", "error", describe(err, "The link token was not created"));
      } finally { btn.disabled = false; }
    }
    $("#copy-command").addEventListener("click", async (ev) => {
      if (!await Ferry.copy($("#agent-command").textContent, ev.target)) {
        const r = document.createRange(); r.selectNodeContents($("#agent-command"));
        const s = getSelection(); s.removeAllRanges(); s.addRange(r);
        say("#envs-msg", "info", "Copying is not allowed here: the command is selected; press Ctrl+C to copy it.");
      }
    });
    $("#create-env-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = $("#env-name").value.trim();
      if (!name) { say("#envs-msg", "error", "Enter the new environment's name."); $("#env-name").focus(); return; }
      try {
        await api(orgPath("/environments"), {method: "POST", body: {name}});
        $("#env-name").value = "";
        say("#envs-msg", "ok", "Environment " + name + " created. Create a link token to link its agent.");
      } catch (e) { say("#envs-msg", "error", describe(e, "The environment was not created")); }
    });
    live([orgPath("/environments"), orgPath("/installations")], (path, status, body) => {
      if (status !== 200) { say("#envs-msg", "error", describe(problemOf(status, body), "The environments could not be read")); return; }
      if (path.endsWith("/environments")) envs = body.items || []; else insts = body.items || [];
      render();
    });
  }

  // ---- installations ----
  function installationsPage() {
    live([orgPath("/installations")], (path, status, body) => {
      const box = $("#installations");
      box.setAttribute("aria-busy", "false");
      const msg = $("#inst-msg");
      if (status !== 200) { say(msg, "error", describe(problemOf(status, body), "The installations could not be read")); msg.dataset.readError = "1"; return; }
      if (msg.dataset.readError) { say(msg, "", ""); delete msg.dataset.readError; } // read again: that error is over (an action's message stays)
      clear(box).append(table(["Installation", "Environments", "Status", "Agent version", "Last seen", "Linked", ""], (body.items || []).map(i => ({
        attrs: {"data-installation-id": i.id, "data-status": i.status},
        cells: [el("div", {}, el("strong", {}, i.hostname || "(no hostname)"), el("div", {class: "mono small muted"}, i.id)),
          (i.environments || []).map(e => e.name || e.id).join(", ") || "—", presence(i.status), i.agentVersion || "—",
          when(i.lastSeen), when(i.createdAt),
          el("div", {class: "row-actions"},
            el("button", {type: "button", class: "history", onclick: () => history(i)}, "History"),
            el("button", {type: "button", class: "rotate", title: "Give the agent a new credential; the current one stops opening links when the overlap ends",
              onclick: (ev) => rotate(i, ev.target)}, "Rotate credential"),
            el("button", {type: "button", class: "danger revoke", onclick: (ev) => revoke(i, ev.target)}, "Revoke"))]})),
        {caption: "Installations", empty: "No installation is linked yet. Create a link token on the Environments page."}));
    });
    async function history(i) {
      const name = i.hostname || i.id;
      const box = $("#inst-history");
      box.hidden = false;
      box.dataset.installationId = i.id;
      $("#inst-history-title").textContent = "Connection history of " + name + " (" + i.id + ")";
      const list = clear($("#inst-history-list"));
      try {
        const r = await api(orgPath("/installations/" + encodeURIComponent(i.id) + "/connections?limit=50"));
        list.append(table(["When", "Event", "Why it closed", "From"], (r.items || []).map(e => ({
          attrs: {"data-event": e.event},
          cells: [when(e.at), badge(e.event), e.reason || "—", el("span", {class: "mono small"}, e.remote)]})),
          {caption: "Connection history", empty: "No link recorded yet."}));
        box.scrollIntoView({block: "nearest"});
      } catch (e) {
        list.append(el("p", {class: "msg msg-error"}, describe(e, "The history could not be read")));
      }
    }
    async function rotate(i, btn) {
      const name = i.hostname || i.id;
      if (!confirm("Rotate the credential of " + name + "? The hub makes a new one and sends it to the agent; " +
        "the current one keeps opening links only until the overlap ends.")) return;
      btn.disabled = true;
      try {
        const r = await api(orgPath("/installations/" + encodeURIComponent(i.id) + "/_rotate-credential"), {method: "POST"});
        const detail = r.detail ? r.detail.charAt(0).toUpperCase() + r.detail.slice(1) + "." : "";
        delete $("#inst-msg").dataset.readError;
        say("#inst-msg", r.agentNotified ? "ok" : "warn", "Credential of " + name + " rotated. " + detail);
      } catch (e) {
        delete $("#inst-msg").dataset.readError;
        say("#inst-msg", "error", describe(e, "The credential was not rotated"));
      } finally {
        btn.disabled = false;
      }
    }
    async function revoke(i, btn) {
      const name = i.hostname || i.id;
      const envs = (i.environments || []).map(e => e.name || e.id).join(", ") || "its environments";
      if (!confirm("Revoke the installation " + name + "? Its credential is deleted and its agent disconnected and stopped; " +
        envs + " get no promotions until an agent is linked again with a new link token.")) return;
      btn.disabled = true;
      try {
        await api(orgPath("/installations/" + encodeURIComponent(i.id)), {method: "DELETE"});
        delete $("#inst-msg").dataset.readError;
        say("#inst-msg", "ok", "Installation " + name + " revoked: its agent was disconnected. To link " + envs + " again, create a link token on the Environments page.");
      } catch (e) {
        btn.disabled = false;
        delete $("#inst-msg").dataset.readError;
        say("#inst-msg", "error", describe(e, "The installation was not revoked"));
      }
    }
  }

  // ---- promotions ----
  function promotionsPage() {
    const q = new URLSearchParams(location.search);
    const f = {status: $("#f-status"), sourceEnv: $("#f-source"), targetEnv: $("#f-target"), apiId: $("#f-api")};
    for (const [id, name] of Object.entries(envNames)) {
      f.sourceEnv.append(el("option", {value: id}, name));
      f.targetEnv.append(el("option", {value: id}, name));
    }
    for (const [k, input] of Object.entries(f)) input.value = q.get(k) || "";
    function start() {
      const p = new URLSearchParams();
      for (const [k, input] of Object.entries(f)) if (input.value.trim()) p.set(k, input.value.trim());
      history.replaceState(null, "", "/console/promotions" + (p.toString() ? "?" + p : ""));
      const box = $("#promotions");
      box.setAttribute("aria-busy", "true");
      live([orgPath("/promotions" + (p.toString() ? "?" + p : ""))], (path, status, body) => {
        box.setAttribute("aria-busy", "false");
        if (status !== 200) { say("#promos-msg", "error", describe(problemOf(status, body), "The promotions could not be listed")); return; }
        say("#promos-msg", "", "");
        clear(box).append(table(["API", "From → To", "Requester", "Status", "Delivery", "Requested", "Updated"], (body.items || []).map(x => ({
          attrs: {"data-promotion-id": x.id},
          cells: [el("a", {href: "/console/promotions/" + encodeURIComponent(x.id)}, x.apiName + (x.apiVersion ? " " + x.apiVersion : "")),
            envName(x.sourceEnvId) + " → " + envName(x.targetEnvId), x.requester || "—", badge(x.status),
            (x.delivery || "").replace(/_/g, " ") || "—", when(x.createdAt), when(x.updatedAt)]})),
        {caption: "Promotions", empty: "No promotion matches these filters."}));
      });
    }
    $("#promo-filters").addEventListener("submit", (ev) => { ev.preventDefault(); start(); });
    $("#f-clear").addEventListener("click", () => { for (const i of Object.values(f)) i.value = ""; start(); });
    start();
  }

  // ---- one promotion and its timeline ----
  function promotionPage() {
    const id = document.body.dataset.id;
    let promo = null, entries = [];
    function renderProps() {
      const p = promo;
      $("#promo-title").textContent = "Promotion of " + p.apiName + (p.apiVersion ? " " + p.apiVersion : "");
      const rows = [["Status", badge(p.status)], ["From → To", envName(p.sourceEnvId) + " → " + envName(p.targetEnvId)],
        ["Requester", p.requester || "—"], ["API", el("span", {}, p.apiName, " ", el("span", {class: "mono small muted"}, p.apiId))],
        ["Cross ID", el("span", {class: "mono small"}, p.crossId || "—")], ["Delivery", (p.delivery || "—").replace(/_/g, " ")],
        ["Requested", when(p.createdAt)], ["Delivered", when(p.deliveredAt)], ["Decided", when(p.decidedAt)],
        ["API in the target", p.targetApiId ? el("span", {class: "mono small"}, p.targetApiId) : "—"], ["Reason", p.reason || "—"]];
      clear($("#promo-props"));
      for (const [k, v] of rows) $("#promo-props").append(el("dt", {}, k), el("dd", {}, v));
      $("#cancel-promo").hidden = !["CREATED", "TO_BE_VALIDATED"].includes(p.status);
    }
    function renderTimeline() {
      if (!promo) return;
      const lane = (e) => e.envId === promo.sourceEnvId ? 0 : e.envId === promo.targetEnvId ? 2 : 1;
      const heads = [envName(promo.sourceEnvId) + " (source)", "Hub", envName(promo.targetEnvId) + " (target)"];
      const box = clear($("#timeline"));
      if (!entries.length) { box.append(el("p", {class: "muted"}, "No audit entry for this promotion yet.")); return; }
      box.append(el("ol", {class: "timeline", "aria-label": "Timeline"},
        el("li", {class: "lanes-head", "aria-hidden": "true"}, el("span", {}, "Time"), heads.map(h => el("span", {}, h))),
        entries.map(e => {
          const cells = [el("span", {}), el("span", {}), el("span", {})];
          cells[lane(e)] = el("div", {class: "lane-entry"}, el("strong", {}, e.event.replace(/_/g, " ").toLowerCase()),
            el("span", {class: "visually-hidden"}, " in " + heads[lane(e)]),
            el("div", {class: "small"}, "by " + (e.actor || "—")), e.detail ? el("div", {class: "small muted"}, e.detail) : null);
          return el("li", {"data-event": e.event}, el("span", {class: "small"}, Ferry.fmtTime(e.time), el("div", {class: "muted small"}, "#" + e.seq)), cells);
        })));
    }
    $("#cancel-promo").addEventListener("click", async () => {
      if (!confirm("Cancel this promotion request? The target environment's task is withdrawn.")) return;
      try {
        promo = await api(orgPath("/promotions/" + encodeURIComponent(id) + "/_cancel"), {method: "POST", body: {}});
        renderProps();
        say("#promo-msg", "ok", "The request was cancelled.");
      } catch (e) { say("#promo-msg", "error", describe(e, "The request was not cancelled")); }
    });
    const auditPath = orgPath("/audit?promotionId=" + encodeURIComponent(id) + "&limit=100");
    let auditRound = 0;
    live([orgPath("/promotions/" + encodeURIComponent(id)), auditPath], async (path, status, body) => {
      if (status !== 200) { say("#promo-msg", "error", describe(problemOf(status, body), "The promotion could not be read")); return; }
      if (path.includes("/audit")) {
        // A long trail comes in pages of 100; a newer update wins.
        const round = ++auditRound;
        let got = body.items || [];
        if (body.nextAfterSeq) {
          try { got = await restOfAudit(auditPath, body); } catch (e) { /* show the first page */ }
        }
        if (round !== auditRound) return;
        entries = got;
      } else { promo = body; renderProps(); }
      renderTimeline();
    });
  }

  // ---- audit ----
  function auditPage() {
    const f = {event: $("#a-event"), env: $("#a-env"), actor: $("#a-actor"), promotionId: $("#a-promotion"), since: $("#a-since"), until: $("#a-until")};
    for (const [id, name] of Object.entries(envNames)) f.env.append(el("option", {value: id}, name));
    let rows = [], next = 0;
    function params() {
      const p = new URLSearchParams({limit: "100"});
      for (const [k, input] of Object.entries(f)) {
        const v = input.value.trim();
        if (!v) continue;
        p.set(k, (k === "since" || k === "until") ? new Date(v).toISOString().replace(/\.\d{3}Z$/, "Z") : v);
      }
      return p;
    }
    function render() {
      const box = $("#audit");
      box.setAttribute("aria-busy", "false");
      clear(box).append(table(["Seq", "Time", "Event", "Actor", "Environment", "Promotion", "Detail"], rows.map(e => ({
        attrs: {"data-seq": e.seq},
        cells: [String(e.seq), Ferry.fmtTime(e.time), el("span", {class: "mono small"}, e.event), e.actor || "—", e.envId ? envName(e.envId) : "—",
          e.promotionId ? el("a", {href: "/console/promotions/" + encodeURIComponent(e.promotionId), class: "mono small"}, e.promotionId) : "—", e.detail || ""]})),
      {caption: "Audit entries", empty: "No audit entry matches these filters."}));
      $("#more").hidden = !next;
    }
    async function load(more) {
      const p = params();
      if (more) p.set("afterSeq", String(next));
      try {
        const out = await api(orgPath("/audit?" + p));
        rows = more ? rows.concat(out.items || []) : (out.items || []);
        next = out.nextAfterSeq || 0;
        say("#audit-msg", "", "");
        render();
      } catch (e) { say("#audit-msg", "error", describe(e, "The audit trail could not be read")); }
    }
    $("#audit-filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
    $("#a-clear").addEventListener("click", () => { for (const i of Object.values(f)) i.value = ""; load(false); });
    $("#more").addEventListener("click", () => load(true));
    $("#export").addEventListener("click", () => {
      if (!rows.length) { say("#audit-msg", "info", "Nothing to export: no entry is loaded."); return; }
      const csv = Ferry.downloadCSV("ferry-audit-" + org.name + ".csv", ["seq", "time", "event", "actor", "envId", "envName", "promotionId", "detail", "prevHash", "hash"],
        rows.map(e => [e.seq, e.time, e.event, e.actor, e.envId || "", e.envId ? envName(e.envId) : "", e.promotionId || "", e.detail || "", e.prevHash, e.hash]));
      document.body.dataset.lastCsv = csv;
      say("#audit-msg", "ok", "Exported " + rows.length + " entries as CSV.");
    });
    $("#verify").addEventListener("click", async () => {
      try {
        const v = await api(orgPath("/audit/_verify"));
        if (v.ok) say("#audit-msg", "ok", "The audit chain is intact: " + v.checked + " entries checked.");
        else say("#audit-msg", "error", "The audit chain is broken at entry #" + v.brokenAtSeq + ": " + v.reason + ". Entries from there on may have been altered; tell the hub's operator.");
      } catch (e) { say("#audit-msg", "error", describe(e, "The chain could not be verified")); }
    });
    load(false);
  }

  // ---- users and roles (organization admins) ----
  async function usersPage() {
    let users = [], bindings = [], roles = [];
    const userName = (id) => (users.find(u => u.id === id) || {}).username || id;
    function render() {
      const box = $("#users");
      box.setAttribute("aria-busy", "false");
      clear(box).append(table(["User", "Roles", "Password", "Status", "Added", ""], users.map(u => ({
        attrs: {"data-user": u.username},
        cells: [el("div", {}, el("strong", {}, u.username), u.displayName ? el("div", {class: "small muted"}, u.displayName) : null),
          el("ul", {class: "small"}, bindings.filter(b => b.userId === u.id).map(b => el("li", {},
            b.role + " on " + (b.scope === "ORGANIZATION" ? "the organization" : b.scope === "ENVIRONMENT" ? envName(b.envId) : "API " + b.crossId + " in " + envName(b.envId)), " ",
            el("button", {type: "button", class: "small", "aria-label": "Remove " + b.role + " from " + u.username, onclick: () => unbind(b)}, "Remove")))),
          u.hasPassword ? "set" : "none", u.disabled ? badge("disabled") : el("span", {class: "badge badge-ok"}, "active"), when(u.createdAt),
          el("button", {type: "button", onclick: () => toggle(u)}, u.disabled ? "Enable" : "Disable")]})),
      {caption: "Users", empty: "No user yet: add one below."}));
      const sel = clear($("#b-user"));
      for (const u of users) sel.append(el("option", {value: u.id}, u.username));
      renderRoles();
    }
    function renderRoles() {
      const scope = $("#b-scope").value;
      $("#b-env-row").hidden = scope === "ORGANIZATION";
      $("#b-cross-row").hidden = scope !== "API";
      const sel = clear($("#b-role"));
      for (const r of roles.filter(r => r.scope === scope)) sel.append(el("option", {value: r.name}, r.name + (r.builtIn ? "" : " (custom)")));
    }
    async function load() {
      try {
        [users, bindings, roles] = await Promise.all([all(orgPath("/users")), all(orgPath("/role-bindings")), all(orgPath("/roles"))]);
        render();
      } catch (e) { say("#users-msg", "error", describe(e, "The users could not be listed")); }
    }
    async function unbind(b) {
      try { await api(orgPath("/role-bindings/" + encodeURIComponent(b.id)), {method: "DELETE"}); say("#users-msg", "ok", "Role removed."); load(); }
      catch (e) { say("#users-msg", "error", describe(e, "The role was not removed")); }
    }
    async function toggle(u) {
      try { await api(orgPath("/users/" + encodeURIComponent(u.id)), {method: "PATCH", body: {disabled: !u.disabled}}); load(); }
      catch (e) { say("#users-msg", "error", describe(e, "The user was not changed")); }
    }
    const envSel = $("#b-env");
    for (const [id, name] of Object.entries(envNames)) envSel.append(el("option", {value: id}, name));
    $("#b-scope").addEventListener("change", renderRoles);
    $("#user-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {username: $("#u-name").value.trim(), displayName: $("#u-display").value.trim(), password: $("#u-password").value};
      if (!body.username) { say("#users-msg", "error", "Enter a username."); $("#u-name").focus(); return; }
      try {
        await api(orgPath("/users"), {method: "POST", body});
        ev.target.reset();
        say("#users-msg", "ok", "User " + body.username + " added. Give them a role so they can do something.");
        load();
      } catch (e) { say("#users-msg", "error", describe(e, "The user was not added")); }
    });
    $("#bind-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const scope = $("#b-scope").value;
      const body = {userId: $("#b-user").value, scope, role: $("#b-role").value};
      if (scope !== "ORGANIZATION") body.env = $("#b-env").value;
      if (scope === "API") body.crossId = $("#b-cross").value.trim();
      try {
        await api(orgPath("/role-bindings"), {method: "POST", body});
        say("#users-msg", "ok", userName(body.userId) + " is now " + body.role + ".");
        load();
      } catch (e) { say("#users-msg", "error", describe(e, "The role was not given")); }
    });
    load();
  }

  // ---- personal access tokens (organization admins) ----
  async function tokensPage() {
    let users = [], tokens = [];
    const userName = (id) => (users.find(u => u.id === id) || {}).username || id;
    function render() {
      const box = $("#tokens");
      box.setAttribute("aria-busy", "false");
      clear(box).append(table(["Name", "User", "Created", "Last used", "Expires", "Status", ""], tokens.map(t => ({
        attrs: {"data-token-id": t.id},
        cells: [el("strong", {}, t.name), userName(t.userId), when(t.createdAt), t.lastUsedAt ? when(t.lastUsedAt) : el("span", {class: "muted"}, "never"),
          t.expiresAt ? when(t.expiresAt) : "never", t.revokedAt ? el("span", {class: "badge badge-err"}, "REVOKED") : el("span", {class: "badge badge-ok"}, "ACTIVE"),
          t.revokedAt ? "" : el("button", {type: "button", class: "danger", onclick: () => revoke(t)}, "Revoke")]})),
      {caption: "Tokens", empty: "No personal access token yet."}));
      const sel = clear($("#t-user"));
      for (const u of users) sel.append(el("option", {value: u.id}, u.username));
    }
    async function load() {
      try {
        [users, tokens] = await Promise.all([all(orgPath("/users")), all(orgPath("/tokens"))]);
        render();
      } catch (e) { say("#tokens-msg", "error", describe(e, "The tokens could not be listed")); }
    }
    async function revoke(t) {
      if (!confirm("Revoke the token " + t.name + "? Whatever uses it stops working at once.")) return;
      try { await api(orgPath("/tokens/" + encodeURIComponent(t.id)), {method: "DELETE"}); say("#tokens-msg", "ok", "Token " + t.name + " revoked."); load(); }
      catch (e) { say("#tokens-msg", "error", describe(e, "The token was not revoked")); }
    }
    $("#copy-token").addEventListener("click", (ev) => Ferry.copy($("#token-secret").textContent, ev.target));
    $("#token-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = $("#t-name").value.trim(), days = $("#t-days").value.trim();
      if (!name) { say("#tokens-msg", "error", "Name the token after what it is for."); $("#t-name").focus(); return; }
      if (days && !/^\d+$/.test(days)) { say("#tokens-msg", "error", "Expiry is a whole number of days, or empty for never."); $("#t-days").focus(); return; }
      const body = {userId: $("#t-user").value, name};
      if (days) body.expiresInSeconds = Number(days) * 86400;
      try {
        const t = await api(orgPath("/tokens"), {method: "POST", body});
        $("#token-secret").textContent = t.token;
        $("#token-created").hidden = false;
        $("#token-created").focus();
        ev.target.reset();
        load();
      } catch (e) { say("#tokens-msg", "error", describe(e, "The token was not created")); }
    });
    load();
  }

  const pages = {map: mapPage, environments: environmentsPage, installations: installationsPage, promotions: promotionsPage,
    promotion: promotionPage, audit: auditPage, users: usersPage, tokens: tokensPage};
  if (page === "signin") signinPage();
  else common().then(state => {
    if (!state) return;
    if (state === "no-org" && page !== "map") { location.assign("/console/"); return; }
    (pages[page] || (() => {}))(state);
  });
})();
