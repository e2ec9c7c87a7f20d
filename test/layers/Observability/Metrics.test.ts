import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { it } from "../../support/effect.ts"

describe("Metrics", () => {
  it.effect("counters and gauges render in Prometheus text with their labels", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const logins = metrics.counter("test_logins_total", "Logins by result", ["result"])
      const ok = logins.labels({ result: "ok" })
      ok.inc()
      ok.inc(2)
      logins.inc({ result: "denied" })
      const open = metrics.gauge("test_open", "Open things")
      open.inc()
      open.inc()
      open.dec()
      expect(metrics.counter("test_logins_total", "again", ["result"])).toBe(logins)
      const text = yield* metrics.render
      expect(text).toContain("# TYPE test_logins_total counter")
      expect(text).toContain('test_logins_total{result="ok"} 3')
      expect(text).toContain('test_logins_total{result="denied"} 1')
      expect(text).toContain("test_open 1")
    }).pipe(Effect.provide(Metrics.Default))
  )

  it.effect("an unlabelled counter shows 0 before anything happens", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      metrics.counter("test_nothing_total", "Never incremented")
      expect(yield* metrics.render).toContain("test_nothing_total 0")
    }).pipe(Effect.provide(Metrics.Default))
  )
})
