// System: GPUs per cluster and partition, jobs by state, reconciler lag.
import { get } from "../api";
import { h, errorBox, replace } from "../dom";
import { age } from "../render";
import type { components } from "../gen/openapi";
import type { Page } from "../main";

type SystemStatus = components["schemas"]["SystemStatus"];

export const systemPage: Page = (main) => {
  const body = h("div", {}, h("p.muted", {}, "Loading…"));
  const load = async () => {
    try {
      const s = await get<SystemStatus>("/api/system/status");
      replace(
        body,
        h("p.muted.small", {}, `Gateway ${s.version ?? ""} · ${s.time ? new Date(s.time).toLocaleString() : ""}`),
        ...(s.clusters ?? []).map((c) =>
          h(
            "section.cluster",
            { "data-cluster": c.name ?? "" },
            h("h2", {}, `Cluster ${c.name}`),
            h(
              "p",
              {},
              "Reconciler: ",
              c.reconciler_last_run ? `last pass ${age(c.reconciler_last_run)} ago, lag ${(c.reconciler_lag_seconds ?? 0).toFixed(1)} s` : "no pass yet",
              c.reconciler_error ? h("span.error-text", {}, " · " + c.reconciler_error) : null,
            ),
            c.capacity_error ? errorBox(new Error("capacity: " + c.capacity_error)) : null,
            h(
              "table",
              {},
              h("thead", {}, h("tr", {}, h("th", {}, "Partition"), h("th", {}, "State"), h("th.num", {}, "GPUs total"), h("th.num", {}, "allocated"), h("th.num", {}, "free"), h("th.num", {}, "max per node"))),
              h(
                "tbody",
                {},
                ...(c.partitions ?? []).map((p) =>
                  h("tr", {}, h("td", {}, p.name ?? ""), h("td", {}, p.state ?? ""), h("td.num", {}, String(p.gpus_total ?? 0)), h("td.num", {}, String(p.gpus_allocated ?? 0)), h("td.num", {}, String(p.gpus_free ?? 0)), h("td.num", {}, String(p.max_node_gpus ?? 0))),
                ),
              ),
            ),
            h("h3", {}, "Jobs by state"),
            h("ul.counts", {}, ...Object.entries(c.jobs ?? {}).map(([st, n]) => h("li", {}, h("strong", {}, String(n)), " " + st))),
          ),
        ),
      );
    } catch (e) {
      replace(body, errorBox(e));
    }
  };
  replace(main, h("div.head", {}, h("h1", {}, "System"), h("button", { type: "button", onclick: load }, "Refresh")), body);
  void load();
};
