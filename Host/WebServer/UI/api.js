// Talking to Hangar through the webserver: /server/* for the login, /func/* for the manager's
// API (the webserver signs each call with the logged-in user's keypair; the browser never
// holds a key). Errors carry the API's own message.

const API_VERSION = "v7.20230615";

/** An API call that failed: the HTTP status and the server's message. */
export class APIError extends Error {
  constructor(status, title, message) {
    super(message || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

async function failure(response) {
  let title = response.statusText, message = "";
  try {
    const problem = await response.json();
    title = problem.title || title;
    message = problem.msg || problem.details || problem.message || "";
  } catch (_) { /* not JSON: keep the status text */ }
  return new APIError(response.status, title, message || title);
}

/** Calls the manager: `path` as the API names it (e.g. "/folders"); JSON in and out. */
export async function call(method, path, body) {
  const headers = { "X-BackendAI-Version": API_VERSION };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/func" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.startsWith("/server")) window.dispatchEvent(new Event("hangar:logged-out"));
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

/** A GraphQL query; the first error becomes an APIError. */
export async function gql(query, variables = {}) {
  const reply = await call("POST", "/admin/gql", { query, variables });
  if (reply.errors && reply.errors.length) throw new APIError(200, "GraphQL", reply.errors[0].message);
  return reply.data;
}

async function server(path, body) {
  const response = await fetch("/server/" + path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  if (!response.ok && response.status !== 201) throw await failure(response);
  return response.status === 201 ? {} : response.json();
}

/** Logs in; throws an APIError with the reason when refused. */
export async function login(username, password) {
  const reply = await server("login", { username, password });
  if (!reply.authenticated) throw new APIError(401, reply.data && reply.data.title, reply.data && reply.data.details);
  return reply.data;
}

export const loginCheck = () => server("login-check");
/** Where the browser reaches a web app of a session: `{url}`. */
export const openApp = (session, app) => server("app-proxy", { session, app });
export const logout = () => server("logout");

/** Server-sent events of the manager (EventSource sends the session cookie itself). */
export function events(path) {
  return new EventSource("/func" + path, { withCredentials: true });
}

/** A WebSocket to one of the manager's streams (`/stream/...`). */
export function socket(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return new WebSocket(`${scheme}://${location.host}/func${path}`);
}
