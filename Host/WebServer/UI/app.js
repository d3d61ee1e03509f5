// Hangar's web UI: one page, plain ES modules, no build step. Pages are drawn from data with
// `h()` (text is always set as text, never parsed as HTML); the hash names the page.
import * as api from "./api.js";

const state = { user: null, stopPage: null };

/** Makes an element: h("button", {class: "x", onclick: f}, "text", child, ...). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const main = () => document.getElementById("main");

function showError(where, error) {
  where.replaceChildren(h("div", { class: "error", role: "alert" }, error.message || String(error)));
}

/** Runs a mutation whose answer is `{ok, msg}` (Backend.AI's); a refusal becomes an error. */
async function mutate(field, query, variables) {
  const reply = await api.gql(query, variables);
  if (!reply[field].ok) throw new Error(reply[field].msg);
  return reply[field];
}

/** A table in its scrolling frame: column titles and rows (arrays of cells, or <tr>s). */
function dataTable(titles, rows) {
  return h("div", { class: "table-host" }, h("table", {},
    h("thead", {}, h("tr", {}, titles.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((cell) => (cell instanceof Node ? cell : h("td", {}, cell)))))))));
}

function badge(status) {
  return h("span", { class: "badge status-" + String(status).toLowerCase() }, status);
}

function slotsText(json) {
  let slots = {};
  try { slots = typeof json === "string" ? JSON.parse(json || "{}") : (json || {}); } catch (_) { /* shown empty */ }
  const parts = [];
  if (slots.cpu !== undefined) parts.push(`${Number(slots.cpu)} CPU`);
  if (slots.mem !== undefined) parts.push(humanBytes(Number(slots.mem)));
  for (const [key, value] of Object.entries(slots)) {
    if (key !== "cpu" && key !== "mem" && Number(value) > 0) parts.push(`${Number(value)} ${key}`);
  }
  return parts.join(" · ");
}

/** An image as people (and the session API) write it: podman names images built here
 * localhost/NAME. */
function imageReference(i) {
  return `${i.name.replace(/^localhost\//, "")}:${i.tag}`;
}

export function humanBytes(n) {
  if (!isFinite(n)) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// MARK: - Shell

function navigation() {
  const links = [["#/sessions", "Sessions"], ["#/data", "Data"], ["#/summary", "Summary"]];
  if (state.user && (state.user.role === "admin" || state.user.role === "superadmin")) links.push(["#/admin", "Admin"]);
  const current = location.hash.split("?")[0] || "#/sessions";
  return h("nav", { class: "sidebar", "aria-label": "Pages" },
    h("div", { class: "brand" }, "Hangar"),
    h("ul", {}, links.map(([href, label]) =>
      h("li", {}, h("a", { href, "aria-current": current.startsWith(href) ? "page" : undefined }, label)))),
    h("div", { class: "who" },
      h("div", { class: "email", title: state.user.email }, state.user.email || state.user.access_key),
      h("div", { class: "role" }, state.user.role),
      h("button", { class: "link", id: "logout", onclick: async () => { await api.logout().catch(() => {}); state.user = null; route(); } }, "Log out")));
}

function frame(title, ...content) {
  document.body.replaceChildren(
    h("div", { class: "layout" }, navigation(),
      h("main", { id: "main", tabindex: "-1" }, h("h1", {}, title), ...content)));
}

// MARK: - Login

function loginPage(message) {
  const error = h("div", { class: "error", role: "alert", hidden: !message }, message || "");
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary", id: "login" }, "Log in");
  const form = h("form", { class: "login", onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      await api.login(user.value.trim(), password.value);
      state.user = (await api.loginCheck()).data;
      if (!location.hash || location.hash === "#/login") location.hash = "#/sessions";
      route();
    } catch (e) {
      error.textContent = e.status === 429 ? `Too many failed logins: ${e.message}` : e.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  } },
    h("h1", {}, "Hangar"),
    h("p", { class: "muted" }, "Log in with your email (or user name) and password."),
    h("label", { for: "username" }, "Email or user name"), user,
    h("label", { for: "password" }, "Password"), password,
    error, submit);
  document.body.replaceChildren(h("div", { class: "login-page" }, form));
  user.focus();
}

// MARK: - Sessions

const SESSION_FIELDS = "id name image type status status_info created_at occupied_slots requested_slots service_ports";

async function sessionsPage() {
  const filter = new URLSearchParams(location.hash.split("?")[1] || "");
  const statusFilter = h("select", { id: "status-filter", "aria-label": "Show" },
    [["live", "Running and pending"], ["finished", "Finished"], ["all", "All"]].map(([value, label]) =>
      h("option", { value, selected: (filter.get("show") || "live") === value }, label)));
  const search = h("input", { id: "search", type: "search", placeholder: "Filter by name", "aria-label": "Filter by name", value: filter.get("q") || "" });
  const tableHost = h("div", { class: "table-host" }, h("p", { class: "muted" }, "Loading…"));
  const launcherHost = h("div", {});
  const panelHost = h("div", { id: "panel" });
  const newButton = h("button", { class: "primary", id: "new-session", onclick: () => launcher(launcherHost, reload) }, "New session");
  frame("Sessions", h("div", { class: "toolbar" }, newButton, statusFilter, search), launcherHost, tableHost, panelHost);

  let sessions = [];
  const statuses = { live: "PENDING,SCHEDULED,PREPARING,PULLING,RUNNING,TERMINATING", finished: "TERMINATED,CANCELLED,ERROR", all: null };

  async function reload() {
    try {
      const wanted = statuses[statusFilter.value];
      const data = await api.gql(`query($status: String) { compute_session_list(limit: 100, offset: 0, status: $status) { total_count items { ${SESSION_FIELDS} } } }`,
        wanted ? { status: wanted } : {});
      sessions = data.compute_session_list.items;
      draw();
    } catch (e) { showError(tableHost, e); }
  }

  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = sessions.filter((s) => !q || s.name.toLowerCase().includes(q));
    if (!shown.length) {
      tableHost.replaceChildren(h("p", { class: "empty" }, sessions.length ? "No session matches the filter." : "No sessions yet. Start one with New session."));
      return;
    }
    tableHost.replaceChildren(h("table", { class: "sessions" },
      h("thead", {}, h("tr", {}, ["Name", "Status", "Image", "Resources", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, shown.map(sessionRow))));
  }

  function sessionRow(s) {
    let apps = [];
    try { apps = JSON.parse(s.service_ports || "[]"); } catch (_) { /* none */ }
    const running = s.status === "RUNNING";
    const actions = h("div", { class: "actions" },
      running && h("button", { onclick: () => consolePanel(panelHost, s) , "data-action": "console" }, "Console"),
      running && apps.some((a) => a.name === "ttyd") && h("button", { onclick: () => terminalPanel(panelHost, s), "data-action": "terminal" }, "Terminal"),
      running && apps.filter((a) => a.name !== "ttyd" && a.protocol === "http").map((a) =>
        h("button", { title: `Open ${a.name} in a new tab`, "data-action": "app", "data-app": a.name, onclick: () => openApp(s.name, a.name) }, a.name)),
      h("button", { onclick: () => logsPanel(panelHost, s), "data-action": "logs" }, "Logs"),
      !["TERMINATED", "CANCELLED", "TERMINATING"].includes(s.status) && h("button", { class: "danger", "data-action": "terminate", onclick: async (event) => {
        if (!confirm(`Terminate ${s.name}? Its processes end and unsaved work outside mounted folders is lost.`)) return;
        event.target.disabled = true;
        try { await api.call("DELETE", `/session/${encodeURIComponent(s.name)}`); } catch (e) { alert(e.message); event.target.disabled = false; }
      } }, "Terminate"));
    return h("tr", { dataset: { session: s.name } },
      h("td", {}, h("span", { class: "name" }, s.name), h("div", { class: "muted small" }, s.type.toLowerCase())),
      h("td", {}, badge(s.status), s.status === "PENDING" && s.status_info ? h("div", { class: "reason" }, s.status_info) : null),
      h("td", { class: "mono" }, s.image),
      h("td", {}, slotsText(s.occupied_slots !== "{}" ? s.occupied_slots : s.requested_slots)),
      h("td", {}, when(s.created_at)),
      h("td", {}, actions));
  }

  statusFilter.addEventListener("change", () => { history.replaceState(null, "", `#/sessions?show=${statusFilter.value}`); reload(); });
  search.addEventListener("input", draw);
  await reload();

  // Live status: one server-sent event stream for all my sessions, no polling here.
  const stream = api.events("/events/session?sessionName=*");
  stream.addEventListener("session_status", (event) => {
    const change = JSON.parse(event.data);
    const known = sessions.find((s) => s.id === change.sessionId);
    if (!known) { reload(); return; }
    if (known.status === change.status && known.status_info === change.reason) return;
    // A status change can bring service ports or occupied slots: read the session again.
    reload();
  });
  return () => stream.close();
}

// MARK: - Launcher

async function launcher(host, done) {
  if (host.firstChild) { host.replaceChildren(); return; }
  const form = h("form", { class: "card launcher", id: "launcher" }, h("p", { class: "muted" }, "Loading images…"));
  host.replaceChildren(form);
  let images = [], folders = [], capacity = {};
  try {
    images = (await api.gql("{ images { name tag architecture } }")).images;
    capacity = await api.call("POST", "/resource/check-presets", {});
    folders = await api.call("GET", "/folders");
  } catch (e) { showError(form, e); return; }
  // The sliders reach what the policy still allows and what one agent has free now (a
  // session's kernel runs on one agent); more would only wait in the queue.
  const bound = (slot) => {
    const left = Number(capacity.keypair_remaining?.[slot] ?? Infinity);
    const free = Number(capacity.largest_agent_remaining?.[slot] ?? 0);
    return Math.min(isNaN(left) ? Infinity : left, free);
  };
  const maxCPU = Math.max(1, Math.floor(bound("cpu")));
  const maxMemGiB = Math.max(1, Math.floor(bound("mem") / 2 ** 30));
  const capacityNote = h("p", { class: "muted small", id: "capacity-note" },
    `Up to ${maxCPU} CPU cores and ${maxMemGiB} GiB now (your policy and the largest free agent); a bigger request waits in the queue.`);
  const image = h("select", { id: "image", required: true }, images.map((i) => h("option", { value: imageReference(i) }, imageReference(i))));
  const name = h("input", { id: "session-name", placeholder: "optional, e.g. train-resnet", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{3,63}" });
  const type = h("select", { id: "session-type" }, h("option", { value: "interactive" }, "Interactive"), h("option", { value: "batch" }, "Batch"));
  const command = h("input", { id: "startup-command", placeholder: "python train.py", disabled: true });
  type.addEventListener("change", () => { command.disabled = type.value !== "batch"; command.required = type.value === "batch"; });
  const cpu = h("input", { id: "cpu", type: "range", min: 1, max: maxCPU, step: 1, value: 1 });
  const cpuOut = h("output", { for: "cpu" }, "1");
  cpu.addEventListener("input", () => { cpuOut.textContent = cpu.value; });
  const mem = h("input", { id: "mem", type: "range", min: 1, max: maxMemGiB, step: 1, value: 1 });
  const memOut = h("output", { for: "mem" }, "1 GiB");
  mem.addEventListener("input", () => { memOut.textContent = `${mem.value} GiB`; });
  const mounts = folders.map((f) => h("label", { class: "check" }, h("input", { type: "checkbox", value: f.name, name: "mount" }), f.name));
  const environ = h("textarea", { id: "environ", rows: 2, placeholder: "KEY=value, one per line" });
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", id: "launch" }, "Launch");
  form.replaceChildren(
    h("div", { class: "grid" },
      h("label", { for: "image" }, "Image"), image,
      h("label", { for: "session-name" }, "Name"), name,
      h("label", { for: "session-type" }, "Type"), type,
      h("label", { for: "startup-command" }, "Batch command"), command,
      h("label", { for: "cpu" }, "CPU cores"), h("div", { class: "range" }, cpu, cpuOut),
      h("label", { for: "mem" }, "Memory"), h("div", { class: "range" }, mem, memOut),
      h("span", { class: "label" }, "Folders"), h("div", { class: "mounts" }, mounts.length ? mounts : h("span", { class: "muted" }, "No folders yet")),
      h("label", { for: "environ" }, "Environment"), environ),
    capacityNote, error, h("div", { class: "buttons" }, submit, h("button", { type: "button", onclick: () => host.replaceChildren() }, "Cancel")));
  form.onsubmit = async (event) => {
    event.preventDefault();
    error.hidden = true;
    const env = {};
    for (const line of environ.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf("=");
      if (at < 1) { error.textContent = `Environment line "${line}" is not KEY=value`; error.hidden = false; return; }
      env[line.slice(0, at)] = line.slice(at + 1);
    }
    const body = {
      image: image.value, type: type.value, enqueueOnly: true,
      config: { resources: { cpu: cpu.value, mem: `${mem.value}g` }, mounts: mounts.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value), environ: env },
    };
    if (name.value.trim()) body.name = name.value.trim();
    if (type.value === "batch") body.startupCommand = command.value;
    submit.disabled = true;
    try {
      await api.call("POST", "/session", body);
      host.replaceChildren();
      done();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally { submit.disabled = false; }
  };
  image.focus();
}

/** Opens a web app of a session in a new tab, on its own origin (see the webserver's AppGateway). */
async function openApp(session, app) {
  // Opened now, while the click still counts, so no popup blocker stops it; pointed at the
  // app once the webserver has its address, and cut off from this page first.
  const tab = window.open("about:blank", "_blank");
  try {
    const reply = await api.openApp(session, app);
    if (!tab) { location.assign(reply.url); return; }
    tab.opener = null;
    tab.location = reply.url;
  } catch (e) {
    if (tab) tab.close();
    alert(e.message);
  }
}

// MARK: - Panels: console, terminal, logs

function panel(host, title, ...content) {
  const close = h("button", { class: "link close", "aria-label": "Close", onclick: () => { host.dispatchEvent(new Event("panel:close")); host.replaceChildren(); } }, "Close");
  host.dispatchEvent(new Event("panel:close"));
  const box = h("section", { class: "card panel", "aria-label": title }, h("header", {}, h("h2", {}, title), close), ...content);
  host.replaceChildren(box);
  return box;
}

// A plot the code drew (Backend.AI's media record: {"type", "data"} with the bytes in base64).
function mediaItem(text) {
  try {
    const media = JSON.parse(text);
    if (/^image\/(png|jpeg|gif|svg\+xml)$/.test(media.type) && typeof media.data === "string") {
      return h("img", { class: "media", alt: "Plot from the code", src: `data:${media.type};base64,${media.data}` });
    }
  } catch (_) { /* shown as text below */ }
  return h("span", { class: "muted" }, "[media output]\n");
}

function consolePanel(host, s) {
  const code = h("textarea", { id: "code", rows: 6, spellcheck: "false", placeholder: "print('hello')   (Ctrl+Enter runs)" });
  const output = h("pre", { id: "console-output", class: "output", "aria-live": "polite" });
  const run = h("button", { class: "primary", id: "run" }, "Run");
  panel(host, `Console — ${s.name}`, code, h("div", { class: "buttons" }, run), output);
  const execute = () => {
    run.disabled = true;
    output.replaceChildren();
    const ws = api.socket(`/stream/session/${encodeURIComponent(s.name)}/execute`);
    ws.onopen = () => ws.send(JSON.stringify({ code: code.value, mode: "query" }));
    ws.onmessage = (event) => {
      const result = JSON.parse(event.data);
      for (const [stream, text] of result.console || []) {
        if (stream === "stdout" || stream === "stderr") output.append(h("span", { class: stream }, text));
        else if (stream === "media") output.append(mediaItem(text));
      }
      if (result.status === "waiting-input") ws.send(prompt(result.console?.map((c) => c[1]).join("") || "Input:") ?? "");
      if (result.status === "error") output.append(h("span", { class: "stderr" }, (result.msg || "error") + "\n"));
      if (result.status === "finished") {
        output.append(h("span", { class: "muted exit" }, `\n(exit code ${result.exitCode ?? 0})`));
        ws.close();
      }
    };
    ws.onclose = () => { run.disabled = false; };
    ws.onerror = () => { output.append(h("span", { class: "stderr" }, "The stream to the session failed.\n")); };
  };
  run.addEventListener("click", execute);
  code.addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); execute(); } });
  code.focus();
}

function loadXterm() {
  if (window.Terminal) return Promise.resolve();
  return new Promise((resolve, reject) => {
    document.head.append(h("link", { rel: "stylesheet", href: "/vendor/xterm.css" }));
    const script = h("script", { src: "/vendor/xterm.js" });
    script.onload = resolve;
    script.onerror = () => reject(new Error("The terminal library could not be loaded (the webserver needs Debian's node-xterm)."));
    document.head.append(script);
  });
}

async function terminalPanel(host, s) {
  const screen = h("div", { class: "term-box", id: "terminal" });
  const status = h("div", { class: "muted small", id: "terminal-status" }, "Connecting…");
  const box = panel(host, `Terminal — ${s.name}`, screen, status);
  try { await loadXterm(); } catch (e) { showError(status, e); return; }
  const term = new window.Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  term.open(screen);
  // What the terminal shows, as text (for tests and assistive tools; the canvas holds none).
  screen.readText = () => { term.selectAll(); const text = term.getSelection(); term.clearSelection(); return text; };
  const ws = api.socket(`/stream/session/${encodeURIComponent(s.name)}/pty`);
  const encoder = new TextEncoder();
  const toBase64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const decoder = new TextDecoder();
  const resize = () => {
    if (term.fit) term.fit();
    if (ws.readyState !== 1) return;
    ws.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
    screen.dataset.size = `${term.rows}x${term.cols}`;
  };
  // The renderer measures its font only once it is on screen: fit to the box after that.
  ws.onopen = () => { status.textContent = "Connected. Ctrl-C, full-screen programs and resizing work."; requestAnimationFrame(resize); term.focus(); };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "out") term.write(decoder.decode(fromBase64(message.data), { stream: true }));
  };
  ws.onclose = (event) => { status.textContent = `Disconnected${event.reason ? ": " + event.reason : ""}.`; };
  term.on("data", (data) => { if (ws.readyState === 1) ws.send(JSON.stringify({ type: "stdin", chars: toBase64(encoder.encode(data)) })); });
  window.addEventListener("resize", resize);
  host.addEventListener("panel:close", () => { ws.close(); term.dispose(); window.removeEventListener("resize", resize); }, { once: true });
  box.scrollIntoView({ block: "nearest" });
}

async function logsPanel(host, s) {
  const output = h("pre", { class: "output", id: "logs" }, "Loading…");
  panel(host, `Logs — ${s.name}`, output);
  try {
    const reply = await api.call("GET", `/session/${encodeURIComponent(s.name)}/logs`);
    output.textContent = (reply.result && reply.result.logs) || "(no output yet)";
  } catch (e) { showError(output, e); }
}

// MARK: - Data, summary, admin

async function dataPage() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  if (query.get("folder")) return folderPage(query.get("folder"), query.get("path") || "");
  const list = h("div", { class: "table-host" }, h("p", { class: "muted" }, "Loading…"));
  const invitations = h("div", {});
  const name = h("input", { id: "folder-name", placeholder: "new folder name", required: true, pattern: "[A-Za-z0-9._\\-]{1,64}", "aria-label": "New folder name" });
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const create = h("form", { class: "toolbar", onsubmit: async (event) => {
    event.preventDefault();
    error.hidden = true;
    try { await api.call("POST", "/folders", { name: name.value.trim() }); name.value = ""; reload(); } catch (e) { error.textContent = e.message; error.hidden = false; }
  } }, name, h("button", { class: "primary", type: "submit" }, "Create folder"));
  const trash = h("section", { id: "trash" });
  frame("Data", invitations, create, error, list, trash);
  async function reload() {
    try {
      const pending = await api.call("GET", "/folders/invitations/list");
      const items = pending.invitations || [];
      invitations.replaceChildren(...(items.length ? [h("section", { class: "card", id: "invitations" }, h("h2", {}, "Invitations"),
        items.map((inv) => h("div", { class: "invitation", dataset: { folder: inv.vfolder_name } },
          h("span", {}, `${inv.inviter} shares `, h("strong", {}, inv.vfolder_name), ` (${inv.perm === "ro" ? "read-only" : inv.perm}) `),
          h("button", { class: "primary", "data-action": "accept", onclick: async () => {
            try { await api.call("POST", "/folders/invitations/accept", { inv_id: inv.id }); reload(); } catch (e) { alert(e.message); }
          } }, "Accept"),
          h("button", { onclick: async () => {
            try { await api.call("DELETE", "/folders/invitations/delete", { inv_id: inv.id }); reload(); } catch (e) { alert(e.message); }
          } }, "Decline"))))] : []));
      const all = await api.call("GET", "/folders?include_trash=true");
      const trashed = all.filter((f) => f.is_owner && String(f.status).startsWith("delete"));
      const folders = all.filter((f) => !String(f.status).startsWith("delete"));
      trash.replaceChildren(...(trashed.length ? [h("h2", {}, "Trash"), dataTable(["Folder", ""], trashed.map((f) => h("tr", { dataset: { trashed: f.name } }, h("td", {}, f.name),
        h("td", {}, h("div", { class: "actions" },
          h("button", { "data-action": "restore", onclick: async () => {
            try { await api.call("POST", "/folders/restore-from-trash", { id: f.id }); reload(); } catch (e) { alert(e.message); }
          } }, "Restore"),
          h("button", { class: "danger", onclick: async () => {
            if (!confirm(`Delete ${f.name} for good? Its files cannot be recovered.`)) return;
            try { await api.call("POST", "/folders/purge", { id: f.id }); reload(); } catch (e) { alert(e.message); }
          } }, "Delete for good"))))))] : []));
      if (!folders.length) { list.replaceChildren(h("p", { class: "empty" }, "No folders yet.")); return; }
      list.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Host", "Permission", "Owner", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, folders.map((f) => h("tr", { dataset: { folder: f.name } },
          h("td", {}, h("a", { href: `#/data?folder=${encodeURIComponent(f.name)}` }, f.name)), h("td", { class: "mono" }, f.host),
          h("td", { class: "permission" }, f.permission === "ro" ? "read-only" : f.permission),
          h("td", {}, f.is_owner ? "you" : (f.user_email || f.group_name || "shared with you")),
          h("td", {}, h("div", { class: "actions" },
            f.is_owner && h("button", { "data-action": "share", onclick: () => share(f) }, "Share"),
            f.is_owner && h("button", { "data-action": "rename", onclick: async () => {
              const name = prompt(`New name for ${f.name}`, f.name);
              if (!name || name === f.name) return;
              try { await api.call("POST", `/folders/${encodeURIComponent(f.name)}/rename`, { new_name: name.trim() }); reload(); } catch (e) { alert(e.message); }
            } }, "Rename"),
            f.is_owner && h("button", { class: "danger", "data-action": "trash", onclick: async () => {
              if (!confirm(`Move ${f.name} to the trash?`)) return;
              try { await api.call("DELETE", `/folders/${encodeURIComponent(f.name)}`); reload(); } catch (e) { alert(e.message); }
            } }, "Delete"))))))));
    } catch (e) { showError(list, e); }
  }
  function share(folder) {
    const email = h("input", { id: "share-email", type: "email", required: true, placeholder: "user@example.com", "aria-label": "Email of the user" });
    const perm = h("select", { id: "share-perm", "aria-label": "Permission" }, h("option", { value: "ro" }, "read-only"), h("option", { value: "rw" }, "read-write"));
    const note = h("div", { role: "status" });
    const form = h("form", { class: "card toolbar", id: "share-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api.call("POST", `/folders/${encodeURIComponent(folder.name)}/invite`, { perm: perm.value, user_ids: [email.value.trim()] });
        note.textContent = `Invited ${email.value.trim()} (${perm.value === "ro" ? "read-only" : "read-write"}).`;
      } catch (e) { note.textContent = e.message; note.className = "error"; }
    } }, h("strong", {}, `Share ${folder.name} with`), email, perm, h("button", { class: "primary", type: "submit", id: "share-send" }, "Invite"), note);
    create.after(form);
    email.focus();
  }
  await reload();
}

/** One folder: its files, uploads (resumable, with progress), downloads. */
async function folderPage(folder, path) {
  const enc = encodeURIComponent(folder);
  const list = h("div", { class: "table-host" }, h("p", { class: "muted" }, "Loading…"));
  const files = h("input", { type: "file", id: "upload-files", multiple: true, "aria-label": "Files to upload" });
  const tree = h("input", { type: "file", id: "upload-folder", webkitdirectory: true, "aria-label": "A folder to upload" });
  const progress = h("div", { id: "uploads" });
  const crumbs = [h("a", { href: "#/data" }, "Data"), " / ", h("a", { href: `#/data?folder=${enc}` }, folder)];
  path.split("/").filter(Boolean).reduce((at, part) => {
    const next = at ? `${at}/${part}` : part;
    crumbs.push(" / ", h("a", { href: `#/data?folder=${enc}&path=${encodeURIComponent(next)}` }, part));
    return next;
  }, "");
  // A folder shared read-only offers no changes (the manager and the storage proxy refuse
  // them anyway); its owner and read-write users get the tools.
  const info = (await api.call("GET", "/folders").catch(() => [])).find((f) => f.name === folder);
  const readOnly = info && info.permission === "ro";
  frame(folder, h("p", { class: "crumbs" }, crumbs),
    readOnly ? h("p", { class: "note", id: "read-only-note" }, "Shared with you read-only: you can browse and download.")
      : h("div", { class: "toolbar" }, h("label", { class: "button" }, "Upload files", files), h("label", { class: "button" }, "Upload a folder", tree),
        h("button", { onclick: async () => {
          const name = prompt("New directory name");
          if (!name) return;
          try { await api.call("POST", `/folders/${enc}/mkdir`, { path: join(path, name), parents: true }); reload(); } catch (e) { alert(e.message); }
        } }, "New directory")),
    progress, list);
  function join(a, b) { return a ? `${a}/${b}` : b; }
  async function reload() {
    try {
      const reply = await api.call("GET", `/folders/${enc}/files?path=${encodeURIComponent(path)}`);
      const items = (typeof reply.files === "string" ? JSON.parse(reply.files) : reply.files) || [];
      if (!items.length) { list.replaceChildren(h("p", { class: "empty" }, "This directory is empty.")); return; }
      items.sort((a, b) => (a.type === "directory" ? 0 : 1) - (b.type === "directory" ? 0 : 1) || a.filename.localeCompare(b.filename));
      list.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ["Name", "Size", "Modified", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((f) => {
          const full = join(path, f.filename);
          const directory = f.type === "directory";
          return h("tr", { dataset: { file: f.filename } },
            h("td", {}, directory ? h("a", { href: `#/data?folder=${enc}&path=${encodeURIComponent(full)}` }, f.filename + "/") : f.filename),
            h("td", {}, directory ? "" : humanBytes(Number(f.size))), h("td", {}, f.mtime ? new Date(f.mtime * 1000).toLocaleString() : ""),
            h("td", {}, h("div", { class: "actions" },
              h("button", { "data-action": "download", onclick: () => download(full, directory) }, "Download"),
              !readOnly && h("button", { onclick: async () => {
                const to = prompt(`Rename or move ${f.filename} to (a path in ${folder})`, full);
                if (!to || to === full) return;
                try {
                  if (to.includes("/") || full.includes("/")) await api.call("POST", `/folders/${enc}/move-file`, { src: full, dst: to });
                  else await api.call("POST", `/folders/${enc}/rename-file`, { target_path: full, new_name: to });
                  reload();
                } catch (e) { alert(e.message); }
              } }, "Move"),
              !readOnly && h("button", { class: "danger", onclick: async () => {
                if (!confirm(`Delete ${full}?`)) return;
                try { await api.call("DELETE", `/folders/${enc}/delete-files`, { files: [full], recursive: directory }); reload(); } catch (e) { alert(e.message); }
              } }, "Delete"))));
        }))));
    } catch (e) { showError(list, e); }
  }
  async function download(file, directory) {
    try {
      const ticket = await api.call("POST", `/folders/${enc}/request-download`, { path: file, archive: directory });
      const link = h("a", { href: `${ticket.url}?token=${encodeURIComponent(ticket.token)}`, download: file.split("/").pop() + (directory ? ".tar" : "") });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (e) { alert(e.message); }
  }
  async function uploadAll(list) {
    for (const file of list) {
      const relative = file.webkitRelativePath || file.name;
      const bar = h("progress", { max: file.size || 1, value: 0 });
      const label = h("span", { class: "upload-state" }, "starting");
      const line = h("div", { class: "upload", dataset: { upload: relative } }, h("span", { class: "mono" }, relative), bar, label);
      progress.append(line);
      try {
        if (relative.includes("/")) {
          await api.call("POST", `/folders/${enc}/mkdir`, { path: join(path, relative.split("/").slice(0, -1).join("/")), parents: true, exist_ok: true });
        }
        await upload(file, join(path, relative), (sent) => { bar.value = sent; label.textContent = `${Math.floor((sent / (file.size || 1)) * 100)}%`; });
        bar.value = file.size || 1;
        label.textContent = "uploaded";
        line.classList.add("done");
      } catch (e) {
        label.textContent = e.message;
        line.classList.add("failed");
      }
    }
    reload();
  }
  /** tus, as the storage proxy speaks it: PATCH chunks at the offset; after a failure, ask
   *  the proxy where it stands (HEAD) and go on from there, with back-off. */
  async function upload(file, target, onProgress) {
    const ticket = await api.call("POST", `/folders/${enc}/request-upload`, { path: target, size: file.size });
    const url = `${ticket.url}?token=${encodeURIComponent(ticket.token)}`;
    const chunk = 8 << 20;
    let offset = 0, failures = 0;
    while (offset < file.size) {
      try {
        const end = Math.min(offset + chunk, file.size);
        const response = await fetch(url, { method: "PATCH", body: file.slice(offset, end),
          headers: { "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" } });
        if (response.status === 409 || response.status >= 500) throw new Error(`the storage proxy answered ${response.status}`);
        if (!response.ok) { const text = await response.text(); throw Object.assign(new Error(JSON.parse(text || "{}").msg || text || response.statusText), { fatal: true }); }
        offset = Number(response.headers.get("Upload-Offset") || end);
        failures = 0;
        onProgress(offset);
      } catch (e) {
        if (e.fatal || ++failures > 8) throw e;
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 8000)));
        const head = await fetch(url, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } }).catch(() => null);
        if (head && head.ok) offset = Number(head.headers.get("Upload-Offset") || offset);
      }
    }
  }
  files.addEventListener("change", () => uploadAll([...files.files]));
  tree.addEventListener("change", () => uploadAll([...tree.files]));
  await reload();
}

/** A small line chart (SVG drawn through the DOM: no inline markup, CSP-clean). */
function sparkline(values, max, label) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 240, height = 48;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const last = values.length ? values[values.length - 1] : null;
  svg.setAttribute("aria-label", `${label}: ${values.length} samples${last === null ? "" : ", latest " + last}`);
  const top = Math.max(max || 0, ...values, 1);
  const points = values.map((v, i) => `${values.length < 2 ? width : (i / (values.length - 1)) * width},${height - 2 - (v / top) * (height - 4)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function utilisationCharts(samples, memCapacity) {
  const cpu = samples.map((s) => s.cpu_pct);
  const mem = samples.map((s) => s.mem_bytes);
  const latest = samples[samples.length - 1];
  const charts = [
    h("figure", { class: "chart" }, sparkline(cpu, 100, "CPU"), h("figcaption", {}, `CPU ${latest ? latest.cpu_pct.toFixed(0) : "–"}%`)),
    h("figure", { class: "chart" }, sparkline(mem, memCapacity || (latest && latest.mem_capacity_bytes), "Memory"),
      h("figcaption", {}, `Memory ${latest ? humanBytes(latest.mem_bytes) : "–"}`)),
  ];
  for (const key of Object.keys((latest && latest.accelerators) || {})) {
    charts.push(h("figure", { class: "chart" }, sparkline(samples.map((s) => (s.accelerators[key] || {}).current || 0), latest.accelerators[key].capacity, key),
      h("figcaption", {}, `${key} ${latest.accelerators[key].current}`)));
  }
  return h("div", { class: "charts" }, charts, samples.length ? null : h("p", { class: "muted small" }, "No samples yet (one every 10 s)."));
}

async function summaryPage() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  frame("Summary", body);
  try {
    const data = await api.gql(`{ compute_session_list(limit: 100, offset: 0, status: "RUNNING") { total_count items { name occupied_slots } }
      keypair { resource_policy concurrency_used } }`);
    const policy = await api.gql("query($n: String) { keypair_resource_policy(name: $n) { total_resource_slots max_concurrent_sessions } }",
      { n: data.keypair.resource_policy });
    const used = { cpu: 0, mem: 0 };
    for (const s of data.compute_session_list.items) {
      const slots = JSON.parse(s.occupied_slots || "{}");
      used.cpu += Number(slots.cpu || 0);
      used.mem += Number(slots.mem || 0);
    }
    const limits = JSON.parse(policy.keypair_resource_policy.total_resource_slots || "{}");
    const meter = (label, value, max, show) => h("div", { class: "meter" },
      h("div", { class: "meter-label" }, label, h("span", {}, max > 0 ? `${show(value)} of ${show(max)}` : `${show(value)} (no limit)`)),
      h("progress", { max: max > 0 ? max : 1, value: max > 0 ? value : 0, "aria-label": label }));
    body.replaceChildren(
      h("div", { class: "cards" },
        h("div", { class: "card stat" }, h("div", { class: "big" }, String(data.compute_session_list.total_count)), "running sessions"),
        h("div", { class: "card stat" }, h("div", { class: "big" }, String(data.keypair.concurrency_used ?? "")), `sessions of ${policy.keypair_resource_policy.max_concurrent_sessions || "∞"} allowed`)),
      h("section", { class: "card" }, h("h2", {}, "My usage against my limits"),
        meter("CPU cores", used.cpu, Number(limits.cpu || 0), (v) => String(v)),
        meter("Memory", used.mem, Number(limits.mem || 0), humanBytes)),
      h("section", { id: "utilisation" }, h("h2", {}, "Running sessions, last hour"),
        data.compute_session_list.items.length ? null : h("p", { class: "muted" }, "No session is running."),
        await Promise.all(data.compute_session_list.items.map(async (s) => {
          const history = await api.call("GET", `/session/${encodeURIComponent(s.name)}/utilisation`).catch(() => ({ samples: [] }));
          return h("div", { class: "card", dataset: { session: s.name } }, h("h3", {}, s.name), utilisationCharts(history.samples));
        }))));
  } catch (e) { showError(body, e); }
}

async function adminPage() {
  const agents = h("section", {}, h("p", { class: "muted" }, "Loading…"));
  const users = h("section", {});
  frame("Admin", agents, users);
  try {
    const data = await api.gql("{ agent_list(limit: 100, offset: 0) { items { id status schedulable scaling_group available_slots occupied_slots compute_plugins } } }");
    const histories = await Promise.all(data.agent_list.items.map((a) =>
      api.call("GET", `/admin/agents/${encodeURIComponent(a.id)}/utilisation`).catch(() => ({ samples: [] }))));
    agents.replaceChildren(h("h2", {}, "Agents"),
      h("div", { class: "cards" }, data.agent_list.items.map((a, i) => h("div", { class: "card", dataset: { agent: a.id } },
        h("h3", {}, a.id), utilisationCharts(histories[i].samples),
        h("p", { class: "muted small plugins" }, "Plugins: ", (() => {
          try { return JSON.parse(a.compute_plugins || "[]").map((p) => `${p.name} ${p.version}`).join(", ") || "none"; } catch (_) { return "unknown"; }
        })())))),
      h("div", { class: "table-host" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Agent", "Status", "Group", "Capacity", "Occupied", "Schedulable"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, data.agent_list.items.map((a) => h("tr", {},
        h("td", { class: "mono" }, a.id), h("td", {}, badge(a.status)), h("td", {}, a.scaling_group),
        h("td", {}, slotsText(a.available_slots)), h("td", {}, slotsText(a.occupied_slots)),
        h("td", {}, h("button", { "data-action": "schedulable", "aria-pressed": String(a.schedulable), onclick: async (event) => {
          try {
            await api.call("POST", `/admin/agents/${encodeURIComponent(a.id)}/schedulable`, { schedulable: !a.schedulable });
            a.schedulable = !a.schedulable;
            event.target.textContent = a.schedulable ? "yes" : "no (draining)";
            event.target.setAttribute("aria-pressed", String(a.schedulable));
          } catch (e) { alert(e.message); }
        } }, a.schedulable ? "yes" : "no (draining)"))))))));
  } catch (e) { showError(agents, e); }
  const groups = h("section", {});
  const keypairs = h("section", {});
  const images = h("section", {});
  main().append(groups, keypairs, images);
  async function drawGroups() {
    try {
      const [data, catalog] = await Promise.all([api.gql("{ scaling_groups { name description is_active scheduler agent_selector } }"),
        api.call("GET", "/admin/plugins")]);
      const of = (kind) => catalog.plugins.filter((p) => p.kind === kind);
      const options = (kind, chosen) => of(kind).map((p) => h("option", { value: p.name, selected: p.name === chosen }, `${p.name} ${p.version}`));
      const choose = (g, field, kind) => h("select", { "aria-label": `${field} of ${g.name}`, "data-field": field, onchange: async (event) => {
        try {
          await mutate("modify_scaling_group", "mutation($name: String!, $props: ModifyScalingGroupInput!) { modify_scaling_group(name: $name, props: $props) { ok msg } }",
            { name: g.name, props: { [field]: event.target.value } });
        } catch (e) { alert(e.message); drawGroups(); }
      } }, options(kind, g[field]));
      const name = h("input", { required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", placeholder: "name", "aria-label": "Name of the new resource group", id: "new-group-name" });
      const description = h("input", { placeholder: "description", "aria-label": "Description of the new resource group", id: "new-group-description" });
      const scheduler = h("select", { "aria-label": "Scheduler of the new resource group", id: "new-group-scheduler" }, options("scheduler", "fifo"));
      const selector = h("select", { "aria-label": "Agent selector of the new resource group", id: "new-group-selector" }, options("agent-selector", "concentrated"));
      const create = h("form", { class: "toolbar", id: "new-group", onsubmit: async (event) => {
        event.preventDefault();
        const group = name.value.trim();
        try {
          await mutate("create_scaling_group", "mutation($name: String!, $props: CreateScalingGroupInput!) { create_scaling_group(name: $name, props: $props) { ok msg } }",
            { name: group, props: { description: description.value.trim(), is_active: true, is_public: true, driver: "static", driver_opts: "{}",
              scheduler: scheduler.value, agent_selector: selector.value, scheduler_opts: "{}" } });
          // Open to the admin's domain, so its users can launch there.
          await mutate("associate_scaling_group_with_domain", "mutation($group: String!, $domain: String!) { associate_scaling_group_with_domain(scaling_group: $group, domain: $domain) { ok msg } }",
            { group, domain: state.user.domain || "default" });
          drawGroups();
        } catch (e) { alert(e.message); }
      } }, name, description, scheduler, selector, h("button", { class: "primary", type: "submit" }, "Add resource group"));
      groups.replaceChildren(h("h2", {}, "Resource groups"), create, h("div", { class: "table-host" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Group", "Scheduler", "Agent selector", "Active", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, data.scaling_groups.map((g) => h("tr", { dataset: { group: g.name } },
          h("td", {}, g.name, h("div", { class: "muted small" }, g.description || "")),
          h("td", {}, choose(g, "scheduler", "scheduler")), h("td", {}, choose(g, "agent_selector", "agent-selector")),
          h("td", {}, g.is_active ? "yes" : "no"),
          h("td", {}, h("button", { class: "danger", "data-action": "delete", onclick: async () => {
            if (!confirm(`Delete resource group ${g.name}? Only a group without agents or sessions can go.`)) return;
            try {
              await mutate("delete_scaling_group", "mutation($name: String!) { delete_scaling_group(name: $name) { ok msg } }", { name: g.name });
              drawGroups();
            } catch (e) { alert(e.message); }
          } }, "Delete"))))))),
        h("p", { class: "muted small" }, "Plugins the manager can load: ", catalog.plugins.map((p) => `${p.name} ${p.version} (${p.kind})`).join(", "),
          catalog.broken.length ? ` — ${catalog.broken.length} library(ies) refused: ${catalog.broken.map((b) => b.error).join("; ")}` : ""));
    } catch (e) { showError(groups, e); }
  }
  async function drawKeypairs() {
    try {
      const [data, policyNames] = await Promise.all([
        api.gql("{ keypair_list(limit: 100, offset: 0) { items { access_key user_id is_active is_admin resource_policy rate_limit concurrency_used } } }"),
        api.gql("{ keypair_resource_policies { name } }").then((d) => d.keypair_resource_policies.map((p) => p.name))]);
      const policySelect = (chosen, label, props = {}) => h("select", { "aria-label": label, ...props }, policyNames.map((n) => h("option", { value: n, selected: n === chosen }, n)));
      const email = h("input", { type: "email", required: true, placeholder: "user's email", "aria-label": "Email of the keypair's user", id: "new-keypair-user" });
      const policy = policySelect("default", "Resource policy of the new keypair", { id: "new-keypair-policy" });
      const isAdmin = h("input", { type: "checkbox", id: "new-keypair-admin" });
      const created = h("div", { "aria-live": "polite" });
      const create = h("form", { class: "toolbar", id: "new-keypair", onsubmit: async (event) => {
        event.preventDefault();
        try {
          const reply = await mutate("create_keypair", "mutation($user: String!, $props: KeyPairInput!) { create_keypair(user_id: $user, props: $props) { ok msg keypair { access_key secret_key } } }",
            { user: email.value.trim(), props: { is_active: true, is_admin: isAdmin.checked, resource_policy: policy.value, rate_limit: 0 } });
          await drawKeypairs();
          keypairs.querySelector("[aria-live]").replaceChildren(h("div", { class: "note", id: "new-keypair-keys" },
            `New keypair of ${email.value.trim()}: access key `, h("span", { class: "mono" }, reply.keypair.access_key),
            ", secret key ", h("span", { class: "mono" }, reply.keypair.secret_key), " — give both to the user over a safe channel."));
        } catch (e) { alert(e.message); }
      } }, email, policy, h("label", { class: "check" }, isAdmin, "admin"), h("button", { class: "primary", type: "submit" }, "Create keypair"));
      keypairs.replaceChildren(h("h2", {}, "Keypairs"), create, created, dataTable(["Access key", "User", "Policy", "Sessions", "Active", ""],
        data.keypair_list.items.map((k) => h("tr", { dataset: { keypair: k.access_key } }, h("td", { class: "mono" }, k.access_key, k.is_admin ? h("div", { class: "muted small" }, "admin") : null),
          h("td", {}, k.user_id),
          h("td", {}, policySelect(k.resource_policy, `Resource policy of ${k.access_key}`, { "data-field": "resource_policy", onchange: async (event) => {
            try {
              await mutate("modify_keypair", "mutation($key: String!, $props: ModifyKeyPairInput!) { modify_keypair(access_key: $key, props: $props) { ok msg } }",
                { key: k.access_key, props: { resource_policy: event.target.value } });
            } catch (e) { alert(e.message); drawKeypairs(); }
          } })),
          h("td", {}, String(k.concurrency_used ?? 0)),
          h("td", {}, h("button", { "aria-pressed": String(k.is_active), onclick: async () => {
            try {
              await mutate("modify_keypair", "mutation($key: String!, $props: ModifyKeyPairInput!) { modify_keypair(access_key: $key, props: $props) { ok msg } }",
                { key: k.access_key, props: { is_active: !k.is_active } });
              drawKeypairs();
            } catch (e) { alert(e.message); }
          } }, k.is_active ? "active — deactivate" : "inactive — activate")),
          h("td", {}, h("button", { class: "danger", "data-action": "delete", onclick: async () => {
            if (!confirm(`Delete keypair ${k.access_key} of ${k.user_id}? Clients using it stop working.`)) return;
            try {
              await mutate("delete_keypair", "mutation($key: String!) { delete_keypair(access_key: $key) { ok msg } }", { key: k.access_key });
              drawKeypairs();
            } catch (e) { alert(e.message); }
          } }, "Delete"))))));
    } catch (e) { showError(keypairs, e); }
  }
  async function drawImages() {
    try {
      const data = await api.gql("{ images { name tag architecture size_bytes aliases installed } }");
      const refs = data.images.map(imageReference);
      const alias = h("input", { required: true, placeholder: "alias, e.g. python", "aria-label": "New alias", id: "new-alias" });
      const target = h("select", { "aria-label": "Image the alias names", id: "new-alias-target" }, refs.map((r) => h("option", { value: r }, r)));
      const add = h("form", { class: "toolbar", id: "new-alias-form", onsubmit: async (event) => {
        event.preventDefault();
        try {
          await mutate("alias_image", "mutation($alias: String!, $target: String!) { alias_image(alias: $alias, target: $target) { ok msg } }",
            { alias: alias.value.trim(), target: target.value });
          drawImages();
        } catch (e) { alert(e.message); }
      } }, alias, target, h("button", { class: "primary", type: "submit" }, "Add alias"));
      images.replaceChildren(h("h2", {}, "Images"), add, dataTable(["Image", "Architecture", "Size", "Aliases"],
        data.images.map((i) => h("tr", { dataset: { image: imageReference(i) } }, h("td", { class: "mono" }, imageReference(i)), h("td", {}, i.architecture),
          h("td", {}, humanBytes(Number(i.size_bytes))),
          h("td", {}, h("div", { class: "actions" }, (i.aliases || []).map((a) => h("button", { "data-alias": a, "aria-label": `Remove alias ${a}`, onclick: async () => {
            try {
              await mutate("dealias_image", "mutation($alias: String!) { dealias_image(alias: $alias) { ok msg } }", { alias: a });
              drawImages();
            } catch (e) { alert(e.message); }
          } }, `${a} ×`))))))));
    } catch (e) { showError(images, e); }
  }
  const policies = h("section", {});
  main().append(policies);
  async function drawPolicies() {
    try {
      const data = await api.gql("{ keypair_resource_policies { name total_resource_slots max_concurrent_sessions idle_timeout max_session_lifetime } }");
      // One form creates a policy, or edits the one whose Edit was pressed.
      const name = h("input", { required: true, placeholder: "name", "aria-label": "Policy name", id: "policy-name" });
      const cpu = h("input", { type: "number", min: 0, step: "any", placeholder: "no limit", "aria-label": "CPU cores in all sessions", id: "policy-cpu" });
      const mem = h("input", { type: "number", min: 0, step: "any", placeholder: "no limit", "aria-label": "Memory in GiB in all sessions", id: "policy-mem" });
      const sessions = h("input", { type: "number", min: 0, step: 1, placeholder: "no limit", "aria-label": "Concurrent sessions at most", id: "policy-sessions" });
      const idle = h("input", { type: "number", min: 0, step: 1, placeholder: "none", "aria-label": "Idle timeout in seconds", id: "policy-idle" });
      const submit = h("button", { class: "primary", type: "submit" }, "Create policy");
      let editing = null;
      const form = h("form", { class: "card", id: "policy-form", onsubmit: async (event) => {
        event.preventDefault();
        const slots = {};
        if (cpu.value !== "") slots.cpu = String(Number(cpu.value));
        if (mem.value !== "") slots.mem = `${Number(mem.value)}g`;
        const props = { total_resource_slots: JSON.stringify(slots), max_concurrent_sessions: Number(sessions.value || 0), idle_timeout: Number(idle.value || 0) };
        try {
          if (editing) {
            await mutate("modify_keypair_resource_policy", "mutation($name: String!, $props: ModifyKeyPairResourcePolicyInput!) { modify_keypair_resource_policy(name: $name, props: $props) { ok msg } }",
              { name: editing, props });
          } else {
            await mutate("create_keypair_resource_policy", "mutation($name: String!, $props: CreateKeyPairResourcePolicyInput!) { create_keypair_resource_policy(name: $name, props: $props) { ok msg } }",
              { name: name.value.trim(), props: { ...props, default_for_unspecified: "UNLIMITED" } });
            drawKeypairs();
          }
          drawPolicies();
        } catch (e) { alert(e.message); }
      } }, h("div", { class: "toolbar" }, h("label", { for: "policy-name" }, "Name"), name, h("label", { for: "policy-cpu" }, "CPU"), cpu,
        h("label", { for: "policy-mem" }, "Memory (GiB)"), mem, h("label", { for: "policy-sessions" }, "Sessions"), sessions,
        h("label", { for: "policy-idle" }, "Idle timeout (s)"), idle, submit,
        h("button", { type: "button", onclick: () => { editing = null; form.reset(); name.disabled = false; submit.textContent = "Create policy"; } }, "Clear")));
      const edit = (p) => {
        let slots = {};
        try { slots = JSON.parse(p.total_resource_slots || "{}"); } catch (_) { /* edited as empty */ }
        editing = p.name;
        name.value = p.name;
        name.disabled = true;
        cpu.value = slots.cpu !== undefined ? Number(slots.cpu) : "";
        mem.value = slots.mem !== undefined ? Math.round(Number(slots.mem) / 2 ** 30 * 100) / 100 : "";
        sessions.value = p.max_concurrent_sessions || "";
        idle.value = p.idle_timeout || "";
        submit.textContent = `Save ${p.name}`;
        cpu.focus();
      };
      policies.replaceChildren(h("h2", {}, "Resource policies (keypairs)"), form, dataTable(["Policy", "Total slots", "Sessions", "Idle timeout", ""],
        data.keypair_resource_policies.map((p) => h("tr", { dataset: { policy: p.name } }, h("td", {}, p.name), h("td", {}, slotsText(p.total_resource_slots) || "no limit"),
          h("td", {}, String(p.max_concurrent_sessions || "no limit")), h("td", {}, p.idle_timeout ? `${p.idle_timeout} s` : "none"),
          h("td", {}, h("div", { class: "actions" }, h("button", { "data-action": "edit", onclick: () => edit(p) }, "Edit"),
            h("button", { class: "danger", "data-action": "delete", onclick: async () => {
              if (!confirm(`Delete policy ${p.name}? Only a policy no keypair uses can go.`)) return;
              try {
                await mutate("delete_keypair_resource_policy", "mutation($name: String!) { delete_keypair_resource_policy(name: $name) { ok msg } }", { name: p.name });
                drawPolicies();
                drawKeypairs();
              } catch (e) { alert(e.message); }
            } }, "Delete")))))));
    } catch (e) { showError(policies, e); }
  }
  drawPolicies();
  async function drawUsers() {
    try {
      const data = await api.gql("{ user_list(limit: 100, offset: 0) { items { email username role status domain_name } } }");
      const email = h("input", { type: "email", required: true, placeholder: "email", "aria-label": "Email of the new user", id: "new-user-email" });
      const password = h("input", { type: "password", required: true, minlength: 8, placeholder: "initial password", "aria-label": "Initial password", id: "new-user-password" });
      const role = h("select", { "aria-label": "Role" }, ["user", "admin"].map((r) => h("option", { value: r }, r)));
      const add = h("form", { class: "toolbar", onsubmit: async (event) => {
        event.preventDefault();
        try {
          await mutate("create_user", "mutation($email: String!, $props: UserInput!) { create_user(email: $email, props: $props) { ok msg } }",
            { email: email.value.trim(), props: { password: password.value, username: email.value.trim().split("@")[0], role: role.value, status: "active", need_password_change: true } });
          drawUsers();
        } catch (e) { alert(e.message); }
      } }, email, password, role, h("button", { class: "primary", type: "submit" }, "Add user"));
      users.replaceChildren(h("h2", {}, "Users"), add, h("div", { class: "table-host" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Email", "Name", "Role", "Status", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, data.user_list.items.map((u) => h("tr", { dataset: { user: u.email } },
          h("td", {}, u.email), h("td", {}, u.username), h("td", {}, u.role), h("td", {}, badge(u.status)),
          h("td", {}, h("div", { class: "actions" }, h("button", { "data-action": "reset-password", onclick: async () => {
            const password = prompt(`New password for ${u.email} (at least 8 characters; they change it at the next login)`);
            if (!password) return;
            try {
              await mutate("modify_user", "mutation($email: String!, $props: ModifyUserInput!) { modify_user(email: $email, props: $props) { ok msg } }",
                { email: u.email, props: { password, need_password_change: true } });
              alert(`The password of ${u.email} was reset.`);
            } catch (e) { alert(e.message); }
          } }, "Reset password"), u.email !== state.user.email && h("button", { "data-action": u.status === "active" ? "deactivate" : "activate", onclick: async () => {
            const status = u.status === "active" ? "inactive" : "active";
            try {
              await mutate("modify_user", "mutation($email: String!, $props: ModifyUserInput!) { modify_user(email: $email, props: $props) { ok msg } }",
                { email: u.email, props: { status } });
              drawUsers();
            } catch (e) { alert(e.message); }
          } }, u.status === "active" ? "Deactivate" : "Activate")))))))));
    } catch (e) { showError(users, e); }
  }
  await Promise.all([drawUsers(), drawGroups(), drawKeypairs(), drawImages()]);
}

// MARK: - Routing

async function route() {
  if (state.stopPage) { state.stopPage(); state.stopPage = null; }
  if (!state.user) {
    try {
      const check = await api.loginCheck();
      if (check.authenticated) state.user = check.data;
    } catch (_) { /* shown as the login page */ }
  }
  if (!state.user) { loginPage(); return; }
  const page = (location.hash.split("?")[0] || "#/sessions").replace(/^#/, "");
  const admin = state.user.role === "admin" || state.user.role === "superadmin";
  try {
    if (page === "/data") await dataPage();
    else if (page === "/summary") await summaryPage();
    else if (page === "/admin" && admin) await adminPage();
    else if (page === "/admin") frame("Admin", h("div", { class: "error", role: "alert" }, "This page is for administrators."));
    else state.stopPage = await sessionsPage();
  } catch (e) {
    frame("Error", h("div", { class: "error", role: "alert" }, e.message));
  }
  main()?.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
window.addEventListener("hangar:logged-out", () => { if (state.user) { state.user = null; loginPage("Your login session ended. Log in again."); } });
route();
