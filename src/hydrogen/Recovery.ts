import type { StreamEntry, StreamPosition } from "../storage/Stream.ts"

/** Where a client stands in a reliable channel: the epoch and the last seq it has seen. */
export interface RecoverFrom {
  readonly epoch: string
  readonly seq: number
}

export type RecoveryOutcome =
  | { readonly recovered: true; readonly replayed: number }
  | {
      readonly recovered: false
      readonly reason: "epoch_changed" | "history_trimmed" | "unknown_position"
      readonly first: number
      readonly last: number
    }

/** Why the events after `recover` cannot be replayed from a stream at `position`; undefined when they can. */
export const unrecoverable = (recover: RecoverFrom, position: StreamPosition): RecoveryOutcome | undefined => {
  const refuse = (reason: "epoch_changed" | "history_trimmed" | "unknown_position") =>
    ({ recovered: false, reason, first: position.first, last: position.last }) as const
  if (recover.epoch !== position.epoch) return refuse("epoch_changed")
  if (recover.seq > position.last) return refuse("unknown_position")
  if (recover.seq < position.last && (position.first === 0 || recover.seq < position.first - 1))
    return refuse("history_trimmed")
  return undefined
}

/**
 * Joins a history read made before the delivery lock (`early`) with the one made under it (`late`,
 * read after early's end) into exactly the entries after `seq`; undefined if history was trimmed
 * past `seq` in between (then nothing exact can be replayed).
 */
export const missedEntries = (
  seq: number,
  early: ReadonlyArray<StreamEntry>,
  late: ReadonlyArray<StreamEntry>
): ReadonlyArray<StreamEntry> | undefined => {
  const entries = early.length > 0 ? [...early, ...late] : late
  if (entries.length > 0 && entries[0]!.seq !== seq + 1) return undefined
  for (let i = 1; i < entries.length; i++) if (entries[i]!.seq !== entries[i - 1]!.seq + 1) return undefined
  return entries
}
