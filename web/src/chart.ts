// Line charts with uPlot: one chart per group of series, updated in place.
// uPlot is loaded on first use (only the job page draws charts); its CSS is in app.css.
import type uPlot from "uplot";

let lib: Promise<typeof uPlot> | null = null;
const loadUPlot = () => (lib ??= import("uplot").then((m) => m.default));

const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

/** Chart is a uPlot chart with a title and named series. */
export class Chart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private creating = false;
  private destroyed = false;
  private data: (number | null)[][] = [];

  constructor(
    title: string,
    private fields: string[],
    private xLabel = "step",
    private time = false,
  ) {
    this.el = document.createElement("figure");
    this.el.className = "chart";
    this.el.dataset.chart = title;
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    this.el.appendChild(cap);
  }

  /** points is how many x values the chart holds. */
  get points(): number {
    return this.data[0]?.length ?? 0;
  }

  /** set replaces the data (uPlot columns: x, then one column per field). */
  set(data: (number | null)[][]) {
    this.data = data;
    if (!this.plot) {
      if (this.el.isConnected) void this.create();
      return;
    }
    this.plot.setData(data as uPlot.AlignedData);
    this.el.dataset.points = String(this.points);
  }

  /** mount draws the chart once its element is in the document. */
  mount() {
    if (!this.plot && this.data.length) void this.create();
  }

  private async create() {
    if (this.creating) return;
    this.creating = true;
    const UPlot = await loadUPlot();
    if (this.destroyed) return;
    const width = Math.max(280, Math.min(this.el.parentElement?.clientWidth ?? 480, 560) - 16);
    const opts: uPlot.Options = {
      width,
      height: 200,
      scales: { x: { time: this.time } },
      axes: [{ label: this.xLabel }, {}],
      series: [{ label: this.xLabel }, ...this.fields.map((f, i) => ({ label: f, stroke: colors[i % colors.length], width: 1.5, spanGaps: true }))],
      legend: { live: false },
    };
    this.plot = new UPlot(opts, this.data as uPlot.AlignedData, this.el);
    this.el.dataset.points = String(this.points);
  }

  destroy() {
    this.destroyed = true;
    this.plot?.destroy();
    this.plot = null;
  }
}
