import type { Priority } from "./Envelope.ts"
import type { Filter } from "./Filter.ts"
import type { Identity } from "./Permissions.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { PendingAcks } from "./PendingAcks.ts"

/** What the upgrade decided about a connection. */
export interface HydrogenConnectionData {
  readonly identity: Identity
  readonly remoteAddress: string
}

export type HydrogenConnection = Connection<HydrogenConnectionData>

export interface Subscription {
  readonly channel: string
  readonly filter: Filter | undefined
  readonly priority: Priority
  /** Served by the native topic (unfiltered, normal priority); otherwise per client. */
  readonly native: boolean
}

/**
 * An event sent with ack required and not yet acknowledged by one session. Immutable: the sessions
 * that got an event at the same moment share one entry (no object per subscriber per event); a
 * resend gives the session its own.
 */
export interface PendingAck {
  /** The number in the event's id (see EventIds): the index of pending acks. */
  readonly ordinal: number
  readonly id: string
  readonly channel: string
  readonly seq: number | undefined
  readonly text: string
  readonly attempts: number
  /** When it was last sent (or queued for a detached session). */
  readonly sentAt: number
}

/** An acked event as delivery hands it to the tracker: the shared entries are made once, when first needed. */
export class AckedEvent {
  private sent: PendingAck | undefined
  private queued: PendingAck | undefined

  constructor(
    readonly ordinal: number,
    readonly id: string,
    readonly channel: string,
    readonly seq: number | undefined,
    readonly text: string,
    readonly at: number
  ) {}

  /** The entry for a session it reached (one attempt) or not (none yet). */
  entry(delivered: boolean): PendingAck {
    return delivered
      ? (this.sent ??= {
          ordinal: this.ordinal,
          id: this.id,
          channel: this.channel,
          seq: this.seq,
          text: this.text,
          attempts: 1,
          sentAt: this.at
        })
      : (this.queued ??= {
          ordinal: this.ordinal,
          id: this.id,
          channel: this.channel,
          seq: this.seq,
          text: this.text,
          attempts: 0,
          sentAt: this.at
        })
  }
}

/**
 * A client's session: outlives its connection by the recovery window, so a reconnecting client
 * gets its subscriptions, missed events and unacked events back. It holds no fiber or scope: the
 * server-wide sweeps (ack redelivery, recovery window) visit it while it needs them.
 */
export class Session {
  connection: HydrogenConnection | undefined
  readonly subscriptions = new Map<string, Subscription>()
  readonly pending = new PendingAcks()

  /** When the connection went away (the recovery window runs from here); undefined while attached. */
  detachedAt: number | undefined = undefined

  constructor(
    readonly id: string,
    readonly identity: Identity,
    connection: HydrogenConnection
  ) {
    this.connection = connection
  }

  /** Sends to the current connection; false while detached or closed. */
  send(text: string): boolean {
    const connection = this.connection
    if (!connection || !connection.isOpen()) return false
    return connection.send(text) !== "closed"
  }
}
