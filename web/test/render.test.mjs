// Unit tests for the pure rendering decisions (states, actions, errors, spec errors).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ApiError, actionState, age, apiError, bytes, errorText, fieldErrors, fieldLine, formFromSpec,
  listQuery, mergeDiff, mergeSeries, num, progressPercent, resolvePaths, safeNext, specWithForm, stateInfo, templateLabel, timeline,
  deliveryView, duration, formErrors, hours, usageBars, utc, webhookEventText, webhookEvents,
} from "../build/test/render.mjs";

test("stateInfo: every API state has a label and tone; unknown states show as themselves", () => {
  const cases = [
    ["submitting", "neutral", false], ["queued", "neutral", false], ["running", "active", false],
    ["pausing", "warn", false], ["paused", "warn", false], ["succeeded", "good", true],
    ["failed", "bad", true], ["cancelled", "bad", true], ["weird", "neutral", false],
  ];
  for (const [s, tone, terminal] of cases) {
    const got = stateInfo(s);
    assert.equal(got.label, s);
    assert.equal(got.tone, tone, s);
    assert.equal(got.terminal, terminal, s);
  }
  assert.equal(stateInfo(undefined).label, "unknown");
});

test("actionState mirrors the API's rules, with a reason when disabled", () => {
  const table = {
    submitting: { pause: false, resume: false, cancel: true },
    queued: { pause: true, resume: false, cancel: true },
    running: { pause: true, resume: false, cancel: true },
    pausing: { pause: false, resume: false, cancel: true },
    paused: { pause: false, resume: true, cancel: true },
    succeeded: { pause: false, resume: false, cancel: false },
    failed: { pause: false, resume: false, cancel: false },
    cancelled: { pause: false, resume: false, cancel: false },
  };
  for (const [state, want] of Object.entries(table)) {
    for (const [a, enabled] of Object.entries(want)) {
      const got = actionState(a, state);
      assert.equal(got.enabled, enabled, `${a} when ${state}`);
      if (!enabled) assert.ok(got.reason.length > 5, `${a} when ${state} needs a reason`);
      else assert.equal(got.reason, "");
    }
  }
  assert.match(actionState("resume", "pausing").reason, /checkpoint/);
  assert.match(actionState("pause", "paused").reason, /already paused/);
});

test("apiError reads the API's error body; other bodies become a readable message", () => {
  const e = apiError(409, '{"error":{"code":"conflict","message":"job already succeeded"}}');
  assert.ok(e instanceof ApiError);
  assert.deepEqual([e.status, e.code, e.message], [409, "conflict", "job already succeeded"]);
  const t = errorText(e);
  assert.equal(t.title, "Not possible in this state");
  assert.equal(t.detail, "job already succeeded");
  const p = apiError(502, "<html>bad gateway</html>", "Bad Gateway");
  assert.equal(p.code, "unavailable");
  assert.equal(apiError(404, "", "Not Found").message, "HTTP 404 Not Found");
  assert.equal(errorText(new TypeError("Failed to fetch")).title, "Cannot reach the gateway");
  assert.equal(errorText(apiError(401, '{"error":{"code":"unauthorized","message":"x"}}')).title, "You are not logged in");
});

test("fieldErrors splits the gateway's spec messages per field", () => {
  const cases = [
    ["invalid spec: hyperparameters.learning_rate: must be > 0 and <= 1, got 5; resources.gpus: must be between 0 and 8, got 9",
      [["hyperparameters.learning_rate", "must be > 0 and <= 1, got 5"], ["resources.gpus", "must be between 0 and 8, got 9"]]],
    ['field "hyperparameters.max_steps": want int, got string', [["hyperparameters.max_steps", "want int, got string"]]],
    ['unknown field "lr"', [["lr", "unknown field"]]],
    ["invalid spec: lora.target_modules[1]: must match x; y, got \"a;b\"", [["lora.target_modules[1]", 'must match x; y, got "a;b"']]],
    ["body: truncated JSON", [["", "body: truncated JSON"]]],
  ];
  for (const [msg, want] of cases) {
    assert.deepEqual(fieldErrors(msg).map((e) => [e.field, e.message]), want, msg);
  }
});

test("fieldLine finds a dotted field's line in YAML and JSON", () => {
  const yaml = "name: x\ndataset:\n  path: a\nhyperparameters:\n  # c\n  learning_rate: 5\nlogging:\n  learning_rate: 1\n";
  assert.equal(fieldLine(yaml, "hyperparameters.learning_rate"), 6);
  assert.equal(fieldLine(yaml, "logging.learning_rate"), 8);
  assert.equal(fieldLine(yaml, "dataset.path"), 3);
  assert.equal(fieldLine(yaml, "resources.gpus"), 0);
  assert.equal(fieldLine(yaml, ""), 0);
  const json = '{\n  "name": "x",\n  "lora": {\n    "target_modules": ["a"]\n  }\n}';
  assert.equal(fieldLine(json, "lora.target_modules[0]"), 4);
});

test("progress, age, bytes, num", () => {
  assert.equal(progressPercent({ progress: { step: 50, total_steps: 200 } }), 25);
  assert.equal(progressPercent({ progress: { step: 500, total_steps: 200 } }), 100);
  assert.equal(progressPercent({ state: "queued" }), null);
  assert.equal(progressPercent({ state: "succeeded" }), 100);
  const now = Date.parse("2026-01-02T00:00:00Z");
  assert.equal(age("2026-01-01T23:59:15Z", now), "45s");
  assert.equal(age("2026-01-01T23:00:00Z", now), "1h");
  assert.equal(age("2025-12-30T00:00:00Z", now), "3d");
  assert.equal(age("nonsense", now), "");
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(1536), "1.5 KiB");
  assert.equal(num(null), "–");
  assert.equal(num(0.1234567), "0.1235");
  assert.equal(num(0.00001), "1.00e-5");
});

test("listQuery leaves out empty filters; safeNext keeps paths on this site", () => {
  assert.equal(listQuery({ status: "running", model: "", limit: 50 }), "?status=running&limit=50");
  assert.equal(listQuery({}), "");
  for (const [p, want] of [["/jobs/1", "/jobs/1"], ["//evil.example", "/"], ["https://evil", "/"], ["/\\evil", "/"], ["/auth/login", "/"], ["/\t/evil", "/"], ["/a\\b", "/"]]) {
    assert.equal(safeNext(p), want, p);
  }
});

test("timeline keeps state changes with reasons and counts restarts", () => {
  const ev = (id, to, reason = "") => ({ job_id: "j", id, kind: "state", at: `2026-01-01T00:00:0${id}Z`, state: to, data: { from: "", to, reason } });
  const got = timeline([ev(1, "queued"), ev(2, "running"), { job_id: "j", id: 3, kind: "progress", at: "x" }, ev(4, "queued", "requeued after PREEMPTED"), ev(5, "running"), ev(6, "cancelled", "cancelled by alice")]);
  assert.deepEqual(got.map((e) => [e.state, e.reason, e.restart]), [
    ["queued", "", 0], ["running", "", 0], ["queued", "requeued after PREEMPTED", 0], ["running", "", 1], ["cancelled", "cancelled by alice", 0],
  ]);
});

test("mergeSeries aligns fields on steps, newer values win, gaps are null", () => {
  const store = new Map();
  let cols = mergeSeries(store, { loss: [[10, 2], [20, 1.5]], eval_loss: [[20, 1.7]] }, ["loss", "eval_loss"]);
  assert.deepEqual(cols, [[10, 20], [2, 1.5], [null, 1.7]]);
  cols = mergeSeries(store, { loss: [[20, 1.4], [30, 1.2]] }, ["loss", "eval_loss"]);
  assert.deepEqual(cols, [[10, 20, 30], [2, 1.4, 1.2], [null, 1.7, null]]);
});

test("the form reads and writes the common fields, keeping the rest of the spec", () => {
  const spec = { name: "a", method: "sft", model: "builtin:tiny", dataset: { path: "/d/t.jsonl" }, hyperparameters: { max_steps: 300, learning_rate: 0.003 }, resources: { gpus: 1, cpus: 2 }, lora: { enabled: false } };
  const f = formFromSpec(spec);
  assert.deepEqual(f, { name: "a", method: "sft", model: "builtin:tiny", dataset_path: "/d/t.jsonl", eval_path: "", max_steps: 300, gpus: 1, lora: false });
  const out = specWithForm(spec, { ...f, max_steps: 10, lora: true, eval_path: "/d/e.jsonl" });
  assert.equal(out.hyperparameters.max_steps, 10);
  assert.equal(out.hyperparameters.learning_rate, 0.003);
  assert.equal(out.resources.cpus, 2);
  assert.equal(out.lora.enabled, true);
  assert.equal(out.dataset.eval_path, "/d/e.jsonl");
  assert.equal(spec.hyperparameters.max_steps, 300, "the input is not changed");
});

test("resolvePaths makes relative dataset paths absolute against the base directory", () => {
  const s = { dataset: { path: "data/t.jsonl", eval_path: "./data/e.jsonl" } };
  assert.deepEqual(resolvePaths(s, "/repo/examples/").dataset, { path: "/repo/examples/data/t.jsonl", eval_path: "/repo/examples/data/e.jsonl" });
  assert.deepEqual(resolvePaths({ dataset: { path: "/abs/t.jsonl" } }, "/x").dataset, { path: "/abs/t.jsonl" });
  assert.equal(resolvePaths(s, "relative"), s);
});

test("mergeDiff: the overrides that turn a template's spec into the edited one (RFC 7396)", () => {
  const base = { method: "sft", model: "builtin:tiny", hyperparameters: { max_steps: 100, learning_rate: 0.003 }, lora: { enabled: true, target_modules: ["q", "v"] }, resources: { partition: "urgent" } };
  const cases = [
    [structuredClone(base), {}],
    [{ ...structuredClone(base), name: "x" }, { name: "x" }],
    [{ ...structuredClone(base), hyperparameters: { max_steps: 50, learning_rate: 0.003 } }, { hyperparameters: { max_steps: 50 } }],
    [{ ...structuredClone(base), lora: { enabled: true, target_modules: ["k"] } }, { lora: { target_modules: ["k"] } }],
    [{ method: "sft", model: "builtin:tiny", hyperparameters: { max_steps: 100 }, lora: { enabled: true, target_modules: ["q", "v"] } },
      { hyperparameters: { learning_rate: null }, resources: null }],
    [{ ...structuredClone(base), resources: 3 }, { resources: 3 }],
  ];
  for (const [target, want] of cases) {
    const got = mergeDiff(base, target);
    assert.deepEqual(got, want, JSON.stringify(target));
    assert.deepEqual(applyPatch(base, got), target, "applying the diff gives the target");
  }
});

// applyPatch is the gateway's MergePatch, to check mergeDiff against.
function applyPatch(doc, patch) {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out = typeof doc === "object" && doc !== null && !Array.isArray(doc) ? { ...doc } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyPatch(out[k], v);
  }
  return out;
}

test("templateLabel names the version and who shares it", () => {
  assert.equal(templateLabel({ name: "tiny", latest_version: 3, visibility: "private", owner: "alice" }), "tiny v3 (yours)");
  assert.equal(templateLabel({ name: "lab", latest_version: 1, visibility: "shared", owner: "admin" }), "lab v1 (shared by admin)");
});

const usage = (over = {}, limits = {}) => ({
  user: "alice", groups: ["nlp-lab"], time: "2026-12-01T12:00:00Z",
  active_jobs: 2, queued_jobs: 1, gpus_in_use: 2, gpus_held: 3, gpu_hours: 12.345, ...over,
  limits: { max_active_jobs: 10, max_queued_jobs: 4, max_gpus: 4, gpu_hours_per_window: 40, window_seconds: 604800, ...limits },
});

test("usageBars: a bar per limit, used of limit, the GPU limit counts held GPUs", () => {
  const bars = usageBars(usage());
  assert.deepEqual(bars.map((b) => [b.key, b.used, b.limit, b.percent, b.text, b.tone]), [
    ["active_jobs", 2, 10, 20, "2 of 10", "good"],
    ["queued_jobs", 1, 4, 25, "1 of 4", "good"],
    ["gpus", 3, 4, 75, "3 of 4", "good"],
    ["gpu_hours", 12.345, 40, (100 * 12.345) / 40, "12.3 of 40.0 GPU-hours", "good"],
  ]);
  assert.equal(bars[3].label, "GPU-hours in the last 7d");
  assert.match(bars[2].notes[0], /^2 in use by running jobs/);
  for (const b of bars) assert.equal(b.notes.length, 1, `${b.key}: no limit note under the limit`);
});

test("usageBars: no limit, near and at the limit, over it (clamped)", () => {
  const bars = usageBars(usage({ active_jobs: 8, queued_jobs: 4, gpus_held: 6, gpu_hours: 0.5 }, { max_gpus: 4, gpu_hours_per_window: 0, window_seconds: 86400 }));
  const [active, queued, gpus, gh] = bars;
  assert.deepEqual([active.tone, active.percent], ["warn", 80]);
  assert.deepEqual([queued.tone, queued.percent], ["bad", 100]);
  assert.match(queued.notes[1], /At the limit: new submissions/);
  assert.deepEqual([gpus.tone, gpus.percent, gpus.text], ["bad", 100, "6 of 4"], "over the limit: the bar is full, the text says how far");
  assert.deepEqual([gh.percent, gh.limit, gh.text, gh.tone, gh.label], [null, 0, "0.50 GPU-hours (no limit)", "good", "GPU-hours in the last 1d"]);
  const none = usageBars({ ...usage(), limits: undefined });
  assert.ok(none.every((b) => b.percent === null && b.tone === "good"), "a usage without limits draws no bars");
});

test("usageBars: at the GPU-hour limit it says when it frees up, or that running jobs hold it", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  const at = usageBars(usage({ gpu_hours: 41.5, gpu_hours_frees_at: "2026-12-02T08:14:00Z" }), now)[3];
  assert.equal(at.tone, "bad");
  assert.equal(at.notes[1], "At the limit: new GPU jobs are refused; it frees up at 2026-12-02 08:14:00 UTC (in 20h 14m).");
  const held = usageBars(usage({ gpu_hours: 40 }), now)[3];
  assert.match(held.notes[1], /running jobs alone hold it/);
  const under = usageBars(usage({ gpu_hours: 39.9, gpu_hours_frees_at: "2026-12-02T08:14:00Z" }), now)[3];
  assert.equal(under.notes.length, 1, "under the limit a frees-at is not shown");
});

test("usageBars: one bar per shared group budget, used up says when it frees up", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  const bars = usageBars(usage({ group_budgets: [
    { group: "nlp-lab", gpu_hours: 5000, gpu_hours_per_window: 5000, frees_at: "2026-12-01T15:00:00Z" },
    { group: "<b>x</b>", gpu_hours: 10, gpu_hours_per_window: 100 },
  ] }), now);
  assert.equal(bars.length, 6);
  const [lab, x] = bars.slice(4);
  assert.deepEqual([lab.key, lab.tone, lab.text, lab.label], ["group_gpu_hours", "bad", "5000.0 of 5000.0 GPU-hours", "Group nlp-lab: shared GPU-hours in the last 7d"]);
  assert.equal(lab.notes[1], "Used up: new GPU jobs are refused; it frees up at 2026-12-01 15:00:00 UTC (in 3h).");
  assert.deepEqual([x.tone, x.percent, x.notes.length], ["good", 10, 1]);
  const held = usageBars(usage({ group_budgets: [{ group: "g", gpu_hours: 7, gpu_hours_per_window: 7 }] }), now)[4];
  assert.match(held.notes[1], /the group's running jobs alone hold it/);
});

test("hours, duration, utc", () => {
  assert.equal(hours(0.0123), "0.01");
  assert.equal(hours(9.996), "10.00");
  assert.equal(hours(41.55), "41.5");
  assert.equal(hours(NaN), "–");
  assert.deepEqual([45, 600, 3600, 5 * 3600 + 180, 7 * 86400, 86400 + 6 * 3600].map(duration), ["45s", "10m", "1h", "5h 3m", "7d", "1d 6h"]);
  assert.equal(utc("2026-12-01T12:00:05.123456Z"), "2026-12-01 12:00:05 UTC");
  assert.equal(utc("2026-12-01T13:00:05+01:00"), "2026-12-01 12:00:05 UTC");
  assert.equal(utc(undefined), "");
  assert.equal(utc("soon"), "");
});

test("deliveryView: each state and answer in words", () => {
  const base = { id: "d1", endpoint_id: "e1", event: "job.succeeded", job_id: "0b9e0000-0000-4000-8000-000000000000", created_at: "2026-12-01T12:00:00Z" };
  const ok = deliveryView({ ...base, state: "delivered", attempts: 1, last_status: 204, last_attempt_at: "2026-12-01T12:00:01Z", delivered_at: "2026-12-01T12:00:01Z" });
  assert.deepEqual(ok, {
    id: "d1", event: "job.succeeded", jobID: base.job_id, state: { label: "delivered", tone: "good" }, attempts: "1",
    response: "HTTP 204", lastAttempt: "2026-12-01 12:00:01 UTC", nextAttempt: "", delivered: "2026-12-01 12:00:01 UTC", created: "2026-12-01 12:00:00 UTC",
  });
  const retry = deliveryView({ ...base, state: "pending", attempts: 2, last_status: 500, last_error: "answered 500", next_attempt_at: "2026-12-01T12:00:30Z" });
  assert.deepEqual([retry.state.tone, retry.response, retry.nextAttempt], ["warn", "HTTP 500: answered 500", "2026-12-01 12:00:30 UTC"]);
  const down = deliveryView({ ...base, state: "failed", attempts: 10, last_error: "dial tcp 127.0.0.1:9: connection refused", next_attempt_at: "2026-12-01T13:00:00Z" });
  assert.deepEqual([down.state.tone, down.response, down.nextAttempt], ["bad", "no answer: dial tcp 127.0.0.1:9: connection refused", ""]);
  assert.equal(deliveryView({ ...base, state: "pending", attempts: 0 }).response, "not attempted yet");
  assert.equal(deliveryView({ ...base, state: "pending", attempts: 1 }).response, "no answer");
  assert.deepEqual(deliveryView({ ...base, state: "odd", attempts: 0 }).state, { label: "odd", tone: "neutral" });
});

test("formErrors puts the API's message at the field it names, else on the form", () => {
  const e422 = (m) => apiError(422, JSON.stringify({ error: { code: "unprocessable", message: m } }));
  assert.deepEqual(formErrors(e422('url: must be an http:// or https:// URL, got "ftp://x"'), ["url", "events"]), { field: "url", message: 'must be an http:// or https:// URL, got "ftp://x"' });
  assert.deepEqual(formErrors(e422("events: name at least one of job.succeeded, job.failed"), ["url", "events"]), { field: "events", message: "name at least one of job.succeeded, job.failed" });
  assert.deepEqual(formErrors(e422("urls: x"), ["url", "events"]), { field: "", message: "urls: x" }, "a field's name must be followed by its colon");
  assert.deepEqual(formErrors(apiError(503, '{"error":{"code":"unavailable","message":"webhooks are not configured on this gateway"}}'), ["url"]), { field: "", message: "webhooks are not configured on this gateway" });
  assert.deepEqual(formErrors("plain", ["url"]), { field: "", message: "plain" });
});

test("the webhook form offers every event the API accepts, each explained", () => {
  assert.deepEqual([...webhookEvents].sort(), ["job.cancelled", "job.checkpoint", "job.failed", "job.paused", "job.succeeded"]);
  for (const e of webhookEvents) assert.ok(webhookEventText[e]?.length > 5, e);
});
