// Pure functions that decide what the pages show: states, allowed actions, errors in
// words, spec validation messages per field. No DOM here, so node's test runner covers it.
import type { components } from "./gen/openapi";

export type Job = components["schemas"]["Job"];
export type State = components["schemas"]["State"];
export type Spec = components["schemas"]["Spec"];
export type ErrorCode = components["schemas"]["Error"]["error"]["code"];

/** An API error as the page shows it: the API's code and message, plus the HTTP status. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** apiError builds an ApiError from a response status and body text (JSON error or not). */
export function apiError(status: number, body: string, statusText = ""): ApiError {
  try {
    const j = JSON.parse(body);
    if (j && typeof j.error === "object" && typeof j.error.message === "string") {
      return new ApiError(status, String(j.error.code ?? "unknown"), j.error.message);
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.trim().slice(0, 200);
  return new ApiError(status, status >= 500 ? "unavailable" : "unknown", text || `HTTP ${status} ${statusText}`.trim());
}

const codeTitles: Record<string, string> = {
  invalid: "The request is not valid",
  unprocessable: "The spec is not acceptable",
  not_found: "Not found",
  conflict: "Not possible in this state",
  unauthorized: "You are not logged in",
  forbidden: "Not allowed",
  too_many: "Too many active jobs",
  too_large: "Too large",
  unavailable: "The gateway or the cluster is unavailable; try again shortly",
  internal: "Something went wrong on the gateway",
  method_not_allowed: "Not allowed",
  network: "Cannot reach the gateway",
};

/** errorText is an error in words: a title for its code and the API's message. */
export function errorText(e: unknown): { title: string; detail: string } {
  if (e instanceof ApiError) {
    return { title: codeTitles[e.code] ?? `Error (HTTP ${e.status})`, detail: e.message };
  }
  if (e instanceof Error) return { title: codeTitles.network, detail: e.message };
  return { title: "Error", detail: String(e) };
}

export interface StateInfo {
  label: string;
  tone: "neutral" | "active" | "warn" | "good" | "bad";
  terminal: boolean;
}

const states: Record<string, StateInfo> = {
  submitting: { label: "submitting", tone: "neutral", terminal: false },
  queued: { label: "queued", tone: "neutral", terminal: false },
  running: { label: "running", tone: "active", terminal: false },
  pausing: { label: "pausing", tone: "warn", terminal: false },
  paused: { label: "paused", tone: "warn", terminal: false },
  succeeded: { label: "succeeded", tone: "good", terminal: true },
  failed: { label: "failed", tone: "bad", terminal: true },
  cancelled: { label: "cancelled", tone: "bad", terminal: true },
};

/** stateInfo is how a state is shown; an unknown state is shown as itself, neutral. */
export function stateInfo(s: string | undefined): StateInfo {
  return states[s ?? ""] ?? { label: s || "unknown", tone: "neutral", terminal: false };
}

export type Action = "pause" | "resume" | "cancel";

/** An action button's state: enabled, or disabled with the reason as tooltip. */
export interface ActionState {
  enabled: boolean;
  reason: string;
}

/** actionState mirrors the API's rules (internal/api/jobs.go) for pause, resume, cancel. */
export function actionState(a: Action, s: string | undefined): ActionState {
  const st = s ?? "";
  const no = (reason: string) => ({ enabled: false, reason });
  const yes = { enabled: true, reason: "" };
  const done = stateInfo(st).terminal;
  switch (a) {
    case "pause":
      if (st === "queued" || st === "running") return yes;
      if (st === "submitting") return no("The job is still being submitted; pause once it is queued.");
      if (st === "pausing" || st === "paused") return no(`The job is already ${st}.`);
      return no(done ? `The job already ${st}.` : `A ${st} job cannot be paused.`);
    case "resume":
      if (st === "paused") return yes;
      if (st === "pausing") return no("The job is still writing its checkpoint; resume once it is paused.");
      if (done) return no(`The job already ${st}; submit it again instead.`);
      return no(`The job is ${st}, not paused.`);
    case "cancel":
      if (!done) return yes;
      return no(`The job already ${st}.`);
  }
}

/** progressPercent is step/total_steps in [0, 100], or null when unknown. */
export function progressPercent(j: Job): number | null {
  const p = j.progress;
  if (!p || !p.total_steps || p.total_steps <= 0) return j.state === "succeeded" ? 100 : null;
  return Math.max(0, Math.min(100, (100 * (p.step ?? 0)) / p.total_steps));
}

/** age is a compact "how long ago": 45s, 12m, 3h, 2d. */
export function age(iso: string | undefined, now: number = Date.now()): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** bytes formats a size: 512 B, 1.5 KiB, 20.0 MiB. */
export function bytes(n: number | undefined): string {
  if (n === undefined || n === null || Number.isNaN(n)) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** num formats a metric value compactly. */
export function num(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** A validation message about one spec field ("" for the whole spec). */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * fieldErrors splits the API's spec errors into per-field messages. It knows the
 * gateway's formats: "invalid spec: a.b: msg; c: msg", `field "a.b": want int, got
 * string`, `unknown field "x"`; anything else is one error for the whole spec.
 */
export function fieldErrors(message: string): FieldError[] {
  let m = message.trim();
  const typed = /^field "([^"]+)": (.*)$/s.exec(m);
  if (typed) return [{ field: typed[1], message: typed[2] }];
  const unknown = /^unknown field "([^"]+)"$/.exec(m);
  if (unknown) return [{ field: unknown[1], message: "unknown field" }];
  if (!m.startsWith("invalid spec: ")) return [{ field: "", message: m }];
  m = m.slice("invalid spec: ".length);
  const out: FieldError[] = [];
  for (const part of m.split(/; (?=[a-z_][a-z0-9_.\[\]]*: )/)) {
    const f = /^([a-z_][a-z0-9_.\[\]]*): (.*)$/s.exec(part);
    if (f) out.push({ field: f[1], message: f[2] });
    else out.push({ field: "", message: part });
  }
  return out;
}

/**
 * fieldLine finds the 1-based line of a dotted field (a.b.c, or a.b[2]) in a YAML or
 * JSON spec text by following indentation; 0 when not found.
 */
export function fieldLine(text: string, field: string): number {
  if (!field) return 0;
  const keys = field.replace(/\[\d+\]/g, "").split(".");
  const lines = text.split("\n");
  let from = 0;
  let minIndent = -1;
  let found = 0;
  for (const key of keys) {
    const re = new RegExp(`^(\\s*)(?:"${key}"|${key})\\s*:`);
    found = 0;
    for (let i = from; i < lines.length; i++) {
      const mm = re.exec(lines[i]);
      if (!mm) continue;
      const indent = mm[1].length;
      if (indent <= minIndent) continue;
      found = i + 1;
      from = i + 1;
      minIndent = indent;
      break;
    }
    if (!found) return 0;
  }
  return found;
}

/** A job-list filter as the API's query parameters. */
export interface ListFilter {
  status?: string;
  model?: string;
  from?: string;
  to?: string;
  user?: string;
  cursor?: string;
  limit?: number;
}

/** listQuery builds /api/jobs's query string from a filter, leaving out empty values. */
export function listQuery(f: ListFilter): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

/** safeNext keeps a return path on this site (for login), else "/". */
export function safeNext(p: string): string {
  if (!p.startsWith("/") || p.startsWith("//") || p.startsWith("/auth/") || /[\x00-\x1f\x7f\\]/.test(p)) return "/";
  return p;
}

/** An entry of the job's state timeline. */
export interface TimelineEntry {
  at: string;
  state: string;
  reason: string;
  slurmState: string;
  /** restart is how many times the job had run before this entry entered running again (0: first run). */
  restart: number;
}

/** A job event as the streams send it. */
export interface JobEvent {
  job_id: string;
  id: number;
  kind: string;
  state?: string;
  at: string;
  data?: Record<string, unknown>;
}

/** timeline keeps the state events (data {from, to, reason, slurm_state}) in order. */
export function timeline(events: JobEvent[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  let runs = 0;
  for (const e of events) {
    if (e.kind !== "state") continue;
    const d = e.data ?? {};
    const state = typeof d.to === "string" ? d.to : (e.state ?? "");
    const str = (v: unknown) => (typeof v === "string" ? v : "");
    const last = out[out.length - 1];
    if (last && last.state === state && last.reason === str(d.reason)) continue;
    const restart = state === "running" ? runs++ : 0;
    out.push({ at: e.at, state, reason: str(d.reason), slurmState: str(d.slurm_state), restart });
  }
  return out;
}

/** Chart groups of the job page: title and the series they draw, when present. */
export const chartGroups: { title: string; fields: string[] }[] = [
  { title: "Loss", fields: ["loss", "eval_loss"] },
  { title: "Learning rate", fields: ["learning_rate"] },
  { title: "Tokens/s", fields: ["tokens_per_second"] },
  { title: "Reward accuracy (DPO)", fields: ["reward_accuracy", "eval_reward_accuracy"] },
  { title: "Reward margin (DPO)", fields: ["reward_margin", "eval_reward_margin"] },
];

export type Series = Record<string, [number, number][]>;

/**
 * mergeSeries adds new [step, value] points to the stored series (a step seen again
 * keeps the newer value) and returns uPlot's columnar data for the fields: x steps,
 * then one column per field with null where a field has no point at that step.
 */
export function mergeSeries(store: Map<string, Map<number, number>>, add: Series, fields: string[]): (number | null)[][] {
  for (const [k, pts] of Object.entries(add)) {
    let m = store.get(k);
    if (!m) store.set(k, (m = new Map()));
    for (const [s, v] of pts) m.set(s, v);
  }
  const steps = new Set<number>();
  for (const f of fields) for (const s of store.get(f)?.keys() ?? []) steps.add(s);
  const xs = [...steps].sort((a, b) => a - b);
  const cols: (number | null)[][] = [xs];
  for (const f of fields) {
    const m = store.get(f);
    cols.push(xs.map((s) => m?.get(s) ?? null));
  }
  return cols;
}

/** The common fields the Submit page's form edits. */
export interface FormFields {
  name: string;
  method: string;
  model: string;
  dataset_path: string;
  eval_path: string;
  max_steps: number;
  gpus: number;
  lora: boolean;
}

/** formFromSpec reads the form's fields from a spec object. */
export function formFromSpec(s: Record<string, any>): FormFields {
  return {
    name: s.name ?? "",
    method: s.method ?? "sft",
    model: s.model ?? "",
    dataset_path: s.dataset?.path ?? "",
    eval_path: s.dataset?.eval_path ?? "",
    max_steps: Number(s.hyperparameters?.max_steps ?? 0),
    gpus: Number(s.resources?.gpus ?? 0),
    lora: Boolean(s.lora?.enabled),
  };
}

/** specWithForm writes the form's fields into a copy of the spec (other fields kept). */
export function specWithForm(s: Record<string, any>, f: FormFields): Record<string, any> {
  const out = structuredClone(s ?? {});
  const set = (o: Record<string, any>, k: string, v: unknown) => {
    if (v === "" || v === undefined) delete o[k];
    else o[k] = v;
  };
  set(out, "name", f.name);
  set(out, "method", f.method);
  set(out, "model", f.model);
  out.dataset = out.dataset ?? {};
  set(out.dataset, "path", f.dataset_path);
  set(out.dataset, "eval_path", f.eval_path);
  out.hyperparameters = out.hyperparameters ?? {};
  out.hyperparameters.max_steps = f.max_steps;
  out.resources = out.resources ?? {};
  out.resources.gpus = f.gpus;
  out.lora = out.lora ?? {};
  out.lora.enabled = f.lora;
  return out;
}

/**
 * resolvePaths makes relative dataset paths absolute against base (as ftctl does with
 * the spec file's directory); absolute paths and an empty base leave the spec as is.
 */
export function resolvePaths(s: Record<string, any>, base: string): Record<string, any> {
  const b = base.replace(/\/+$/, "");
  if (!b.startsWith("/")) return s;
  const out = structuredClone(s);
  const fix = (p: unknown) => (typeof p === "string" && p !== "" && !p.startsWith("/") ? `${b}/${p.replace(/^\.\//, "")}` : p);
  if (out.dataset) {
    out.dataset.path = fix(out.dataset.path);
    if (out.dataset.eval_path !== undefined) out.dataset.eval_path = fix(out.dataset.eval_path);
  }
  return out;
}

/** TemplateItem is one template of GET /api/templates. */
export type TemplateItem = components["schemas"]["Template"];

/** templateLabel is how the Submit page's selector names a template. */
export function templateLabel(t: TemplateItem): string {
  return `${t.name} v${t.latest_version} (${t.visibility === "shared" ? `shared by ${t.owner}` : "yours"})`;
}

const isObject = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * mergeDiff returns the JSON Merge Patch (RFC 7396) that turns base into target, as the
 * gateway applies overrides to a template: changed values and lists as they are,
 * sections field by field, and null for each field target no longer has.
 */
export function mergeDiff(base: Record<string, any>, target: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const k of Object.keys(base)) if (!(k in target)) out[k] = null;
  for (const [k, v] of Object.entries(target)) {
    if (isObject(v) && isObject(base[k])) {
      const d = mergeDiff(base[k], v);
      if (Object.keys(d).length) out[k] = d;
    } else if (JSON.stringify(v) !== JSON.stringify(base[k])) {
      out[k] = v;
    }
  }
  return out;
}

// ---- Usage and limits (GET /api/usage) ----

export type Usage = components["schemas"]["Usage"];

/** A limit as the Usage page draws it: a bar of used against limit, and notes. */
export interface LimitBar {
  key: "active_jobs" | "queued_jobs" | "gpus" | "gpu_hours" | "group_gpu_hours";
  label: string;
  used: number;
  /** limit is 0 when there is none. */
  limit: number;
  /** percent of the limit used, in [0, 100]; null without a limit. */
  percent: number | null;
  /** text is "used of limit" in words ("3 of 10", "0.42 of 40 GPU-hours", "2 (no limit)"). */
  text: string;
  /** tone: good below 80%, warn from 80%, bad at the limit. */
  tone: "good" | "warn" | "bad";
  /** notes explain what counts and, at the limit, what happens and when it frees up. */
  notes: string[];
}

/** hours formats GPU-hours: two decimals below 10, one above. */
export function hours(v: number): string {
  if (!Number.isFinite(v)) return "–";
  return Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(1);
}

/** duration is a compact span of seconds: 45s, 12m, 5h 3m, 7d, 1d 6h. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)}h${m ? ` ${m}m` : ""}`;
  }
  const hh = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)}d${hh ? ` ${hh}h` : ""}`;
}

/** utc is a timestamp as "2026-12-01 12:00:05 UTC" ("" when absent or not a time). */
export function utc(iso: string | undefined | null): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  return new Date(t).toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

function bar(key: LimitBar["key"], label: string, used: number, limit: number, fmt: (n: number) => string, unit = ""): LimitBar {
  const lim = limit > 0 ? limit : 0;
  const percent = lim ? Math.max(0, Math.min(100, (100 * used) / lim)) : null;
  const u = unit ? ` ${unit}` : "";
  return {
    key,
    label,
    used,
    limit: lim,
    percent,
    text: lim ? `${fmt(used)} of ${fmt(lim)}${u}` : `${fmt(used)}${u} (no limit)`,
    tone: lim && used >= lim ? "bad" : percent !== null && percent >= 80 ? "warn" : "good",
    notes: [],
  };
}

/** usageBars turns GET /api/usage into the bars the Usage page draws: the four
 * per-user limits, then one per shared group budget. */
export function usageBars(u: Usage, now: number = Date.now()): LimitBar[] {
  const l = u.limits ?? { max_active_jobs: 0, max_queued_jobs: 0, max_gpus: 0, gpu_hours_per_window: 0, window_seconds: 0 };
  const int = (n: number) => String(n);
  const active = bar("active_jobs", "Active jobs", u.active_jobs ?? 0, l.max_active_jobs, int);
  active.notes.push("Unfinished jobs: submitting, queued, running, pausing and paused.");
  const queued = bar("queued_jobs", "Queued jobs", u.queued_jobs ?? 0, l.max_queued_jobs, int);
  queued.notes.push("Jobs waiting to start: submitting and queued.");
  const gpus = bar("gpus", "GPUs", u.gpus_held ?? 0, l.max_gpus, int);
  gpus.notes.push(`${u.gpus_in_use ?? 0} in use by running jobs; the limit counts the GPUs of submitting, queued, running and pausing jobs (${u.gpus_held ?? 0}).`);
  const win = l.window_seconds > 0 ? duration(l.window_seconds) : "";
  const gh = bar("gpu_hours", win ? `GPU-hours in the last ${win}` : "GPU-hours", u.gpu_hours ?? 0, l.gpu_hours_per_window, hours, "GPU-hours");
  gh.notes.push("Each run's GPUs times its time in the rolling window; running jobs count up to now.");
  for (const b of [active, queued, gpus]) {
    if (b.tone === "bad") b.notes.push("At the limit: new submissions (and resumes) are refused until one of these jobs ends.");
  }
  if (gh.tone === "bad") {
    if (u.gpu_hours_frees_at) {
      const t = Date.parse(u.gpu_hours_frees_at);
      const inText = Number.isNaN(t) ? "" : t > now ? ` (in ${duration((t - now) / 1000)})` : " (now)";
      gh.notes.push(`At the limit: new GPU jobs are refused; it frees up at ${utc(u.gpu_hours_frees_at)}${inText}.`);
    } else {
      gh.notes.push("At the limit: new GPU jobs are refused; your running jobs alone hold it, so it frees up only after they end.");
    }
  }
  const groups = (u.group_budgets ?? []).map((g) => {
    const b = bar("group_gpu_hours", `Group ${g.group}: shared GPU-hours${win ? ` in the last ${win}` : ""}`, g.gpu_hours, g.gpu_hours_per_window, hours, "GPU-hours");
    b.notes.push(`All runs of the jobs of group ${g.group}'s members count, whoever ran them.`);
    if (b.tone === "bad") {
      if (g.frees_at) {
        const t = Date.parse(g.frees_at);
        const inText = Number.isNaN(t) ? "" : t > now ? ` (in ${duration((t - now) / 1000)})` : " (now)";
        b.notes.push(`Used up: new GPU jobs are refused; it frees up at ${utc(g.frees_at)}${inText}.`);
      } else {
        b.notes.push("Used up: new GPU jobs are refused; the group's running jobs alone hold it, so it frees up only after they end.");
      }
    }
    return b;
  });
  return [active, queued, gpus, gh, ...groups];
}

// ---- Webhooks (/api/webhooks) ----

export type Webhook = components["schemas"]["Webhook"];
export type WebhookDelivery = components["schemas"]["WebhookDelivery"];
export type WebhookEvent = components["schemas"]["WebhookRequest"]["events"][number];

/** webhookEvents are the events the API accepts, in the order the form lists them. */
export const webhookEvents = ["job.succeeded", "job.failed", "job.cancelled", "job.paused", "job.checkpoint"] as const satisfies readonly WebhookEvent[];
// Fails to compile when openapi.json names an event the list lacks.
export const webhookEventsComplete: Exclude<WebhookEvent, (typeof webhookEvents)[number]> extends never ? true : never = true;

/** What each event means, for the form's checkboxes. */
export const webhookEventText: Record<WebhookEvent, string> = {
  "job.succeeded": "a job succeeded",
  "job.failed": "a job failed",
  "job.cancelled": "a job was cancelled",
  "job.paused": "a job was paused",
  "job.checkpoint": "a job wrote a checkpoint",
};

/**
 * formErrors places an API error at a form's field: the gateway names the field first
 * ("url: must be an http:// or https:// URL", "events: name at least one of ..."); an
 * error that names none of fields is the form's (field "").
 */
export function formErrors(e: unknown, fields: string[]): FieldError {
  const msg = e instanceof Error ? e.message : String(e);
  for (const f of fields) {
    if (msg.startsWith(f + ": ")) return { field: f, message: msg.slice(f.length + 2) };
  }
  return { field: "", message: msg };
}

/** A delivery of the log as the Webhooks page shows it: each cell in words. */
export interface DeliveryView {
  id: string;
  event: string;
  jobID: string;
  state: { label: string; tone: StateInfo["tone"] };
  attempts: string;
  /** response is the last attempt's answer: "HTTP 204", "HTTP 500: ...", "no answer: ...", or "not attempted yet". */
  response: string;
  lastAttempt: string;
  nextAttempt: string;
  delivered: string;
  created: string;
}

const deliveryTones: Record<string, StateInfo["tone"]> = { pending: "warn", delivered: "good", failed: "bad" };

/** deliveryView is one row of an endpoint's delivery log. */
export function deliveryView(d: WebhookDelivery): DeliveryView {
  let response = "not attempted yet";
  if (d.last_status) response = `HTTP ${d.last_status}` + (d.last_error ? `: ${d.last_error}` : "");
  else if (d.last_error) response = `no answer: ${d.last_error}`;
  else if ((d.attempts ?? 0) > 0) response = "no answer";
  return {
    id: d.id ?? "",
    event: d.event ?? "",
    jobID: d.job_id ?? "",
    state: { label: d.state || "unknown", tone: deliveryTones[d.state ?? ""] ?? "neutral" },
    attempts: String(d.attempts ?? 0),
    response,
    lastAttempt: utc(d.last_attempt_at),
    nextAttempt: d.state === "pending" ? utc(d.next_attempt_at) : "",
    delivered: utc(d.delivered_at),
    created: utc(d.created_at),
  };
}
