// End-to-end test of the dashboard in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against a real gateway on the dev stack, logging in
// through Dex's real login page. cmd/gateway's TestIntegrationDashboardBrowser starts
// the gateway and runs this file; it needs:
//   DASHBOARD_URL   the gateway, e.g. http://127.0.0.1:18080
//   EXAMPLES_DIR    absolute path of the repository's examples/ (dataset paths)
//   ARTIFACTS_DIR   where screenshots go (git-ignored)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   WEBHOOK_URL     a receiver the gateway's webhooks.allow accepts (the Go test's)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.DASHBOARD_URL ?? "http://127.0.0.1:18080";
const examples = process.env.EXAMPLES_DIR;
const artifacts = process.env.ARTIFACTS_DIR ?? "/tmp/ftgate-dashboard-artifacts";
const password = process.env.STACK_PASSWORD ?? "password";
const webhookURL = process.env.WEBHOOK_URL;
const hookURL = webhookURL + "?tag=<b>x</b>"; // the URL test 6c registers
assert.ok(examples, "EXAMPLES_DIR must be set");
assert.ok(webhookURL, "WEBHOOK_URL must be set");
mkdirSync(artifacts, { recursive: true });

let browser;
let alice; // alice's page (her browser context)
let jobID = "";
let cancelledID = ""; // test 7's job, whose job.cancelled event test 7b finds delivered
const T = { timeout: 240_000 };
const long = { timeout: 480_000 };

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
  });
});
after(async () => {
  await browser?.close();
});

async function newPage() {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  page.jsErrors = errors;
  return page;
}

/** login goes through the dashboard's Log in button and Dex's real login form. */
async function login(page, user) {
  await page.getByTestId("login").click();
  await page.waitForURL(/\/dex\/auth/);
  await page.fill("#login", `${user}@example.com`);
  await page.fill("#password", password);
  await page.click("#submit-login");
  await page.waitForURL((u) => u.origin === new URL(base).origin && !u.pathname.startsWith("/auth/"));
  await page.getByTestId("username").filter({ hasText: user }).waitFor();
}

const specText = () => readFileSync(join(examples, "sft-tiny.yaml"), "utf8");

async function submitFromEditor(page, text) {
  await page.goto(base + "/submit");
  await page.getByTestId("editor").fill(text);
  await page.getByTestId("base-dir").fill(examples);
  await page.getByTestId("validate").click();
  await page.getByTestId("valid").waitFor();
  await page.getByTestId("submit").click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  return page.url().split("/").pop();
}

const badgeText = (page) => page.locator(".jobhead [data-testid=state]").innerText();

async function waitBadge(page, want, timeout = 180_000) {
  await page.locator(".jobhead [data-testid=state]", { hasText: new RegExp(`^${want}$`) }).waitFor({ timeout });
}

test("1. alice logs in through Dex's login page; pages carry the security headers", T, async () => {
  alice = await newPage();
  const res = await alice.goto(base + "/");
  const hd = res.headers();
  assert.match(hd["content-security-policy"], /script-src 'self'/);
  assert.match(hd["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(hd["x-content-type-options"], "nosniff");
  assert.ok(hd["referrer-policy"]);
  await login(alice, "alice");
  const cookies = await alice.context().cookies(base);
  const c = cookies.find((x) => x.name === "ftgate_session");
  assert.ok(c, "session cookie set");
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, "Lax");
  const stored = await alice.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.doesNotMatch(stored, /eyJ/, "no token in web storage");
  // A state-changing API call with the cookie but without the CSRF header is refused.
  const r = await alice.evaluate(async () => (await fetch("/api/training/execute?dry_run=1", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } })).status);
  assert.equal(r, 403);
});

test("2. submit examples/sft-tiny.yaml from the editor; a bad field shows its error first", T, async () => {
  await alice.goto(base + "/submit");
  const bad = specText().replace("learning_rate: 0.003", "learning_rate: 5");
  await alice.getByTestId("editor").fill(bad);
  await alice.getByTestId("base-dir").fill(examples);
  await alice.getByTestId("validate").click();
  const err = alice.locator('[data-testid=errors] li[data-field="hyperparameters.learning_rate"]');
  await err.waitFor();
  const text = await err.innerText();
  const line = bad.split("\n").findIndex((l) => l.includes("learning_rate: 5")) + 1;
  assert.match(text, new RegExp(`line ${line}`));
  assert.match(text, /must be > 0 and <= 1, got 5/);
  const mark = alice.locator(`[data-testid=gutter] span.bad[data-line="${line}"]`);
  assert.match(await mark.getAttribute("title"), /must be > 0 and <= 1/, "the editor's gutter marks the field's line");
  assert.equal(await alice.getByTestId("submit").isDisabled(), true, "submit stays disabled while the spec is invalid");
  await alice.screenshot({ path: join(artifacts, "submit-error.png"), fullPage: true });
  // Fixed: valid, the rendered script is shown, then it submits. The form's step count
  // rewrites the editor's spec; it is longer than the example's 300 so that the pause
  // (test 4) lands well before the last step: on an idle machine 80 steps were over
  // before the pause arrived.
  await alice.getByTestId("editor").fill(specText());
  await alice.fill("input[name=max_steps]", "400");
  await alice.locator("input[name=max_steps]").dispatchEvent("change");
  assert.match(await alice.getByTestId("editor").inputValue(), /max_steps: 400/);
  assert.match(await alice.getByTestId("editor").inputValue(), /learning_rate: 0.003/);
  await alice.getByTestId("validate").click();
  await alice.getByTestId("valid").waitFor();
  assert.match(await alice.getByTestId("script").innerText(), /#SBATCH/);
  await alice.getByTestId("submit").click();
  await alice.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  jobID = alice.url().split("/").pop();
  assert.match(jobID, /^[0-9a-f-]{36}$/);
});

test("3. the loss chart gains points while the job runs", T, async () => {
  const chart = alice.locator('figure[data-chart="Loss"]');
  await chart.waitFor({ timeout: 180_000 });
  const points = async () => Number(await chart.getAttribute("data-points"));
  const first = await points();
  assert.ok(first > 0);
  await alice.waitForFunction(
    (n) => Number(document.querySelector('figure[data-chart="Loss"]')?.getAttribute("data-points")) > n,
    first,
    { timeout: 120_000 },
  );
  const second = await points();
  assert.ok(second > first, `loss points ${first} then ${second}`);
  assert.equal(await badgeText(alice), "running");
  assert.ok(await chart.locator("canvas").count(), "uPlot drew a canvas");
  await alice.screenshot({ path: join(artifacts, "job-running.png"), fullPage: true });
  console.log(`loss chart points: ${first} then ${second}`);
});

test("4. pause -> paused, resume enabled; resume -> running -> succeeded; model file sha256 matches the manifest", long, async () => {
  await alice.click("button[data-action=pause]");
  await alice.getByTestId("confirm").click();
  await waitBadge(alice, "paused");
  assert.equal(await alice.locator("button[data-action=resume]").isEnabled(), true);
  assert.equal(await alice.locator("button[data-action=pause]").isDisabled(), true);
  assert.match(await alice.locator("button[data-action=pause]").getAttribute("title"), /already paused/);
  await alice.click("button[data-action=resume]");
  await alice.getByTestId("confirm").click();
  await waitBadge(alice, "(queued|running)");
  await waitBadge(alice, "running");
  await waitBadge(alice, "succeeded", 420_000);
  assert.equal(await alice.locator("button[data-action=cancel]").isDisabled(), true);
  const link = alice.getByTestId("model-file").first();
  await link.waitFor({ timeout: 60_000 });
  const name = await link.innerText();
  const want = await alice.locator(`tr[data-file="${name}"] [data-testid=sha256]`).innerText();
  const [dl] = await Promise.all([alice.waitForEvent("download"), link.click()]);
  const got = createHash("sha256").update(readFileSync(await dl.path())).digest("hex");
  assert.equal(got, want, `sha256 of ${name}`);
  const tl = await alice.locator(".timeline").innerText();
  assert.match(tl, /paused/);
  assert.match(tl, /succeeded/);
});

test("5. the jobs page lists the job; an ended session logs in again and returns to the same page", T, async () => {
  await alice.goto(base + "/");
  const row = alice.locator(`tr[data-job="${jobID}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /succeeded/);
  await alice.screenshot({ path: join(artifacts, "jobs.png"), fullPage: true });
  await alice.context().clearCookies();
  await alice.goto(base + `/jobs/${jobID}`);
  await login(alice, "alice");
  assert.equal(new URL(alice.url()).pathname, `/jobs/${jobID}`);
  await waitBadge(alice, "succeeded");
});

test("6. bob does not see alice's job, in the list or by its URL", T, async () => {
  const bob = await newPage();
  await bob.goto(base + "/");
  await login(bob, "bob");
  await bob.locator("table.jobs").waitFor();
  await bob.waitForFunction(() => !document.querySelector("[role=status]")?.textContent?.includes("Loading"));
  assert.equal(await bob.locator(`tr[data-job="${jobID}"]`).count(), 0);
  await bob.goto(base + `/jobs/${jobID}`);
  await bob.getByRole("heading", { name: "Job not found" }).waitFor();
  assert.deepEqual(bob.jsErrors, []);
  await bob.context().close();
});

test("6b. the admin sees everyone's jobs and filters them by user", T, async () => {
  const admin = await newPage();
  await admin.goto(base + "/");
  await login(admin, "admin");
  await admin.getByRole("heading", { name: "All jobs" }).waitFor();
  const row = admin.locator(`tr[data-job="${jobID}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /alice/);
  await admin.fill("input[name=user]", "bob");
  await admin.click("form.filters button[type=submit]");
  await admin.waitForURL(/user=bob/);
  await admin.waitForFunction(() => !document.querySelector("[role=status]")?.textContent?.includes("Loading"));
  assert.equal(await admin.locator(`tr[data-job="${jobID}"]`).count(), 0);
  // The usage page looks up another account; a name that is none reads as an error.
  await admin.click('header.top a[href="/usage"]');
  await admin.getByTestId("usage-lookup").waitFor();
  await admin.fill("[data-testid=usage-lookup] input[name=user]", "alice");
  await admin.click("[data-testid=usage-lookup] button[type=submit]");
  await admin.waitForURL(/\/usage\?user=alice$/);
  await admin.getByRole("heading", { name: "Usage of alice" }).waitFor();
  assert.match(await admin.getByTestId("usage-who").innerText(), /^alice /);
  const gh = await admin.locator("[data-limit=gpu_hours] [data-testid=limit-text]").innerText();
  assert.ok(parseFloat(gh) > 0, `alice's finished job used GPU-hours: ${gh}`);
  await admin.fill("[data-testid=usage-lookup] input[name=user]", "No Such User!");
  await admin.click("[data-testid=usage-lookup] button[type=submit]");
  const alert = admin.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /The request is not valid[\s\S]*not a Unix account name/);
  assert.deepEqual(admin.jsErrors, []);
  await admin.context().close();
});

test("6c. webhooks: a bad URL's error at the field (input kept); add one, its secret shown once, listed", T, async () => {
  await alice.goto(base + "/webhooks");
  await alice.locator("p[role=status]", { hasText: "No webhooks yet." }).waitFor();
  const url = alice.getByTestId("webhook-url");
  const cancelled = alice.locator("input[name=events][value='job.cancelled']");
  await url.fill("ftp://127.0.0.1/hook");
  await cancelled.check();
  await alice.getByTestId("webhook-add").click();
  await alice.getByTestId("url-error").filter({ hasText: /http:\/\/ or https:\/\// }).waitFor();
  assert.equal(await url.inputValue(), "ftp://127.0.0.1/hook", "the form keeps the URL typed");
  assert.equal(await cancelled.isChecked(), true, "the form keeps the events checked");
  assert.equal(await alice.locator("tr[data-webhook]").count(), 0);
  assert.equal(await alice.getByTestId("secret").count(), 0);
  // Markup in the URL (its query) is shown as text, never parsed.
  await url.fill(hookURL);
  await alice.getByTestId("webhook-add").click();
  const secret = await alice.getByTestId("secret").innerText();
  assert.match(secret, /^whsec_\S{20,}$/);
  assert.match(await alice.getByTestId("secret-box").innerText(), /will not be shown again/);
  assert.equal(await alice.getByTestId("url-error").innerText(), "", "the earlier error is gone");
  const row = alice.locator("tr[data-webhook]", { hasText: webhookURL });
  await row.waitFor();
  assert.match(await row.innerText(), /job\.cancelled/);
  assert.equal(await row.getByTestId("webhook-url-cell").innerText(), hookURL);
  assert.equal(await row.locator("b").count(), 0, "the URL's markup is text");
  await alice.screenshot({ path: join(artifacts, "webhooks.png"), fullPage: true });
  // Shown once: not after a reload, not in the list's answer.
  await alice.reload();
  await row.waitFor();
  assert.equal(await alice.getByTestId("secret").count(), 0);
  assert.equal((await alice.content()).includes(secret), false, "the secret is not on the page again");
  await row.locator("button[data-action=deliveries]").click();
  await alice.getByTestId("deliveries").getByText("No deliveries yet").waitFor();
});

test("7. a cancelled job shows its reason", T, async () => {
  const id = await submitFromEditor(alice, specText().replace("max_steps: 300", "max_steps: 100000"));
  cancelledID = id;
  await waitBadge(alice, "(queued|running)");
  // While it is unfinished the usage page counts it: 1 of 10 active jobs, 1 of 4 GPUs.
  await alice.goto(base + "/usage");
  const limit = (k) => alice.locator(`[data-limit=${k}]`);
  assert.equal(await limit("active_jobs").getByTestId("limit-text").innerText(), "1 of 10");
  assert.equal(await limit("active_jobs").locator(".fill").evaluate((el) => el.style.width), "10%");
  assert.equal(await limit("gpus").getByTestId("limit-text").innerText(), "1 of 4");
  await alice.goto(base + `/jobs/${id}`);
  await waitBadge(alice, "(queued|running)");
  await alice.click("button[data-action=cancel]");
  await alice.getByTestId("confirm").click();
  await waitBadge(alice, "cancelled");
  assert.match(await alice.getByTestId("reason").innerText(), /cancelled by alice/);
  for (const a of ["pause", "resume", "cancel"]) assert.equal(await alice.locator(`button[data-action=${a}]`).isDisabled(), true);
  await alice.goto(base + "/");
  const row = alice.locator(`tr[data-job="${id}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /cancelled by alice/);
  await alice.screenshot({ path: join(artifacts, "jobs-final.png"), fullPage: true });
});

test("7b. the webhook's log shows the cancelled job's delivery; deleting the webhook asks first", T, async () => {
  await alice.goto(base + "/webhooks");
  const row = alice.locator("tr[data-webhook]", { hasText: webhookURL });
  await row.locator("button[data-action=deliveries]").click();
  const log = alice.getByTestId("deliveries");
  const done = log.locator("tr[data-delivery]", { has: alice.locator("[data-testid=delivery-state]", { hasText: /^delivered$/ }) });
  // The sender polls every second; refresh the log until the delivery is in.
  for (let i = 0; i < 30 && !(await done.count()); i++) {
    await alice.waitForTimeout(1000);
    await alice.getByTestId("deliveries-refresh").click();
  }
  const text = await done.first().innerText();
  assert.match(text, /job\.cancelled/);
  assert.match(text, new RegExp(cancelledID.slice(0, 8)));
  assert.match(await done.first().getByTestId("delivery-response").innerText(), /^HTTP 204$/);
  await alice.screenshot({ path: join(artifacts, "webhook-deliveries.png"), fullPage: true });
  await row.locator("button[data-action=delete]").click();
  await alice.locator("dialog.confirm", { hasText: "Delete this webhook?" }).waitFor();
  await alice.getByTestId("confirm").click();
  await alice.locator("p[role=status]", { hasText: "No webhooks yet." }).waitFor();
  assert.equal(await row.count(), 0);
  assert.equal(await log.locator("table").count(), 0, "the deleted webhook's log is closed");
});

test("7c. the usage page shows alice's figures as the API has them", T, async () => {
  await alice.click('header.top a[href="/usage"]');
  await alice.getByRole("heading", { name: "Your usage" }).waitFor();
  await alice.getByTestId("usage").waitFor();
  const u = await alice.evaluate(async () => (await fetch("/api/usage")).json());
  assert.equal(u.user, "alice");
  assert.equal(u.limits.max_gpus, 4, "the test gateway's limits apply");
  assert.ok(u.gpu_hours > 0, `alice's jobs used GPU-hours: ${u.gpu_hours}`);
  const text = (k) => alice.locator(`[data-limit=${k}] [data-testid=limit-text]`).innerText();
  assert.equal(await text("active_jobs"), `${u.active_jobs} of ${u.limits.max_active_jobs}`);
  assert.equal(await text("queued_jobs"), `${u.queued_jobs} of ${u.limits.max_queued_jobs}`);
  assert.equal(await text("gpus"), `${u.gpus_held} of 4`);
  const gh = await text("gpu_hours");
  assert.match(gh, /^\d+\.\d\d of 50\.0 GPU-hours$/);
  assert.ok(Math.abs(parseFloat(gh) - u.gpu_hours) < 0.02, `${gh} vs the API's ${u.gpu_hours}`);
  const meter = alice.locator("[data-limit=gpu_hours] [role=meter]");
  assert.equal(Number(await meter.getAttribute("aria-valuemax")), 50);
  const width = await meter.locator(".fill").evaluate((el) => parseFloat(el.style.width));
  assert.ok(Math.abs(width - (100 * u.gpu_hours) / 50) < 0.1, `bar ${width}%`);
  await alice.screenshot({ path: join(artifacts, "usage.png"), fullPage: true });
});

test("8. performance: job page with 2,000 metric points", T, async () => {
  const page = alice;
  const n = 2000;
  const pts = (f) => Array.from({ length: n }, (_, i) => [i + 1, f(i)]);
  const body = JSON.stringify({
    job_id: jobID, since_step: -1, last_step: n, skipped_lines: 0,
    series: { loss: pts((i) => 3 / (1 + i / 100)), eval_loss: pts((i) => 3.2 / (1 + i / 100)), learning_rate: pts(() => 0.003), tokens_per_second: pts((i) => 1000 + (i % 50)) },
  });
  await page.route("**/api/training/*/metrics*", (r) =>
    new URL(r.request().url()).searchParams.has("since_step") ? r.fulfill({ contentType: "application/json", body: JSON.stringify({ last_step: n, series: {} }) }) : r.fulfill({ contentType: "application/json", body }),
  );
  await page.goto(base + `/jobs/${jobID}`);
  await page.waitForFunction((k) => Number(document.querySelector('figure[data-chart="Loss"]')?.getAttribute("data-points")) === k && document.querySelector('figure[data-chart="Loss"] canvas'), n);
  const m = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    const res = performance.getEntriesByType("resource").filter((r) => r.name.includes("/assets/"));
    return { fcp: fcp?.startTime ?? -1, drawn: performance.now(), dom: nav.domContentLoadedEventEnd, assets: res.reduce((a, r) => a + (r.encodedBodySize || 0), 0) + (nav.encodedBodySize || 0) };
  });
  await page.unroute("**/api/training/*/metrics*");
  assert.equal(page.jsErrors.length, 0, page.jsErrors.join("\n"));
  console.log(`PERF job page, ${n} metric points: first contentful paint ${m.fcp.toFixed(0)} ms, charts drawn by ${m.drawn.toFixed(0)} ms, DOMContentLoaded ${m.dom.toFixed(0)} ms; bytes shipped (index.html + JS + CSS as transferred, gzip) ${m.assets}`);
});

test("9. the system page shows GPUs per partition and jobs by state", T, async () => {
  await alice.goto(base + "/system");
  const cl = alice.locator("section.cluster").first();
  await cl.waitFor();
  const text = await cl.innerText();
  assert.match(text, /Cluster dev/);
  assert.match(text, /gpu\s+\S+\s+\d+\s+\d+\s+\d+/, "a gpu partition row with total, allocated, free");
  assert.match(text, /Reconciler: last pass/);
  await alice.screenshot({ path: join(artifacts, "system.png"), fullPage: true });
});
