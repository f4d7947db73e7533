// Jobs: the caller's jobs (admins: everyone's), filtered and paged through /api/jobs,
// kept live by the /api/events stream.
import { get } from "../api";
import { h, errorBox, replace } from "../dom";
import { age, listQuery, num, progressPercent, stateInfo, type Job, type ListFilter } from "../render";
import type { components } from "../gen/openapi";
import type { Page } from "../main";

type JobList = components["schemas"]["JobList"];

const pageSize = 50;
const stateNames = ["", "submitting", "queued", "running", "pausing", "paused", "succeeded", "failed", "cancelled"];

/** badge is a job state as a coloured label. */
export function badge(state: string | undefined): HTMLElement {
  const s = stateInfo(state);
  return h(`span.badge.${s.tone}`, { "data-testid": "state" }, s.label);
}

/** progressBar shows step/total as a bar. */
export function progressBar(j: Job): HTMLElement {
  const p = progressPercent(j);
  if (p === null) return h("span.muted", {}, "–");
  const bar = h("span.bar", { role: "progressbar", "aria-valuenow": Math.round(p), "aria-valuemin": 0, "aria-valuemax": 100 });
  const fill = h("span.fill");
  fill.style.width = `${p}%`;
  bar.appendChild(fill);
  return h("span.progress", {}, bar, h("span.muted", {}, `${j.progress?.step ?? 0}/${j.progress?.total_steps ?? "?"}`));
}

function row(j: Job, admin: boolean): HTMLElement {
  return h(
    "tr",
    { "data-job": j.id ?? "" },
    h("td", {}, h("a", { href: `/jobs/${j.id}` }, j.name || (j.id ?? "").slice(0, 8)), h("div.muted.small", {}, j.spec?.model ?? "")),
    admin ? h("td", {}, j.user ?? "") : null,
    h("td", {}, badge(j.state), j.reason && stateInfo(j.state).terminal ? h("div.muted.small.reason", {}, j.reason) : null),
    h("td", {}, progressBar(j)),
    h("td.num", {}, num(j.progress?.loss ?? null)),
    h("td.num", {}, String(j.spec?.resources?.gpus ?? 0)),
    h("td.num", { title: j.created_at ?? "" }, age(j.created_at)),
  );
}

export const jobsPage: Page = (main, ctx) => {
  const admin = Boolean(ctx.session.admin);
  const q = ctx.query;
  const filter: ListFilter = {
    status: q.get("status") ?? "",
    model: q.get("model") ?? "",
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
    user: admin ? (q.get("user") ?? "") : "",
    cursor: q.get("cursor") ?? "",
    limit: pageSize,
  };
  const prev = (q.get("prev") ?? "").split(",").filter((c) => c !== "");
  const status = h("p.muted", { role: "status" }, "Loading…");
  const tbody = h("tbody");
  const table = h(
    "table.jobs",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "Job"), admin ? h("th", {}, "User") : null, h("th", {}, "State"), h("th", {}, "Progress"), h("th.num", {}, "Loss"), h("th.num", {}, "GPUs"), h("th.num", {}, "Age"))),
    tbody,
  );
  const pager = h("div.pager");
  const input = (name: keyof ListFilter, label: string, type = "text") =>
    h("label", {}, label, h("input", { name, type, value: String(filter[name] ?? ""), placeholder: type === "text" ? "any" : undefined }));
  const stateSel = h("select", { name: "status" }, ...stateNames.map((s) => h("option", { value: s, selected: s === filter.status }, s || "any")));
  const form = h(
    "form.filters",
    {
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const fd = new FormData(ev.target as HTMLFormElement);
        const f: ListFilter = {};
        for (const [k, v] of fd.entries()) (f as Record<string, string>)[k] = String(v);
        for (const k of ["from", "to"] as const) if (f[k]) f[k] = new Date(f[k] + "T00:00:00").toISOString();
        ctx.navigate("/" + listQuery(f));
      },
    },
    h("label", {}, "State", stateSel),
    input("model", "Model"),
    input("from", "From", "date"),
    input("to", "To", "date"),
    admin ? input("user", "User") : null,
    h("button", { type: "submit" }, "Filter"),
  );
  for (const k of ["from", "to"] as const) {
    const el = form.querySelector<HTMLInputElement>(`input[name=${k}]`);
    if (el && filter[k]) el.value = filter[k]!.slice(0, 10);
  }
  replace(main, h("div.head", {}, h("h1", {}, admin ? "All jobs" : "Your jobs"), h("a.button.primary", { href: "/submit" }, "Submit a job")), form, status, table, pager);

  const jobs = new Map<string, Job>();
  let order: string[] = [];
  const draw = () => {
    replace(tbody, ...order.map((id) => row(jobs.get(id)!, admin)));
    status.textContent = order.length ? "" : "No jobs match.";
  };

  const load = async () => {
    try {
      const l = await get<JobList>("/api/jobs" + listQuery(filter));
      jobs.clear();
      order = [];
      for (const j of l.jobs ?? []) {
        jobs.set(j.id!, j);
        order.push(j.id!);
      }
      draw();
      const base = { ...filter, limit: undefined };
      replace(
        pager,
        filter.cursor ? h("a.button", { href: "/" + listQuery({ ...base, cursor: prev[prev.length - 1] ?? "", prev: prev.slice(0, -1).join(",") } as ListFilter) }, "← Newer") : null,
        l.next_cursor ? h("a.button", { href: "/" + listQuery({ ...base, cursor: l.next_cursor, prev: [...prev, filter.cursor ?? ""].join(",") } as ListFilter), "data-testid": "next-page" }, "Older →") : null,
      );
    } catch (e) {
      replace(status, errorBox(e));
    }
  };

  // Live: one stream for the tab; a changed job is fetched again (at most once a second).
  const pending = new Set<string>();
  let timer = 0;
  const refresh = async () => {
    timer = 0;
    const ids = [...pending];
    pending.clear();
    for (const id of ids) {
      if (!jobs.has(id)) {
        if (!filter.cursor) await load(); // a new job: it belongs on the first page
        return;
      }
      try {
        jobs.set(id, await get<Job>(`/api/training/status/${id}`));
      } catch {
        // keep the row as it was
      }
    }
    draw();
  };
  const onEvent = (e: { job_id?: string }) => {
    if (!e.job_id) return;
    pending.add(e.job_id);
    if (!timer) timer = window.setTimeout(refresh, 1000);
  };
  void load().then(() => ctx.stream("/api/events", { state: onEvent, progress: onEvent, checkpoint: onEvent }));
  return () => clearTimeout(timer);
};
