import { Context, type Effect } from "effect"

/**
 * One node's connection to the message broker of a cluster (in-memory, Redis or NATS): the seam
 * every multi-node layer (BrokerRooms, the Federation bus, shared Tokens) is built on, in the spirit
 * of centrifuge's Broker + PresenceManager. Channels carry bytes; presence is a set of entries per
 * room, each owned by a node, kept only while that node's heartbeat is alive.
 */
export interface Broker {
  readonly kind: "memory" | "redis" | "nats"
  /** This node's id, unique in the cluster (it tags every message and presence entry). */
  readonly nodeId: string
  /**
   * Hot path: hands `bytes` to the broker for every node subscribed to `channel`, this one too: a
   * node subscribed to a channel it publishes on hears its own message once, like the others (from
   * the broker on memory and Redis; locally on NATS, whose server is told not to echo it).
   * Synchronous; false when the broker cannot take it now (disconnected), so the caller can count it.
   * `onLost` runs if a message it took is lost afterwards (the connection dropped before it was written).
   */
  readonly publish: (channel: string, bytes: Uint8Array, onLost?: () => void) => boolean
  /**
   * Delivers what arrives on `channel` to `deliver` (one handler per channel on a node; a second call
   * replaces it). Completes once the broker has confirmed; while the broker is away the channel is
   * remembered and subscribed again when it returns.
   */
  readonly subscribe: (channel: string, deliver: (bytes: Uint8Array) => void) => Effect.Effect<void>
  readonly unsubscribe: (channel: string) => Effect.Effect<void>
  /** Whether the broker is reachable now. */
  readonly isUp: () => boolean
  /** Registers a callback run each time the broker comes back after an outage. */
  readonly onReconnect: (callback: () => void) => void
  /** Registers a callback run each time the connection publishes go through is lost (`publish` refuses by then). */
  readonly onDisconnect: (callback: () => void) => void
  readonly presence: PresenceStore
  readonly claims: ClaimStore
  readonly counters: CounterStore
  readonly records: RecordStore
  /** Drops the connection to the broker at once, without cleanup (what a crash looks like to the others). */
  readonly sever: Effect.Effect<void>
}

/** Presence entries per room: key `<nodeId>/<local id>` → an opaque text the caller encodes. */
export interface PresenceStore {
  readonly put: (room: string, key: string, entry: string) => Effect.Effect<void, BrokerUnavailable>
  readonly remove: (room: string, keys: ReadonlyArray<string>) => Effect.Effect<void, BrokerUnavailable>
  /** Every entry of the room, those of dead nodes included (the caller filters with `alive`). */
  readonly list: (room: string) => Effect.Effect<ReadonlyArray<readonly [string, string]>, BrokerUnavailable>
  /** Marks `nodeId` alive for `ttlMillis`; false when it had expired (or never was), so its entries must be written again. */
  readonly heartbeat: (nodeId: string, ttlMillis: number) => Effect.Effect<boolean, BrokerUnavailable>
  /** Which of these nodes are alive now. */
  readonly alive: (nodeIds: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, BrokerUnavailable>
}

/**
 * Names held cluster-wide, per scope: `scope`/`name` → holder `<liveness id>/<n>`, where the
 * liveness id is one the holder's node keeps alive with `presence.heartbeat`. Each call is one
 * atomic step on the broker (a script on Redis, a compare-and-set on the NATS KV revision).
 */
export interface ClaimStore {
  /**
   * Sets the holder of `name`. "replace" always does; "ifFree" only when no holder of a live node
   * has it; `{ within }` replaces like "replace" but only while live holders of the scope's other
   * names number fewer than `within` (a limit counted and taken in the same atomic step).
   * Returns whether it was set and the holder it displaced (alive or not).
   */
  readonly take: (
    scope: string,
    name: string,
    holder: string,
    mode: ClaimMode
  ) => Effect.Effect<{ readonly taken: boolean; readonly previous: string | undefined }, BrokerUnavailable>
  /** Removes `name` when `holder` still has it (a later holder keeps it). */
  readonly release: (scope: string, name: string, holder: string) => Effect.Effect<void, BrokerUnavailable>
  /** The holder of `name` now (alive or not). */
  readonly get: (scope: string, name: string) => Effect.Effect<string | undefined, BrokerUnavailable>
  /** Every name of the scope and its holder, those of dead nodes included (the caller filters with `alive`). */
  readonly list: (scope: string) => Effect.Effect<ReadonlyArray<readonly [string, string]>, BrokerUnavailable>
}

export type ClaimMode = "replace" | "ifFree" | { readonly within: number }

/** Counters shared by the nodes (rate limits, id allocation). */
export interface CounterStore {
  /**
   * Adds `by` to `key` and returns the total. With `windowMillis` the count lasts that long from its
   * first add, then starts again from zero (a fixed window; at most 10 minutes); without, it lasts.
   */
  readonly add: (key: string, by: number, windowMillis?: number) => Effect.Effect<number, BrokerUnavailable>
  /**
   * A monotonic maximum: sets `key` to `value` when `value` is greater than it, in one atomic step, and
   * returns what it was before (-1 when it had none). With `lastingMillis` the broker may forget it
   * after that long (Redis: PX; NATS: the windows bucket, so at most 10 minutes), else it lasts.
   */
  readonly raise: (key: string, value: number, lastingMillis?: number) => Effect.Effect<number, BrokerUnavailable>
}

/**
 * Small records that expire unless written again, each held by one node (a Hydrogen session's
 * subscriptions, held by the node serving the session): the holder refreshes its records by putting
 * them again, so one outlives a dead holder by at most its TTL. Every write is one atomic step that
 * looks at the holder first (a script on Redis, a compare-and-set on the NATS KV revision), so a
 * node that lost a record to another learns it instead of writing over it. Every put of a cluster
 * uses the same TTL (NATS: the bucket's max age, set by the first put).
 */
export interface RecordStore {
  /** The record and its holder now; undefined when there is none, it expired or it was closed. */
  readonly get: (key: string) => Effect.Effect<HeldRecord | undefined, BrokerUnavailable>
  /**
   * Writes `value` as `holder`'s for `ttlMillis`. "take": from any holder; "keep": only while
   * `holder` holds it or no one does (absent or expired). Never over a closed record. True when written.
   */
  readonly put: (
    key: string,
    holder: string,
    value: string,
    ttlMillis: number,
    mode: "take" | "keep"
  ) => Effect.Effect<boolean, BrokerUnavailable>
  /**
   * `holder` is done with the record: it reads as absent and no one can take it for `ttlMillis`.
   * False, and nothing changes, when another node holds it.
   */
  readonly close: (key: string, holder: string, ttlMillis: number) => Effect.Effect<boolean, BrokerUnavailable>
}

export interface HeldRecord {
  readonly holder: string
  readonly value: string
}

/** How a held record is stored (`<holder>\n<value>`; a holder is never empty, has no newline); closed: a lone newline. */
export const heldRecordText = (holder: string, value: string) => `${holder}\n${value}`
export const closedRecordText = "\n"
/** What a stored text holds: "closed", or the holder ("" for none) and the value. */
export const parseHeldRecord = (text: string | undefined): HeldRecord | "closed" | undefined => {
  if (text === undefined) return undefined
  if (text === closedRecordText) return "closed"
  const newline = text.indexOf("\n")
  return newline < 0 ? { holder: "", value: text } : { holder: text.slice(0, newline), value: text.slice(newline + 1) }
}
/** Whether `holder` may write over `current` with `mode` (the rule every backend applies atomically). */
export const recordWritable = (
  current: HeldRecord | "closed" | undefined,
  holder: string,
  mode: "take" | "keep" | "close"
) => {
  if (current === "closed") return mode === "close"
  if (current === undefined || mode === "take") return true
  return current.holder === "" || current.holder === holder
}
/** A holder names a node: never empty, never with a newline (the stored text's separator). */
export const validHolder = (holder: string) => holder !== "" && !holder.includes("\n")

/** The longest counter window the brokers keep (NATS: the max age of the windows bucket). */
export const maxCounterWindowMillis = 10 * 60 * 1000

/** The liveness id in a claim's holder (`<liveness id>/<n>`). */
export const holderLiveness = (holder: string) => holder.slice(0, holder.indexOf("/"))

export class BrokerUnavailable extends Error {
  readonly _tag = "BrokerUnavailable"
  constructor(
    readonly broker: string,
    cause: unknown
  ) {
    super(`${broker} is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`)
  }
}

export class ClusterBroker extends Context.Tag("switchboard/ClusterBroker")<ClusterBroker, Broker>() {}

/** A node id: 12 random hex characters unless configured. */
export const randomNodeId = () => Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")

/** A broker URL for messages and logs: any password replaced. */
export const redactUrl = (url: string) => {
  try {
    const parsed = new URL(url.includes("://") ? url : `nats://${url}`)
    if (parsed.password) parsed.password = "***"
    return url.includes("://") ? parsed.toString() : parsed.host
  } catch {
    return "(unparsable URL)"
  }
}
