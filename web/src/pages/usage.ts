// Usage: what the caller (admins: any user, ?user=NAME) holds against its limits,
// from GET /api/usage: a bar per limit, and when the GPU-hour limit frees up.
import { get } from "../api";
import { h, errorBox, replace } from "../dom";
import { usageBars, utc, type LimitBar, type Usage } from "../render";
import type { Page } from "../main";

/** limitRow draws one limit: label, bar (role=meter) and its notes. */
function limitRow(b: LimitBar): HTMLElement {
  const meter = h("span.bar.wide", {
    role: "meter",
    "aria-label": b.label,
    "aria-valuenow": b.used,
    "aria-valuemin": 0,
    "aria-valuemax": b.limit || undefined,
    "aria-valuetext": b.text,
  });
  const fill = h(`span.fill.${b.tone}`);
  fill.style.width = `${b.percent ?? 0}%`;
  meter.appendChild(fill);
  return h(
    "div.limit",
    { "data-limit": b.key, "data-tone": b.tone },
    h("div.limit-head", {}, h("strong", {}, b.label), h("span", { "data-testid": "limit-text" }, b.text)),
    b.percent === null ? h("p.muted.small", {}, "No limit applies.") : meter,
    ...b.notes.map((n, i) => h(i > 0 && b.tone === "bad" ? "p.small.error-text" : "p.muted.small", {}, n)),
  );
}

export const usagePage: Page = (main, ctx) => {
  const admin = Boolean(ctx.session.admin);
  const user = admin ? (ctx.query.get("user") ?? "").trim() : "";
  const body = h("div", { "aria-live": "polite" }, h("p.muted", { role: "status" }, "Loading…"));
  let live = true;
  const load = async () => {
    try {
      const u = await get<Usage>("/api/usage" + (user ? "?user=" + encodeURIComponent(user) : ""));
      if (!live) return;
      replace(
        body,
        h(
          "p.muted.small",
          { "data-testid": "usage-who" },
          `${u.user}${u.groups?.length ? ` (groups: ${u.groups.join(", ")})` : ""} · as of ${utc(u.time)}`,
        ),
        h("section.limits", { "data-testid": "usage" }, ...usageBars(u).map(limitRow)),
      );
    } catch (e) {
      if (live) replace(body, errorBox(e));
    }
  };
  const lookup = admin
    ? h(
        "form.filters",
        {
          "data-testid": "usage-lookup",
          onsubmit: (ev: Event) => {
            ev.preventDefault();
            const v = String(new FormData(ev.target as HTMLFormElement).get("user") ?? "").trim();
            ctx.navigate("/usage" + (v ? "?user=" + encodeURIComponent(v) : ""));
          },
        },
        h("label", {}, "User (Unix account; empty: you)", h("input", { name: "user", type: "text", value: user, placeholder: ctx.session.username ?? "" })),
        h("button", { type: "submit" }, "Show"),
      )
    : null;
  replace(
    main,
    h("div.head", {}, h("h1", {}, user ? `Usage of ${user}` : "Your usage"), h("button", { type: "button", onclick: () => void load() }, "Refresh")),
    h("p.muted", {}, user ? "What this account holds now against its limits (resolved with the groups of its latest job)." : "What you hold now against your limits; a submission that would pass one is refused."),
    lookup,
    body,
  );
  void load();
  return () => {
    live = false;
  };
};
