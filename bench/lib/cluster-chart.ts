import type * as vl from "vega-lite"
import type { ScenarioResult } from "../scenarios/common.ts"

/**
 * The cluster scenario's chart: relay fan-out deliveries/s per core used (relays + broker), one
 * process against three on Redis and on NATS, per case; the whiskers are the runs' range.
 */
export const clusterFanoutChart = (result: ScenarioResult): vl.TopLevelSpec | undefined => {
  const values = result.rows
    .filter((row) => row.metrics.deliveriesPerCore && Number.isFinite(row.metrics.deliveriesPerCore.median))
    .map((row) => ({
      topology: String(row.server),
      case: row.case,
      median: row.metrics.deliveriesPerCore!.median,
      min: row.metrics.deliveriesPerCore!.min,
      max: row.metrics.deliveriesPerCore!.max
    }))
  if (values.length === 0) return undefined
  const order = [...new Set(values.map((v) => v.topology))]
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Relay fan-out over processes: deliveries/s per core used, relays + broker (higher is better)",
    width: { step: 30 },
    height: 260,
    background: "white",
    data: { values },
    encoding: {
      x: { field: "case", type: "nominal", title: null, sort: null, axis: { labelAngle: 0 } },
      xOffset: { field: "topology", type: "nominal", sort: order },
      color: { field: "topology", type: "nominal", sort: order, title: "relay", legend: { labelLimit: 260 } }
    },
    layer: [
      {
        mark: { type: "bar" },
        encoding: { y: { field: "median", type: "quantitative", title: "deliveries/s per core" } }
      },
      {
        mark: { type: "rule", color: "black" },
        encoding: { y: { field: "min", type: "quantitative" }, y2: { field: "max" } }
      }
    ]
  }
}
