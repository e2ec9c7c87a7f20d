import { Effect } from "effect"
import { Counter, Gauge, Histogram, Registry } from "prom-client"

/**
 * One Prometheus registry per program. Metric objects are created once and updated with plain
 * method calls, so counting on a hot path costs a property increment, not an Effect.
 */
export class Metrics extends Effect.Service<Metrics>()("switchboard/Metrics", {
  sync: () => {
    const registry = new Registry()
    const existing = <M>(name: string) => registry.getSingleMetric(name) as M | undefined

    const counter = <L extends string>(name: string, help: string, labelNames: ReadonlyArray<L> = []) =>
      existing<Counter<L>>(name) ?? new Counter<L>({ name, help, labelNames, registers: [registry] })

    const gauge = <L extends string>(name: string, help: string, labelNames: ReadonlyArray<L> = []) =>
      existing<Gauge<L>>(name) ?? new Gauge<L>({ name, help, labelNames, registers: [registry] })

    const histogram = <L extends string>(
      name: string,
      help: string,
      labelNames: ReadonlyArray<L> = [],
      buckets: Array<number> = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]
    ) => existing<Histogram<L>>(name) ?? new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] })

    /** The registry in Prometheus text exposition format. */
    const render = Effect.promise(() => registry.metrics())

    return { counter, gauge, histogram, render, contentType: registry.contentType } as const
  }
}) {}
