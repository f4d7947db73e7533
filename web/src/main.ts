// The dashboard's entry: session check, layout, client-side routing, and the one event
// stream a tab holds at a time.
import "uplot/dist/uPlot.min.css";
import { logout, loginURL, session, setCSRF, toLogin, type Session } from "./api";
import { h, errorBox, replace } from "./dom";
import { jobsPage } from "./pages/jobs";
import { jobPage } from "./pages/job";
import { submitPage } from "./pages/submit";
import { systemPage } from "./pages/system";
import { usagePage } from "./pages/usage";
import { webhooksPage } from "./pages/webhooks";

/** Page is what a route renders into the main element; it returns its cleanup. */
export type Page = (main: HTMLElement, ctx: PageContext) => void | (() => void);

/** PageContext is what pages get: the session, navigation and the tab's event stream. */
export interface PageContext {
  session: Session;
  params: Record<string, string>;
  query: URLSearchParams;
  navigate(path: string, replace?: boolean): void;
  /** stream opens the tab's single EventSource (closing any other) and returns it. */
  stream(url: string, handlers: Record<string, (data: any, ev: MessageEvent) => void>): EventSource;
}

const routes: [RegExp, Page][] = [
  [/^\/(?:jobs)?$/, jobsPage],
  [/^\/jobs\/(?<id>[0-9a-fA-F-]{36})$/, jobPage],
  [/^\/submit$/, submitPage],
  [/^\/system$/, systemPage],
  [/^\/usage$/, usagePage],
  [/^\/webhooks$/, webhooksPage],
];

let cleanup: (() => void) | void;
let source: EventSource | null = null;
let sess: Session;

function closeStream() {
  source?.close();
  source = null;
}

function openStream(url: string, handlers: Record<string, (data: any, ev: MessageEvent) => void>): EventSource {
  closeStream();
  const es = new EventSource(url, { withCredentials: true });
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => {
      const me = ev as MessageEvent;
      let d: unknown = null;
      try {
        d = JSON.parse(me.data);
      } catch {
        return;
      }
      fn(d, me);
    });
  }
  es.onerror = async () => {
    // The browser reconnects by itself; if the session ended, go to login instead.
    if (es.readyState === EventSource.CLOSED || es.readyState === EventSource.CONNECTING) {
      try {
        const s = await session();
        if (!s.authenticated) {
          closeStream();
          toLogin();
        }
      } catch {
        // gateway unreachable: EventSource keeps retrying
      }
    }
  };
  source = es;
  return es;
}

function navigate(path: string, replaceState = false) {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function nav(): HTMLElement {
  const link = (href: string, text: string) => {
    const here = href === "/" ? location.pathname === "/" || location.pathname.startsWith("/jobs") : location.pathname === href;
    return h("a", { href, "aria-current": here ? "page" : undefined }, text);
  };
  const user = sess.authenticated
    ? h(
        "span.user",
        {},
        h("span", { "data-testid": "username" }, sess.username + (sess.admin ? " (admin)" : "")),
        h(
          "button.link",
          {
            type: "button",
            onclick: async () => {
              await logout();
              location.assign("/login?logged_out=1");
            },
          },
          "Log out",
        ),
      )
    : null;
  return h("header.top", {}, h("a.brand", { href: "/" }, "ftgate"), h("nav", {}, link("/", "Jobs"), link("/submit", "Submit"), link("/usage", "Usage"), link("/webhooks", "Webhooks"), link("/system", "System")), user);
}

function loginPage(main: HTMLElement, reason: string) {
  const q = new URLSearchParams(location.search);
  const next = q.get("next") || (location.pathname === "/login" ? "/" : location.pathname + location.search);
  replace(
    main,
    h(
      "section.narrow.login",
      {},
      h("h1", {}, "ftgate"),
      h("p", {}, "Fine-tuning jobs on the cluster: log in with your institution's account."),
      q.get("logged_out") ? h("p.note", { role: "status" }, "You are logged out.") : null,
      reason ? h("p.note", { role: "status" }, reason) : null,
      sess.login_enabled
        ? h("a.button.primary", { href: loginURL(next), "data-testid": "login" }, "Log in")
        : errorBox(new Error("Login is not configured on this gateway (web.client_id); an administrator sets it up as docs/config.md describes.")),
    ),
  );
}

function render() {
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  closeStream();
  const root = document.getElementById("app")!;
  const main = h("main.page", { id: "main" });
  replace(root, nav(), main);
  if (!sess.authenticated) {
    loginPage(main, sess.reason ?? "");
    return;
  }
  if (location.pathname === "/login") {
    navigate("/", true);
    return;
  }
  for (const [re, page] of routes) {
    const m = re.exec(location.pathname);
    if (!m) continue;
    const ctx: PageContext = {
      session: sess,
      params: { ...(m.groups ?? {}) },
      query: new URLSearchParams(location.search),
      navigate,
      stream: openStream,
    };
    try {
      cleanup = page(main, ctx);
    } catch (e) {
      replace(main, errorBox(e));
    }
    return;
  }
  replace(main, h("h1", {}, "Not found"), h("p", {}, "There is no page at " + location.pathname + "."));
}

async function boot() {
  try {
    sess = await session();
  } catch (e) {
    replace(document.getElementById("app")!, h("main.page", {}, errorBox(e)));
    return;
  }
  setCSRF(sess.csrf_token ?? "");
  document.addEventListener("click", (ev) => {
    const a = (ev.target as Element).closest?.("a");
    if (!a || a.target || a.hasAttribute("download") || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/auth/") || url.pathname.startsWith("/api/")) return;
    ev.preventDefault();
    if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", render);
  render();
}

void boot();
