import type { SerializedHistogram } from "../lib/stats.ts"
import type { ClientSpec, TargetConfig } from "./Protocols.ts"

/** Messages between the coordinator and its worker processes (JSON over Bun's IPC channel). */

export interface SendPlan {
  /** Numbers the run; deliveries of an earlier run still in flight are ignored. */
  readonly run: number
  /** "max": as fast as the window allows; "paced": `rate` messages/s per sender. */
  readonly mode: "max" | "paced"
  readonly rate: number
  /** Messages a sender may be ahead of the slowest (non-slow) receiver. */
  readonly window: number
  readonly payloadBytes: number
  /** Stop after this many messages per sender (a hard bound besides time). */
  readonly maxPerSender: number
}

export interface ChurnPlan {
  readonly concurrency: number
  readonly durationMs: number
}

export type ToWorker =
  | {
      readonly type: "setup"
      readonly clockBase: number
      readonly target: TargetConfig
      readonly clients: ReadonlyArray<ClientSpec>
      readonly senders: number
      readonly connectConcurrency: number
      /** No new connection is started after this long (the rest are reported as not attempted). */
      readonly connectDeadlineMs: number
    }
  | { readonly type: "send"; readonly plan: SendPlan }
  | { readonly type: "acks"; readonly run: number; readonly acks: ReadonlyArray<number> }
  | { readonly type: "mark" }
  | { readonly type: "stop" }
  | { readonly type: "report" }
  | {
      readonly type: "churn"
      readonly clockBase: number
      readonly target: TargetConfig
      readonly plan: ChurnPlan
      /** One template per lane; each round appends its number to the unit name. */
      readonly clients: ReadonlyArray<ClientSpec>
    }
  /** Slow readers read at full speed again (to see how the server ended them). */
  | { readonly type: "release" }
  | { readonly type: "close" }

export interface WorkerReport {
  /** Unique deliveries per sender to regular receivers, and duplicates. */
  readonly unique: ReadonlyArray<number>
  readonly duplicates: ReadonlyArray<number>
  /** Deliveries to slow receivers (kept apart: they are allowed to fall behind or be cut off). */
  readonly slowUnique: ReadonlyArray<number>
  readonly latency: SerializedHistogram
  readonly closes: Record<string, number>
  readonly slowCloses: Record<string, number>
  readonly sent: ReadonlyArray<number>
  readonly deliveredSinceMark: number
  /** Wall-clock ms when a slow reader was first closed by the server; 0 when none was. */
  readonly firstSlowCloseAt: number
}

export interface ChurnReport {
  readonly completed: number
  readonly failed: number
  readonly errors: ReadonlyArray<string>
  readonly latency: SerializedHistogram
}

export type FromWorker =
  | {
      readonly type: "ready"
      readonly connected: number
      readonly failed: number
      readonly notAttempted: number
      readonly errors: ReadonlyArray<string>
      readonly connectMs: number
    }
  | {
      readonly type: "progress"
      readonly run: number
      /** Lowest sequence number every regular receiver here has seen, per sender (-1: none yet; null: no receivers here). */
      readonly acked: ReadonlyArray<number | null>
      readonly delivered: number
    }
  | { readonly type: "marked"; readonly delivered: number }
  | { readonly type: "released" }
  | { readonly type: "stopped"; readonly sent: ReadonlyArray<number> }
  | { readonly type: "report"; readonly report: WorkerReport }
  | { readonly type: "churned"; readonly report: ChurnReport }
  | { readonly type: "error"; readonly message: string }
