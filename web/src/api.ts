// The API client: same-origin fetch with the session cookie, the CSRF header on
// state-changing requests, errors as ApiError, and an ended session sent back to login.
import { ApiError, apiError, safeNext } from "./render";
import type { components } from "./gen/openapi";

export type Identity = components["schemas"]["Identity"];

/** Session is GET /auth/session. */
export interface Session {
  login_enabled: boolean;
  authenticated: boolean;
  username?: string;
  admin?: boolean;
  csrf_token?: string;
  expires_at?: string;
  reason?: string;
}

let csrf = "";

/** setCSRF stores the session's CSRF token for later requests. */
export function setCSRF(t: string) {
  csrf = t;
}

/** loginURL is where the browser goes to log in and come back to next. */
export function loginURL(next: string = location.pathname + location.search): string {
  return "/auth/login?next=" + encodeURIComponent(safeNext(next));
}

/** toLogin leaves for the login page, returning here afterwards. */
export function toLogin(): never {
  location.assign(loginURL());
  throw new ApiError(401, "unauthorized", "session ended: logging in again");
}

async function request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const h: Record<string, string> = { Accept: "application/json", ...headers };
  if (method !== "GET" && method !== "HEAD") h["X-CSRF-Token"] = csrf;
  let b: BodyInit | undefined;
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    b = JSON.stringify(body);
  }
  let r: Response;
  try {
    r = await fetch(path, { method, headers: h, body: b, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the gateway (${(e as Error).message})`);
  }
  if (r.status === 401) toLogin();
  if (!r.ok) throw apiError(r.status, await r.text(), r.statusText);
  return r;
}

/** get fetches JSON. */
export async function get<T>(path: string): Promise<T> {
  return (await request("GET", path)).json() as Promise<T>;
}

/** getText fetches text and the response (for headers). */
export async function getText(path: string): Promise<{ text: string; res: Response }> {
  const res = await request("GET", path, undefined, { Accept: "text/plain" });
  return { text: await res.text(), res };
}

/** send makes a state-changing request and returns its JSON (or null for 204). */
export async function send<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T | null> {
  const r = await request(method, path, body, headers);
  if (r.status === 204) return null;
  const t = await r.text();
  return t ? (JSON.parse(t) as T) : null;
}

/** session reads who is logged in; it never redirects. */
export async function session(): Promise<Session> {
  const r = await fetch("/auth/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) throw apiError(r.status, await r.text(), r.statusText);
  return r.json();
}

/** logout ends the session. */
export async function logout(): Promise<void> {
  await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
}
