// Webhooks: the caller's endpoints (GET /api/webhooks), adding one (its signing secret
// shown once), removing one, and an endpoint's delivery log, a page at a time.
import { get, send } from "../api";
import { h, confirmDialog, errorBox, replace } from "../dom";
import {
  deliveryView, formErrors, utc, webhookEvents, webhookEventText,
  type Webhook, type WebhookDelivery, type WebhookEvent,
} from "../render";
import type { components } from "../gen/openapi";
import type { Page } from "../main";

type WebhookList = components["schemas"]["WebhookList"];
type DeliveryList = components["schemas"]["DeliveryList"];

const listLimit = 50;
const deliveryLimit = 20;

/** deliveryRow is one delivery of the log. */
function deliveryRow(d: WebhookDelivery): HTMLElement {
  const v = deliveryView(d);
  return h(
    "tr",
    { "data-delivery": v.id },
    h("td", {}, v.event),
    h("td", {}, v.jobID ? h("a", { href: `/jobs/${v.jobID}` }, v.jobID.slice(0, 8)) : ""),
    h("td", {}, h(`span.badge.${v.state.tone}`, { "data-testid": "delivery-state" }, v.state.label)),
    h("td.num", {}, v.attempts),
    h("td", { "data-testid": "delivery-response" }, v.response),
    h("td.small", {}, v.lastAttempt),
    h("td.small", {}, v.nextAttempt || v.delivered),
    h("td.small", {}, v.created),
  );
}

export const webhooksPage: Page = (main) => {
  let live = true;

  // The form: URL and events; an error is shown at its field and the input is kept.
  const url = h("input", { name: "url", type: "url", inputmode: "url", autocomplete: "off", placeholder: "https://hooks.example.edu/ftgate", "data-testid": "webhook-url" }) as HTMLInputElement;
  const urlErr = h("span.field-error", { "data-testid": "url-error", "aria-live": "polite" });
  const boxes = webhookEvents.map(
    (e) => h("input", { type: "checkbox", name: "events", value: e, checked: e === "job.succeeded" || e === "job.failed" }) as HTMLInputElement,
  );
  const eventsErr = h("span.field-error", { "data-testid": "events-error", "aria-live": "polite" });
  const formErr = h("div", { "data-testid": "form-error" });
  const addBtn = h("button.primary", { type: "submit", "data-testid": "webhook-add" }, "Add webhook") as HTMLButtonElement;
  const secretBox = h("div", { "data-testid": "secret-box" });
  const urlRow = h("label.field", { "data-field": "url" }, h("span", {}, "URL of your receiver"), url, urlErr);
  const eventsRow = h(
    "fieldset.field.events",
    { "data-field": "events" },
    h("legend", {}, "Events"),
    ...boxes.map((b) => h("label.inline", {}, b, " ", h("code", {}, b.value), ` ${webhookEventText[b.value as WebhookEvent]}`)),
    eventsErr,
  );
  const clearErrors = () => {
    urlErr.textContent = "";
    eventsErr.textContent = "";
    urlRow.classList.remove("bad");
    eventsRow.classList.remove("bad");
    replace(formErr);
  };
  const form = h(
    "form.webhook-form",
    {
      novalidate: true,
      "aria-label": "Add a webhook",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        clearErrors();
        replace(secretBox);
        addBtn.disabled = true;
        try {
          const w = await send<Webhook>("POST", "/api/webhooks", { url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) });
          url.value = "";
          showSecret(w!);
          await loadList();
        } catch (e) {
          const fe = formErrors(e, ["url", "events"]);
          if (fe.field === "url") {
            urlErr.textContent = fe.message;
            urlRow.classList.add("bad");
            url.focus();
          } else if (fe.field === "events") {
            eventsErr.textContent = fe.message;
            eventsRow.classList.add("bad");
          } else {
            const box = errorBox(e);
            box.querySelector("strong")!.textContent = "The webhook was not added";
            replace(formErr, box);
          }
        } finally {
          addBtn.disabled = false;
        }
      },
    },
    urlRow,
    eventsRow,
    h("div.buttons", {}, addBtn),
    formErr,
  );

  // The secret: only in the answer that created the endpoint, so shown once, here.
  const showSecret = (w: Webhook) => {
    const code = h("code.secret", { "data-testid": "secret" }, w.secret ?? "");
    const copied = h("span.muted.small", { role: "status" });
    replace(
      secretBox,
      h(
        "div.note.secret-note",
        { role: "status" },
        h("p", {}, h("strong", {}, "Webhook added. "), "Its signing secret is below: store it now, it will not be shown again. Receivers verify each delivery's signature with it (docs/webhooks.md). Lost it? Add the URL again and delete the old webhook."),
        h("p", {}, code),
        h(
          "div.buttons",
          {},
          h("button", {
            type: "button",
            onclick: async () => {
              try {
                await navigator.clipboard.writeText(w.secret ?? "");
                copied.textContent = "Copied.";
              } catch {
                copied.textContent = "Copying is not allowed here: select the secret and copy it.";
              }
            },
          }, "Copy"),
          h("button", { type: "button", "data-testid": "secret-done", onclick: () => replace(secretBox) }, "I stored it"),
          copied,
        ),
      ),
    );
  };

  // The list, newest first, a page at a time.
  const listStatus = h("p.muted", { role: "status" }, "Loading…");
  const tbody = h("tbody");
  const more = h("div.pager");
  const table = h(
    "table.webhooks",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", {}, "Events"), h("th", {}, "Created"), h("th", {}, ""))),
    tbody,
  );
  const log = h("div", { "data-testid": "deliveries" });
  let shown = ""; // the endpoint whose log is open

  const row = (w: Webhook) =>
    h(
      "tr",
      { "data-webhook": w.id },
      h("td.url", { "data-testid": "webhook-url-cell" }, w.url),
      h("td", {}, ...(w.events ?? []).map((e) => h("span.badge", {}, e)), ""),
      h("td.small", { title: w.created_at }, utc(w.created_at)),
      h(
        "td.buttons",
        {},
        h("button", { type: "button", "data-action": "deliveries", onclick: () => void openLog(w) }, "Deliveries"),
        h("button.danger", { type: "button", "data-action": "delete", onclick: () => void remove(w) }, "Delete"),
      ),
    );

  const loadList = async (cursor = "") => {
    try {
      const q = new URLSearchParams({ limit: String(listLimit) });
      if (cursor) q.set("cursor", cursor);
      const l = await get<WebhookList>("/api/webhooks?" + q);
      if (!live) return;
      const ws = l.webhooks ?? [];
      if (cursor) tbody.append(...ws.map(row));
      else replace(tbody, ...ws.map(row));
      listStatus.textContent = tbody.childElementCount ? "" : "No webhooks yet.";
      replace(more, l.next_cursor ? h("button", { type: "button", onclick: () => void loadList(l.next_cursor) }, "More") : null);
    } catch (e) {
      if (live) replace(listStatus, errorBox(e));
    }
  };

  const remove = async (w: Webhook) => {
    if (!(await confirmDialog("Delete this webhook?", `${w.url} gets no more deliveries; its delivery log and pending deliveries are removed.`, "Delete"))) return;
    try {
      await send("DELETE", `/api/webhooks/${encodeURIComponent(w.id)}`);
      if (shown === w.id) {
        shown = "";
        replace(log);
      }
      await loadList();
    } catch (e) {
      replace(listStatus, errorBox(e));
    }
  };

  // The delivery log of one endpoint: deliveryLimit at a time, newest first.
  const openLog = async (w: Webhook) => {
    shown = w.id;
    const rows = h("tbody");
    const status = h("p.muted", { role: "status" }, "Loading…");
    const pager = h("div.pager");
    const page = async (cursor = "") => {
      try {
        const q = new URLSearchParams({ limit: String(deliveryLimit) });
        if (cursor) q.set("cursor", cursor);
        const l = await get<DeliveryList>(`/api/webhooks/${encodeURIComponent(w.id)}/deliveries?` + q);
        if (!live || shown !== w.id) return;
        const ds = l.deliveries ?? [];
        if (cursor) rows.append(...ds.map(deliveryRow));
        else replace(rows, ...ds.map(deliveryRow));
        status.textContent = rows.childElementCount ? "" : "No deliveries yet: one is made for each event this webhook names.";
        replace(pager, l.next_cursor ? h("button", { type: "button", "data-testid": "deliveries-more", onclick: () => void page(l.next_cursor) }, "Older") : null);
      } catch (e) {
        if (live) replace(status, errorBox(e));
      }
    };
    replace(
      log,
      h(
        "section",
        { "data-log": w.id },
        h("div.head", {}, h("h2", {}, "Deliveries to ", h("span.url", {}, w.url)), h("button", { type: "button", "data-testid": "deliveries-refresh", onclick: () => void page() }, "Refresh")),
        h(
          "table.deliveries",
          {},
          h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "Job"), h("th", {}, "State"), h("th.num", {}, "Attempts"), h("th", {}, "Last answer"), h("th", {}, "Last attempt"), h("th", {}, "Next attempt / delivered"), h("th", {}, "Created"))),
          rows,
        ),
        status,
        pager,
      ),
    );
    await page();
  };

  replace(
    main,
    h("h1", {}, "Webhooks"),
    h("p.muted", {}, "The gateway POSTs a signed JSON body to each of your webhooks for the events it names, for all your jobs."),
    h("section", {}, h("h2", {}, "Add a webhook"), form, secretBox),
    h("h2", {}, "Your webhooks"),
    listStatus,
    table,
    more,
    log,
  );
  void loadList();
  return () => {
    live = false;
  };
};
