import { collectGarbage } from "../lib/gc.ts"
import type { TargetConfig } from "../loadgen/Protocols.ts"

/**
 * The hydrogen-reliable soak keeps each churned session for the recovery window (a plateau of
 * churn rate × window, ~1.6 KiB of heap each: ~50k sessions at the default 120 s), so it runs the
 * server with this shorter window: the plateau is reached in seconds and every churned session
 * ends (token revoked, subscriptions dropped) within the run, which is what a leak check needs.
 */
export const SOAK_RECOVERY_WINDOW_S = 10

/** The JS heap may differ by this much after a full GC before and after the soak (a leak of one small object per churn cycle is ~10 MiB). */
const HEAP_NOISE_BYTES = 8 * 2 ** 20

/** Hydrogen's gauges of held state, read from its /metrics (the WebSocket's port). */
export const hydrogenGauges = async (target: TargetConfig) => {
  if (target.protocol !== "hydrogen") throw new Error("not a Hydrogen target")
  const text = await (await fetch(`${target.url.replace(/^ws/, "http")}metrics`)).text()
  const gauge = (name: string) =>
    Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m"))?.[1] ?? Number.NaN)
  return { sessions: gauge("switchboard_hydrogen_sessions"), pendingAcks: gauge("switchboard_hydrogen_acks_pending") }
}

export type HydrogenGauges = Awaited<ReturnType<typeof hydrogenGauges>>

/** Bytes of live JS objects after a full GC (bench/lib/gc-hook.mjs) in the server's processes. */
export const heapAfterGc = async (pids: ReadonlyArray<number>) =>
  (await collectGarbage(pids)).reduce((sum, report) => sum + report.heapUsed, 0)

/** What the server holds, with the soak's clients connected, before it and once the window has passed after the churn; then after the clients. */
export interface Held {
  heapBefore?: number
  heapAfterChurn?: number
  afterChurn?: HydrogenGauges
  afterClients?: HydrogenGauges
}

/** Every churned session ended (only the clients' are left, then none) and the heap is back to its level before the soak. */
export const heldBack = (held: Held, clients: number) =>
  held.afterChurn?.sessions === clients &&
  held.afterClients?.sessions === 0 &&
  held.afterClients.pendingAcks === 0 &&
  Math.abs((held.heapAfterChurn ?? Number.NaN) - (held.heapBefore ?? Number.NaN)) <= HEAP_NOISE_BYTES

export const describeHeld = (held: Held, windowS: number, clients: number) => {
  const mib = (n: number | undefined) => ((n ?? Number.NaN) / 2 ** 20).toFixed(1)
  return (
    `  ${windowS} s recovery window: sessions (pending acks) after churn ${held.afterChurn?.sessions} (${held.afterChurn?.pendingAcks}) ` +
    `for ${clients} clients, after clients ${held.afterClients?.sessions} (${held.afterClients?.pendingAcks}); ` +
    `JS heap after full GC ${mib(held.heapBefore)} MiB before, ${mib(held.heapAfterChurn)} MiB after churn (allowed ±${mib(HEAP_NOISE_BYTES)})`
  )
}
