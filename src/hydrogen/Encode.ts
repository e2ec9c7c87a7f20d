import type { Priority } from "./Envelope.ts"
import { errorBody, type HydrogenError } from "./Errors.ts"

/** What a publisher hands in; the server adds id, timestamp and (on reliable channels) seq/epoch. */
export interface Publication {
  readonly channel: string
  readonly action: string
  readonly data: unknown
  readonly priority: Priority
  /** Subscribers must ack; unacked events are redelivered, then reported undeliverable. */
  readonly ack: boolean
}

/**
 * An event without its sequence fields, encoded once: `{"id":...,"timestamp":...,...}`. Reliable
 * channels store this text and splice seq/epoch in front (withSequence), so neither publishing
 * nor replay re-encodes the data.
 */
export const eventBody = (publication: Publication, id: string, timestamp: string): string =>
  JSON.stringify({
    id,
    timestamp,
    channel: publication.channel,
    action: publication.action,
    data: publication.data ?? null,
    ...(publication.priority === "high" ? { priority: "high" } : {}),
    ...(publication.ack ? { ack: true } : {})
  })

/** The wire text of an event on a channel without sequence. */
export const plainEvent = (body: string): string => `{"type":"event",${body.slice(1)}`

/** The wire text of an event on a reliable channel. */
export const sequencedEvent = (body: string, seq: number, epochJson: string): string =>
  `{"type":"event","seq":${seq},"epoch":${epochJson},${body.slice(1)}`

export interface ReplyTo {
  readonly id?: string | undefined
  readonly channel?: string | undefined
  readonly action?: string | undefined
}

export const successText = (to: ReplyTo, timestamp: string, data: unknown): string =>
  JSON.stringify({ type: "response", id: to.id, timestamp, channel: to.channel, action: to.action, data: data ?? null })

export const errorText = (to: ReplyTo, timestamp: string, error: HydrogenError): string =>
  JSON.stringify({
    type: "response",
    id: to.id,
    timestamp,
    channel: to.channel,
    action: to.action,
    error: errorBody(error)
  })
