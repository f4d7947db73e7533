// Job: header and actions, live charts, GPUs, timeline, log with follow, checkpoints,
// model with manifest, spec and rendered script. One SSE stream (events from the
// start, then live, with log lines) drives every live part.
import { get, getText, send } from "../api";
import { Chart } from "../chart";
import { h, confirmDialog, errorBox, replace } from "../dom";
import {
  ApiError,
  actionState,
  bytes,
  chartGroups,
  errorText,
  mergeSeries,
  num,
  stateInfo,
  timeline,
  type Action,
  type Job,
  type JobEvent,
  type Series,
} from "../render";
import type { Page } from "../main";
import { badge, progressBar } from "./jobs";

interface Checkpoint {
  name: string;
  step: number;
  size: number;
  loss?: number | null;
  complete: boolean;
  problem?: string;
  created: string;
  best: boolean;
}
interface Manifest {
  step?: number;
  metric?: number;
  files: Record<string, { size: number; sha256: string }>;
}
interface MetricsResponse {
  last_step: number;
  series: Series;
}
interface GPU {
  index: number;
  name?: string;
  utilization_percent: number;
  memory_used_mb: number;
  memory_total_mb: number;
}

const maxLogLines = 2000;

const actionText: Record<Action, { label: string; title: string; text: string }> = {
  pause: { label: "Pause", title: "Pause this job?", text: "It writes a checkpoint and stops; resume continues from that checkpoint." },
  resume: { label: "Resume", title: "Resume this job?", text: "It is queued again and continues from its last checkpoint." },
  cancel: { label: "Cancel", title: "Cancel this job?", text: "It stops now and cannot be resumed. Its checkpoints are kept." },
};

export const jobPage: Page = (main, ctx) => {
  const id = ctx.params.id;
  const base = `/api/training/${id}`;
  let j: Job | null = null;
  let disposed = false;

  const header = h("div.jobhead");
  const msg = h("div.msg", { role: "status" });
  const facts = h("dl.facts");
  const charts = h("div.charts");
  const gpuBox = h("div.charts");
  const tl = h("ol.timeline");
  const logPre = h("pre.log", { "data-testid": "log", tabindex: 0 });
  const follow = h("input", { type: "checkbox", checked: true, "data-testid": "follow" }) as HTMLInputElement;
  const cpBox = h("div");
  const modelBox = h("div");
  const specPre = h("pre.code");
  const scriptPre = h("pre.code", {}, "…");
  replace(
    main,
    header,
    msg,
    facts,
    h("section", {}, h("h2", {}, "Charts"), charts),
    h("section", { id: "gpus" }, h("h2", {}, "GPUs"), gpuBox),
    h("section", {}, h("h2", {}, "Timeline"), tl),
    h("section", {}, h("div.head", {}, h("h2", {}, "Log"), h("div.buttons", {}, h("label.inline", {}, follow, " follow"), h("a.button", { href: `${base}/logs`, download: `${id}.log` }, "Download log"))), logPre),
    h("section", {}, h("h2", {}, "Checkpoints"), cpBox),
    h("section", {}, h("h2", {}, "Model"), modelBox),
    h("section", {}, h("h2", {}, "Spec"), specPre),
    h("section", {}, h("h2", {}, "Rendered script"), h("p.muted.small", {}, "What sbatch runs for this spec (a dry run of the spec on the current gateway)."), scriptPre),
  );

  const act = async (a: Action) => {
    if (!(await confirmDialog(actionText[a].title, actionText[a].text, actionText[a].label))) return;
    try {
      const out = await send<Job>("POST", `/api/training/${a}/${id}`);
      if (out && out.id) setJob(out);
      replace(msg);
    } catch (e) {
      replace(msg, errorBox(e));
    }
  };

  const drawHeader = () => {
    if (!j) return;
    const buttons = (["pause", "resume", "cancel"] as Action[]).map((a) => {
      const st = actionState(a, j!.state);
      return h(
        `button${a === "cancel" ? ".danger" : ""}`,
        { type: "button", disabled: !st.enabled, title: st.reason || actionText[a].title.replace("?", ""), "data-action": a, onclick: () => act(a) },
        actionText[a].label,
      );
    });
    replace(
      header,
      h("div", {}, h("h1", {}, j.name || "job " + id.slice(0, 8)), h("div.muted.small", {}, id)),
      h("div.state", {}, badge(j.state), j.reason ? h("span.reason", { "data-testid": "reason" }, j.reason) : null),
      h("div.actions", {}, ...buttons),
    );
    const p = j.progress ?? {};
    const fact = (k: string, v: string | Node) => [h("dt", {}, k), h("dd", {}, v)];
    replace(
      facts,
      ...fact("User", j.user ?? ""),
      ...fact("Cluster", j.cluster ?? ""),
      ...fact("Template", j.template ? `${j.template.name}@${j.template.version} (${j.template.owner})` : "–"),
      ...fact("Slurm job", j.slurm_id ? `${j.slurm_id}${j.slurm_state ? " (" + j.slurm_state + ")" : ""}` : "–"),
      ...fact("Restarts", String(j.restart_count ?? 0)),
      ...fact("Progress", progressBar(j)),
      ...fact("Phase", p.phase ?? "–"),
      ...fact("Loss", num(p.loss ?? null)),
      ...fact("Tokens/s", num(p.tokens_per_second ?? null)),
      ...fact("ETA", p.eta_seconds ? `${Math.round(p.eta_seconds)} s` : "–"),
      ...fact("Job directory", j.job_dir ?? ""),
    );
  };

  const setJob = (nj: Job) => {
    const was = j?.state;
    j = nj;
    drawHeader();
    if (was && was !== nj.state && stateInfo(nj.state).terminal) {
      void loadCheckpoints();
      void loadModel();
    }
  };

  // Charts: from /metrics, then ?since_step=<last> whenever the stream reports progress.
  const store = new Map<string, Map<number, number>>();
  const chartObjs = new Map<string, Chart>();
  let lastStep = -1;
  let fetching = false;
  let again = false;
  const loadMetrics = async () => {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const m = await get<MetricsResponse>(`${base}/metrics${lastStep >= 0 ? "?since_step=" + lastStep : ""}`);
      if (disposed) return;
      lastStep = Math.max(lastStep, m.last_step);
      for (const g of chartGroups) {
        const fields = g.fields.filter((f) => store.has(f) || (m.series[f]?.length ?? 0) > 0);
        const data = mergeSeries(store, Object.fromEntries(Object.entries(m.series).filter(([k]) => g.fields.includes(k))), fields);
        if (!fields.length) continue;
        let c = chartObjs.get(g.title);
        if (!c) {
          c = new Chart(g.title, fields);
          chartObjs.set(g.title, c);
          charts.appendChild(c.el);
        }
        c.set(data);
      }
      if (!chartObjs.size) replace(charts, h("p.muted", {}, "No metrics yet."));
      else charts.querySelector("p.muted")?.remove();
    } catch (e) {
      replace(msg, errorBox(e));
    } finally {
      fetching = false;
      if (again) {
        again = false;
        void loadMetrics();
      }
    }
  };

  // GPU samples arrive with progress events: utilisation and memory per GPU over time.
  const gpuSeries = new Map<number, { t: number[]; util: number[]; mem: number[] }>();
  const gpuCharts: Chart[] = [];
  const addGPUs = (at: string, gpus: GPU[] | undefined) => {
    if (!gpus?.length) return;
    const t = Date.parse(at) / 1000;
    for (const g of gpus) {
      let s = gpuSeries.get(g.index);
      if (!s) gpuSeries.set(g.index, (s = { t: [], util: [], mem: [] }));
      if (s.t.length && s.t[s.t.length - 1] >= t) continue;
      s.t.push(t);
      s.util.push(g.utilization_percent);
      s.mem.push(g.memory_used_mb);
    }
    const idx = [...gpuSeries.keys()].sort((a, b) => a - b);
    if (!gpuCharts.length) {
      replace(gpuBox);
      gpuCharts.push(new Chart("GPU utilisation %", idx.map((i) => `gpu${i}`), "time", true), new Chart("GPU memory MiB", idx.map((i) => `gpu${i}`), "time", true));
      for (const c of gpuCharts) gpuBox.appendChild(c.el);
    }
    const ts = gpuSeries.get(idx[0])!.t;
    const col = (k: "util" | "mem") => idx.map((i) => ts.map((_, n) => gpuSeries.get(i)![k][n] ?? null));
    gpuCharts[0].set([ts, ...col("util")]);
    gpuCharts[1].set([ts, ...col("mem")]);
  };
  replace(gpuBox, h("p.muted", {}, "No GPU samples (the job reports them while it runs on GPUs)."));

  // Timeline from the event log (the stream replays it from the first event).
  const events: JobEvent[] = [];
  const drawTimeline = () => {
    replace(
      tl,
      ...timeline(events).map((e) =>
        h(
          "li",
          {},
          h("time", { datetime: e.at }, new Date(e.at).toLocaleString()),
          " ",
          badge(e.state),
          e.restart ? h("span.muted", {}, ` restart ${e.restart}`) : null,
          e.reason ? h("span.reason", {}, " " + e.reason) : null,
          e.slurmState ? h("span.muted.small", {}, ` Slurm ${e.slurmState}`) : null,
        ),
      ),
    );
  };

  // Log: the last lines, then new lines from the stream.
  let logLines: string[] = [];
  const drawLog = () => {
    if (logLines.length > maxLogLines) logLines = logLines.slice(-maxLogLines);
    logPre.textContent = logLines.join("\n");
    if (follow.checked) logPre.scrollTop = logPre.scrollHeight;
  };
  const loadLog = async (): Promise<number | null> => {
    try {
      const { text, res } = await getText(`${base}/logs?tail=200`);
      logLines = text.split("\n");
      if (logLines[logLines.length - 1] === "") logLines.pop();
      drawLog();
      const next = Number(res.headers.get("X-Log-Next-Offset"));
      return Number.isFinite(next) ? next : null;
    } catch (e) {
      const t = errorText(e);
      logPre.textContent = `${t.title}: ${t.detail}`;
      return null;
    }
  };

  const loadCheckpoints = async () => {
    try {
      const r = await get<{ checkpoints: Checkpoint[] }>(`${base}/checkpoints`);
      const cps = r.checkpoints ?? [];
      if (!cps.length) return replace(cpBox, h("p.muted", {}, "No checkpoints yet."));
      replace(
        cpBox,
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th.num", {}, "Step"), h("th.num", {}, "Loss"), h("th.num", {}, "Size"), h("th", {}, "Status"), h("th", {}, ""))),
          h(
            "tbody",
            {},
            ...cps.map((c) =>
              h(
                "tr",
                { "data-checkpoint": c.name },
                h("td.num", {}, String(c.step)),
                h("td.num", {}, num(c.loss ?? null)),
                h("td.num", {}, bytes(c.size)),
                h("td", {}, c.complete ? (c.best ? "complete · best" : "complete") : h("span", { title: c.problem ?? "" }, "incomplete")),
                h(
                  "td.buttons",
                  {},
                  h("a.button", { href: `${base}/checkpoints/${encodeURIComponent(c.name)}`, download: `${c.name}.tar` }, "Download"),
                  h(
                    "button.danger",
                    {
                      type: "button",
                      onclick: async () => {
                        if (!(await confirmDialog(`Delete ${c.name}?`, "The checkpoint's files are removed from the cluster.", "Delete"))) return;
                        try {
                          await send("DELETE", `${base}/checkpoints/${encodeURIComponent(c.name)}`);
                          void loadCheckpoints();
                        } catch (e) {
                          replace(msg, errorBox(e));
                        }
                      },
                    },
                    "Delete",
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      if (e instanceof ApiError && e.code === "not_found") replace(cpBox, h("p.muted", {}, "No checkpoints yet."));
      else replace(cpBox, errorBox(e));
    }
  };

  const loadModel = async () => {
    try {
      const m = await get<Manifest>(`${base}/model/manifest`);
      const files = Object.entries(m.files ?? {}).sort(([a], [b]) => a.localeCompare(b));
      replace(
        modelBox,
        h("p", {}, h("a.button.primary", { href: `${base}/model`, download: `${id.slice(0, 8)}-model.tar`, "data-testid": "model-download" }, "Download model (tar)"), m.step ? ` step ${m.step}` : ""),
        h(
          "table.manifest",
          {},
          h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th.num", {}, "Size"), h("th", {}, "sha256"))),
          h(
            "tbody",
            {},
            ...files.map(([name, f]) =>
              h(
                "tr",
                { "data-file": name },
                h("td", {}, h("a", { href: `${base}/model?file=${encodeURIComponent(name)}`, download: name.split("/").pop() ?? name, "data-testid": "model-file" }, name)),
                h("td.num", {}, bytes(f.size)),
                h("td", {}, h("code.sha", { "data-testid": "sha256" }, f.sha256)),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      const t = errorText(e);
      replace(modelBox, h("p.muted", {}, t.title === "Not found" ? "No model yet: it is written when the job succeeds." : `${t.title}: ${t.detail}`));
    }
  };

  const loadScript = async (spec: unknown) => {
    try {
      const r = await send<{ script?: string }>("POST", "/api/training/execute?dry_run=1", spec);
      scriptPre.textContent = r?.script ?? "";
    } catch (e) {
      const t = errorText(e);
      scriptPre.textContent = `${t.title}: ${t.detail}`;
    }
  };

  (async () => {
    try {
      setJob(await get<Job>(`/api/training/status/${id}`));
    } catch (e) {
      const t = errorText(e);
      replace(main, h("h1", {}, t.title === "Not found" ? "Job not found" : t.title), errorBox(e), h("p", {}, h("a", { href: "/" }, "Back to your jobs")));
      return;
    }
    specPre.textContent = JSON.stringify(j!.spec, null, 2);
    void loadScript(j!.spec);
    void loadMetrics();
    void loadCheckpoints();
    void loadModel();
    const off = await loadLog();
    if (disposed) return;
    let metricsTimer = 0;
    const es = ctx.stream(`${base}/events?last_event_id=0&logs=1${off !== null ? "&log_offset=" + off : ""}`, {
      state: (e: JobEvent) => {
        events.push(e);
        drawTimeline();
        if (e.state && j && e.state !== j.state) void get<Job>(`/api/training/status/${id}`).then(setJob, () => {});
      },
      progress: (e: JobEvent) => {
        events.push(e);
        const d = (e.data ?? {}) as Record<string, any>;
        if (j) {
          j = { ...j, progress: { ...j.progress, ...d } };
          drawHeader();
        }
        addGPUs(e.at, d.gpus as GPU[] | undefined);
        if (!metricsTimer)
          metricsTimer = window.setTimeout(() => {
            metricsTimer = 0;
            void loadMetrics();
          }, 300);
      },
      checkpoint: () => void loadCheckpoints(),
      log: (l: { lines: string[] }) => {
        logLines.push(...(l.lines ?? []));
        drawLog();
      },
      error: (e: { code?: string; message?: string }) => replace(msg, errorBox(new Error(e.message ?? "stream ended"))),
    });
    // After a reconnect the stream resumes from the last event id; refresh the header
    // and charts too, in case the gap hid a change.
    let opened = 0;
    es.addEventListener("open", () => {
      if (opened++ === 0) return;
      void get<Job>(`/api/training/status/${id}`).then(setJob, () => {});
      void loadMetrics();
    });
  })();
  return () => {
    disposed = true;
    for (const c of [...chartObjs.values(), ...gpuCharts]) c.destroy();
  };
};
