// Unit tests for the pure rendering decisions (states, actions, errors, spec errors).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ApiError, actionState, age, apiError, bytes, errorText, fieldErrors, fieldLine, formFromSpec,
  listQuery, mergeDiff, mergeSeries, num, progressPercent, resolvePaths, safeNext, specWithForm, stateInfo, templateLabel, timeline,
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
