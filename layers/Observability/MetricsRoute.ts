import { HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { Metrics } from "./Metrics.ts"

/** GET /metrics handler: the program's registry in Prometheus text format. */
export const metricsResponse = Effect.gen(function* () {
  const metrics = yield* Metrics
  const body = yield* metrics.render
  return HttpServerResponse.text(body, { contentType: metrics.contentType })
})
