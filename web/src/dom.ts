// A tiny DOM helper: h("div.cls", {attr}, children...). Text is always set as text.
import { errorText } from "./render";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

/** h creates an element; "tag.a.b#id" sets classes and id; on* attributes add listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(spec: K | string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/.exec(spec as string);
  const el = document.createElement(m?.[1] || "div");
  for (const part of (m?.[2] ?? "").match(/[.#][\w-]+/g) ?? []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

/** append adds children (strings as text nodes). */
export function append(el: Node, ...children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** clear removes an element's children and adds the given ones. */
export function replace(el: Element, ...children: Child[]) {
  el.replaceChildren();
  append(el, ...children);
}

/** errorBox shows an error in words (role=alert). */
export function errorBox(e: unknown): HTMLElement {
  const t = errorText(e);
  return h("div.error", { role: "alert" }, h("strong", {}, t.title), h("p", {}, t.detail));
}

/** confirmDialog asks before an action; resolves true when confirmed. */
export function confirmDialog(title: string, text: string, ok: string): Promise<boolean> {
  return new Promise((resolve) => {
    const d = h("dialog.confirm", { "aria-label": title }) as HTMLDialogElement;
    const done = (v: boolean) => {
      d.close();
      d.remove();
      resolve(v);
    };
    d.append(
      h("h2", {}, title),
      h("p", {}, text),
      h("div.buttons", {}, h("button", { type: "button", onclick: () => done(false) }, "Keep it"), h("button.primary", { type: "button", "data-testid": "confirm", onclick: () => done(true) }, ok)),
    );
    d.addEventListener("cancel", () => done(false));
    document.body.appendChild(d);
    d.showModal();
  });
}
