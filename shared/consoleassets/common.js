// Ferry console helpers, shared by the hub console and the environment
// console: DOM building, fetch with problem documents, a server-sent-events
// reader that can send headers, and formatting. No dependencies.
"use strict";

const Ferry = (() => {
  let authHeaders = () => ({});

  // el builds an element: el("a", {href: "/x", class: "c", onclick: fn}, "text", child).
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") n.addEventListener(k.slice(2), v);
      else if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else if (v === true) n.setAttribute(k, "");
      else n.setAttribute(k, String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === undefined || kid === null || kid === false) continue;
      n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return n;
  }

  function clear(n) { while (n && n.firstChild) n.removeChild(n.firstChild); return n; }
  function $(sel, root) { return (root || document).querySelector(sel); }

  // Problem is a failed call: an RFC 9457 problem document, or a network error (status 0).
  class Problem extends Error {
    constructor(p) {
      super(p.detail || p.title || "request failed");
      Object.assign(this, p);
    }
  }

  // describe turns a Problem into a sentence that says what happened and what to do.
  function describe(p, what) {
    const pre = what ? what + ": " : "";
    if (!(p instanceof Problem)) return pre + String(p && p.message || p);
    if (p.status === 0) return pre + "the server could not be reached. Check that it is running, then retry.";
    const detail = p.detail || p.title || ("HTTP " + p.status);
    switch (p.status) {
      case 401: return pre + detail + " Sign in again.";
      case 403: return pre + "you are not allowed to do this (" + detail + "). Ask an organization admin for the permission.";
      case 404: return pre + detail + " It may have been removed; reload the page.";
      case 409: return pre + detail;
      case 502: case 503: case 504: return pre + detail + " Retry in a moment.";
    }
    return pre + detail;
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({Accept: "application/json"}, authHeaders(), opts.headers || {});
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let resp;
    try {
      resp = await fetch(path, {method: opts.method || "GET", headers, body, credentials: "same-origin", cache: "no-store"});
    } catch (e) {
      throw new Problem({status: 0, code: "network", detail: String(e)});
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = {detail: text.slice(0, 300)}; }
    }
    if (!resp.ok) {
      const p = new Problem(Object.assign({status: resp.status, title: resp.statusText}, data || {}));
      if (resp.status === 401 && opts.onUnauthorized !== false && Ferry.onUnauthorized) Ferry.onUnauthorized(p);
      throw p;
    }
    return data;
  }

  // watch streams /console/events for the given API paths and calls
  // onUpdate(path, status, body) whenever one changes. It reconnects after
  // 2 s on any failure. onAuth(problem) is called (and watching stops) when
  // the session is no longer valid.
  function watch(paths, onUpdate, opts) {
    opts = opts || {};
    let stopped = false, ctrl = null;
    const q = paths.map(p => "watch=" + encodeURIComponent(p)).join("&");
    async function run() {
      while (!stopped) {
        ctrl = new AbortController();
        try {
          const resp = await fetch("/console/events?" + q, {headers: Object.assign({Accept: "text/event-stream"}, authHeaders()),
            credentials: "same-origin", cache: "no-store", signal: ctrl.signal});
          if (resp.status === 401) {
            stopped = true;
            const p = new Problem(Object.assign({status: 401}, await resp.json().catch(() => ({}))));
            if (opts.onAuth) opts.onAuth(p); else if (Ferry.onUnauthorized) Ferry.onUnauthorized(p);
            return;
          }
          if (!resp.ok || !resp.body) throw new Error("events: HTTP " + resp.status);
          if (opts.onState) opts.onState(true);
          const reader = resp.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const {value, done} = await reader.read();
            if (done) break;
            buf += dec.decode(value, {stream: true});
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const raw = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let event = "message", data = "";
              for (const line of raw.split("\n")) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
              }
              if (!data) continue;
              let msg;
              try { msg = JSON.parse(data); } catch (e) { continue; }
              if (event === "update") onUpdate(msg.path, msg.status, msg.body);
              else if (event === "auth") {
                stopped = true;
                const p = new Problem(Object.assign({status: 401}, msg.body || {}));
                if (opts.onAuth) opts.onAuth(p); else if (Ferry.onUnauthorized) Ferry.onUnauthorized(p);
                return;
              }
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        if (opts.onState) opts.onState(false);
        if (!stopped) await new Promise(r => setTimeout(r, 2000));
      }
    }
    run();
    return {close() { stopped = true; if (ctrl) ctrl.abort(); }};
  }

  function pad(n) { return String(n).padStart(2, "0"); }
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function ago(iso) {
    if (!iso) return "";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (isNaN(s)) return "";
    if (s < -60) return "in " + ago(new Date(Date.now() + s * 1000).toISOString()).replace(" ago", "");
    if (s < 5) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  // when renders a time as "3 min ago" with the exact time alongside.
  function when(iso) {
    if (!iso) return el("span", {class: "muted"}, "—");
    return el("time", {datetime: iso, title: fmtTime(iso)}, fmtTime(iso), " ", el("span", {class: "muted small"}, "(" + ago(iso) + ")"));
  }

  const statusKinds = {
    CREATED: "info", TO_BE_VALIDATED: "warn", ACCEPTED: "ok", REJECTED: "err", ERROR: "err", CANCELLED: "muted",
    online: "ok", offline: "muted", PENDING: "warn", ACCEPTING: "info", DECIDED: "ok", CONNECTED: "ok", DISCONNECTED: "muted",
  };
  const statusText = {TO_BE_VALIDATED: "TO BE VALIDATED"};
  function badge(status) {
    const s = String(status || "UNKNOWN");
    return el("span", {class: "badge badge-" + (statusKinds[s] || "muted")}, statusText[s] || s);
  }
  function presence(status) {
    const on = status === "online";
    return el("span", {}, el("span", {class: "dot " + (on ? "dot-online" : "dot-offline"), "aria-hidden": "true"}), on ? "online" : "offline");
  }

  // say puts a message into a region: kind is error, warn, ok or info.
  function say(region, kind, ...parts) {
    if (typeof region === "string") region = $(region);
    if (!region) return;
    clear(region);
    if (!parts.length || parts[0] === "") { region.className = "msg"; return; }
    region.className = "msg msg-" + kind;
    region.append(el("p", {}, ...parts));
  }

  function table(headers, rows, opts) {
    opts = opts || {};
    if (!rows.length) return el("div", {class: "empty table-wrap"}, opts.empty || "Nothing here yet.");
    return el("div", {class: "table-wrap"},
      el("table", {},
        opts.caption ? el("caption", {class: "visually-hidden"}, opts.caption) : null,
        el("thead", {}, el("tr", {}, headers.map(h => el("th", {scope: "col"}, h)))),
        el("tbody", {}, rows.map(r => el("tr", r.attrs || {}, (r.cells || r).map(c => el("td", {}, c)))))));
  }

  function csvCell(v) {
    const s = v === undefined || v === null ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function downloadCSV(name, header, rows) {
    const text = [header, ...rows].map(r => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
    const url = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
    const a = el("a", {href: url, download: name});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    return text;
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      if (button) { const t = button.textContent; button.textContent = "Copied"; setTimeout(() => button.textContent = t, 1500); }
      return true;
    } catch (e) {
      return false;
    }
  }

  return {
    el, clear, $, Problem, describe, api, watch, fmtTime, ago, when, badge, presence, say, table, downloadCSV, copy,
    setAuth(fn) { authHeaders = fn; },
    onUnauthorized: null,
  };
})();
