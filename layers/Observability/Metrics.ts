import { Effect } from "effect"
import { Counter, Gauge, Histogram, Registry } from "prom-client"

type Labels<L extends string> = Partial<Record<L, string | number>>

/** One labelled series: a plain number, so updating it on a hot path is a property write. */
export interface Cell {
  inc(by?: number): void
  dec(by?: number): void
  set(value: number): void
  readonly value: number
}

class NumberCell implements Cell {
  value = 0
  constructor(readonly labels: Labels<string>) {}
  inc(by = 1) {
    this.value += by
  }
  dec(by = 1) {
    this.value -= by
  }
  set(value: number) {
    this.value = value
  }
}

/** Counter or gauge whose series are NumberCells, copied into prom-client only when scraped. */
export class Series<L extends string> {
  private readonly cells = new Map<string, NumberCell>()
  private readonly unlabelled = new NumberCell({})
  /** The series for these labels; keep the returned cell and update it directly on hot paths. */
  labels(labels: Labels<L>): Cell {
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))
    let cell = this.cells.get(key)
    if (!cell) this.cells.set(key, (cell = new NumberCell(labels)))
    return cell
  }
  inc(labelsOrBy?: Labels<L> | number, by?: number) {
    if (typeof labelsOrBy === "object") this.labels(labelsOrBy).inc(by)
    else this.unlabelled.inc(labelsOrBy)
  }
  dec(labelsOrBy?: Labels<L> | number, by?: number) {
    if (typeof labelsOrBy === "object") this.labels(labelsOrBy).dec(by)
    else this.unlabelled.dec(labelsOrBy)
  }
  set(labelsOrValue: Labels<L> | number, value?: number) {
    if (typeof labelsOrValue === "object") this.labels(labelsOrValue).set(value ?? 0)
    else this.unlabelled.set(labelsOrValue)
  }
  /** Copies every series into the prom-client metric at scrape time. */
  exportTo(metric: {
    reset(): void
    inc(labels: Labels<string>, value: number): void
    set?(labels: Labels<string>, value: number): void
  }) {
    metric.reset()
    const write = (cell: NumberCell) =>
      metric.set ? metric.set(cell.labels, cell.value) : cell.value > 0 && metric.inc(cell.labels, cell.value)
    if (this.unlabelled.value !== 0 || this.cells.size === 0) write(this.unlabelled)
    for (const cell of this.cells.values()) write(cell)
  }
}

/**
 * One Prometheus registry per program. Counters and gauges are plain numbers updated with method
 * calls (no hashing per update); prom-client reads them when /metrics is scraped.
 */
export class Metrics extends Effect.Service<Metrics>()("switchboard/Metrics", {
  sync: () => {
    const registry = new Registry()
    const series = new Map<string, Series<string>>()

    const define = <L extends string>(name: string, create: (values: Series<L>) => void): Series<L> => {
      const existing = series.get(name)
      if (existing) return existing as Series<L>
      const values = new Series<L>()
      series.set(name, values as Series<string>)
      create(values)
      return values
    }

    const counter = <L extends string>(name: string, help: string, labelNames: ReadonlyArray<L> = []) =>
      define<L>(name, (values) => {
        new Counter<string>({
          name,
          help,
          labelNames,
          registers: [registry],
          collect() {
            values.exportTo(this as any)
          }
        })
      })

    const gauge = <L extends string>(name: string, help: string, labelNames: ReadonlyArray<L> = []) =>
      define<L>(name, (values) => {
        new Gauge<string>({
          name,
          help,
          labelNames,
          registers: [registry],
          collect() {
            values.exportTo(this as any)
          }
        })
      })

    const histogram = <L extends string>(
      name: string,
      help: string,
      labelNames: ReadonlyArray<L> = [],
      buckets: Array<number> = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]
    ) =>
      (registry.getSingleMetric(name) as Histogram<L> | undefined) ??
      new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] })

    /** The registry in Prometheus text exposition format. */
    const render = Effect.promise(() => registry.metrics())

    return { counter, gauge, histogram, render, contentType: registry.contentType } as const
  }
}) {}
