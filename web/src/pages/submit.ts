// Submit: a YAML/JSON spec editor validated by ?dry_run=1 (each error shown at its
// field and line), the rendered script, and submission with an Idempotency-Key; a form
// for the common fields writes the same spec. "Start from template" loads a template's
// spec into the editor; the job is then sent as the template plus the edits as
// overrides, so it records the template version.
import type * as YAML from "js-yaml";
import { get, send } from "../api";
import { h, errorBox, replace } from "../dom";
import {
  ApiError, fieldErrors, fieldLine, formFromSpec, mergeDiff, resolvePaths, specWithForm, templateLabel,
  type FieldError, type FormFields, type TemplateItem,
} from "../render";
import type { Page } from "../main";

const starter = `# A job spec (YAML or JSON). Relative dataset paths resolve against the base directory below.
name: my-sft
method: sft
model: builtin:tiny
dataset:
  path: /path/to/train.jsonl
hyperparameters:
  max_steps: 100
resources:
  gpus: 1
`;

const draftKey = "ftgate.submit.draft";

// js-yaml is loaded with this page only.
let yaml: typeof YAML;

/** parseSpec reads YAML or JSON text into an object, or throws an ApiError naming the line. */
function parseSpec(text: string): Record<string, any> {
  try {
    const v = text.trim().startsWith("{") ? JSON.parse(text) : yaml.load(text);
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("the spec must be a mapping of fields");
    return v as Record<string, any>;
  } catch (e) {
    throw new ApiError(400, "invalid", `spec text: ${(e as Error).message.split("\n")[0]}`);
  }
}

export const submitPage: Page = (main, ctx) => {
  replace(main, h("p.muted", {}, "Loading the editor…"));
  let live = true;
  void import("js-yaml").then(
    (m) => {
      yaml = m;
      if (live) render(main, ctx);
    },
    (e) => replace(main, errorBox(e)),
  );
  return () => {
    live = false;
  };
};

function render(main: HTMLElement, ctx: Parameters<Page>[1]) {
  const editor = h("textarea.editor", { spellcheck: "false", wrap: "off", rows: 24, "aria-label": "Spec (YAML or JSON)", "data-testid": "editor" }) as HTMLTextAreaElement;
  editor.value = sessionStorage.getItem(draftKey) ?? starter;
  // The gutter numbers the lines and marks those with an error (message as tooltip).
  const gutter = h("pre.gutter", { "aria-hidden": "true", "data-testid": "gutter" });
  let lineErrors = new Map<number, string>();
  const drawGutter = () => {
    const n = editor.value.split("\n").length;
    replace(gutter, ...Array.from({ length: n }, (_, i) => {
      const msg = lineErrors.get(i + 1);
      return h(msg ? "span.bad" : "span", { title: msg, "data-line": i + 1 }, String(i + 1));
    }));
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));
  const baseDir = h("input", { name: "base", type: "text", placeholder: "/absolute/dir/of/the/spec (for relative paths)", "data-testid": "base-dir" }) as HTMLInputElement;
  baseDir.value = sessionStorage.getItem(draftKey + ".base") ?? "";
  const errors = h("ul.field-errors", { "data-testid": "errors", "aria-live": "polite" });
  const result = h("div");
  const script = h("pre.code", { "data-testid": "script" });
  const validateBtn = h("button", { type: "button", "data-testid": "validate" }, "Validate") as HTMLButtonElement;
  const submitBtn = h("button.primary", { type: "button", disabled: true, title: "Validate the spec first", "data-testid": "submit" }, "Submit") as HTMLButtonElement;

  // The form for the common fields.
  const f = {
    name: h("input", { name: "name" }) as HTMLInputElement,
    method: h("select", { name: "method" }, h("option", { value: "sft" }, "sft"), h("option", { value: "dpo" }, "dpo")) as HTMLSelectElement,
    model: h("input", { name: "model", placeholder: "builtin:tiny or /path/to/model" }) as HTMLInputElement,
    dataset_path: h("input", { name: "dataset_path" }) as HTMLInputElement,
    eval_path: h("input", { name: "eval_path" }) as HTMLInputElement,
    max_steps: h("input", { name: "max_steps", type: "number", min: 0 }) as HTMLInputElement,
    gpus: h("input", { name: "gpus", type: "number", min: 0 }) as HTMLInputElement,
    lora: h("input", { name: "lora", type: "checkbox" }) as HTMLInputElement,
  };
  const formFieldOf: Record<string, keyof typeof f> = {
    name: "name", method: "method", model: "model", "dataset.path": "dataset_path", "dataset.eval_path": "eval_path",
    "hyperparameters.max_steps": "max_steps", "resources.gpus": "gpus", "lora.enabled": "lora",
  };
  const fieldRow = (label: string, el: HTMLElement) => h("label.field", { "data-field": el.getAttribute("name") ?? "" }, h("span", {}, label), el, h("span.field-error"));
  const form = h(
    "form.specform",
    { "aria-label": "Common fields" },
    fieldRow("Name", f.name),
    fieldRow("Method", f.method),
    fieldRow("Model", f.model),
    fieldRow("Dataset", f.dataset_path),
    fieldRow("Eval dataset", f.eval_path),
    fieldRow("Max steps", f.max_steps),
    fieldRow("GPUs", f.gpus),
    fieldRow("LoRA", f.lora),
  );

  let validated = ""; // the text the last successful dry run checked
  let idemKey = "";

  // Start from template: the loaded version and its spec (the base of the overrides).
  let tmpl: { ref: string; spec: Record<string, any> } | null = null;
  const tmplSelect = h("select", { name: "template", "data-testid": "template" }, h("option", { value: "" }, "none: write a spec")) as HTMLSelectElement;
  const tmplNote = h("span.muted.small", { "data-testid": "template-note" });
  void get<{ templates: TemplateItem[] }>("/api/templates?limit=200").then(
    (l) => {
      for (const t of l.templates) tmplSelect.append(h("option", { value: `${t.name}@${t.latest_version}` }, templateLabel(t)));
    },
    () => (tmplNote.textContent = "templates could not be listed"),
  );
  tmplSelect.addEventListener("change", async () => {
    const ref = tmplSelect.value;
    tmpl = null;
    tmplNote.textContent = "";
    if (!ref) return;
    try {
      const t = await get<TemplateItem>(`/api/templates/${encodeURIComponent(ref)}`);
      tmpl = { ref, spec: (t.spec ?? {}) as Record<string, any> };
      editor.value = `# From template ${ref}: edit any field; the job records the template.\n` + yaml.dump(tmpl.spec, { lineWidth: 120 });
      tmplNote.textContent = `Your edits are sent as overrides of ${ref}.`;
      changed();
      fillForm();
      drawGutter();
    } catch (e) {
      replace(result, errorBox(e));
    }
  });

  const readForm = (): FormFields => ({
    name: f.name.value, method: f.method.value, model: f.model.value, dataset_path: f.dataset_path.value, eval_path: f.eval_path.value,
    max_steps: Number(f.max_steps.value || 0), gpus: Number(f.gpus.value || 0), lora: f.lora.checked,
  });
  const fillForm = () => {
    let s: Record<string, any>;
    try {
      s = parseSpec(editor.value);
    } catch {
      return;
    }
    const v = formFromSpec(s);
    f.name.value = v.name;
    f.method.value = v.method;
    f.model.value = v.model;
    f.dataset_path.value = v.dataset_path;
    f.eval_path.value = v.eval_path;
    f.max_steps.value = String(v.max_steps);
    f.gpus.value = String(v.gpus);
    f.lora.checked = v.lora;
  };
  const changed = () => {
    sessionStorage.setItem(draftKey, editor.value);
    sessionStorage.setItem(draftKey + ".base", baseDir.value);
    if (editor.value + "\0" + baseDir.value !== validated) {
      submitBtn.disabled = true;
      submitBtn.title = "Validate the spec first";
    }
  };
  editor.addEventListener("input", () => {
    changed();
    fillForm();
    drawGutter();
  });
  baseDir.addEventListener("input", changed);
  form.addEventListener("change", () => {
    let s: Record<string, any> = {};
    try {
      s = parseSpec(editor.value);
    } catch {
      // start from the form alone
    }
    const json = editor.value.trim().startsWith("{");
    const next = specWithForm(s, readForm());
    editor.value = json ? JSON.stringify(next, null, 2) : yaml.dump(next, { lineWidth: 120 });
    changed();
    drawGutter();
  });

  const showErrors = (list: FieldError[]) => {
    lineErrors = new Map();
    for (const e of list) {
      const line = fieldLine(editor.value, e.field);
      if (line) lineErrors.set(line, (lineErrors.has(line) ? lineErrors.get(line) + "; " : "") + e.message);
    }
    if (lineErrors.size) {
      // Bring the first error's line into view.
      const lh = parseFloat(getComputedStyle(editor).lineHeight) || 18;
      editor.scrollTop = Math.max(0, (Math.min(...lineErrors.keys()) - 4) * lh);
    }
    drawGutter();
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of form.querySelectorAll(".field.bad")) el.classList.remove("bad");
    replace(
      errors,
      ...list.map((e) => {
        const line = fieldLine(editor.value, e.field);
        const ff = formFieldOf[e.field];
        if (ff) {
          const row = f[ff].closest(".field")!;
          row.classList.add("bad");
          row.querySelector(".field-error")!.textContent = e.message;
        }
        return h(
          "li",
          { "data-field": e.field },
          line
            ? h(
                "button.link",
                {
                  type: "button",
                  onclick: () => {
                    const lines = editor.value.split("\n");
                    const start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
                    editor.focus();
                    editor.setSelectionRange(start, start + lines[line - 1].length);
                  },
                },
                `line ${line}`,
              )
            : null,
          line ? " · " : null,
          e.field ? h("code", {}, e.field) : null,
          e.field ? ": " : null,
          e.message,
        );
      }),
    );
  };

  const specToSend = () => {
    const spec = resolvePaths(parseSpec(editor.value), baseDir.value.trim());
    return tmpl ? { template: tmpl.ref, overrides: mergeDiff(tmpl.spec, spec) } : spec;
  };

  const validate = async () => {
    replace(result);
    script.textContent = "";
    showErrors([]);
    try {
      const out = await send<{ script?: string; cluster?: string; job_dir?: string }>("POST", "/api/training/execute?dry_run=1", specToSend());
      validated = editor.value + "\0" + baseDir.value;
      idemKey = crypto.randomUUID();
      submitBtn.disabled = false;
      submitBtn.title = "Submit this spec";
      replace(result, h("p.ok", { role: "status", "data-testid": "valid" }, `Valid. It would run on cluster ${out?.cluster ?? "?"}.`));
      script.textContent = out?.script ?? "";
    } catch (e) {
      if (e instanceof ApiError && (e.code === "invalid" || e.code === "unprocessable")) showErrors(fieldErrors(e.message));
      else replace(result, errorBox(e));
    }
  };

  const submit = async () => {
    if (editor.value + "\0" + baseDir.value !== validated) return;
    submitBtn.disabled = true;
    try {
      const j = await send<{ id: string }>("POST", "/api/training/execute", specToSend(), { "Idempotency-Key": idemKey });
      sessionStorage.removeItem(draftKey);
      ctx.navigate(`/jobs/${j!.id}`);
    } catch (e) {
      submitBtn.disabled = false;
      if (e instanceof ApiError && (e.code === "invalid" || e.code === "unprocessable")) showErrors(fieldErrors(e.message));
      else replace(result, errorBox(e));
    }
  };
  validateBtn.addEventListener("click", validate);
  submitBtn.addEventListener("click", submit);

  fillForm();
  drawGutter();
  replace(
    main,
    h("h1", {}, "Submit a job"),
    h(
      "div.submit",
      {},
      h(
        "div",
        {},
        h("label.block", {}, "Start from template", tmplSelect, tmplNote),
        h("label.block", {}, "Spec (YAML or JSON)", h("div.editor-wrap", {}, gutter, editor)),
        h("label.block", {}, "Base directory for relative dataset paths", baseDir),
        errors,
        h("div.buttons", {}, validateBtn, submitBtn),
        result,
      ),
      h("div", {}, h("h2", {}, "Common fields"), form, h("p.muted.small", {}, "Changing a field rewrites the spec (YAML comments are dropped).")),
    ),
    h("section", {}, h("h2", {}, "Rendered script"), script),
  );
}

