import { Schema } from "effect"
import { ActionName, ChannelName, Priority } from "./Envelope.ts"
import { Filter } from "./Filter.ts"

/** A position in a reliable channel: the epoch and the last seq the client has seen. */
export const Position = Schema.Struct({
  epoch: Schema.String.pipe(Schema.maxLength(128)),
  seq: Schema.Int.pipe(Schema.nonNegative())
})

/** subscriptions/subscribe */
export const SubscribeData = Schema.Struct({
  channel: ChannelName,
  filter: Schema.optional(Filter),
  priority: Schema.optional(Priority),
  /** Replay what was missed since this position (reliable channels only). */
  recover: Schema.optional(Position)
})

/** subscriptions/unsubscribe */
export const UnsubscribeData = Schema.Struct({ channel: ChannelName })

/** system/resume */
export const ResumeData = Schema.Struct({
  session: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  positions: Schema.optional(Schema.Record({ key: ChannelName, value: Position }))
})

/** system/refresh: a new session token for the same subject, before the current one expires. */
export const RefreshData = Schema.Struct({ token: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(8192)) })

/** events/publish over WebSocket, and one publication of the HTTP API. */
export const PublishData = Schema.Struct({
  channel: ChannelName,
  action: ActionName,
  data: Schema.optional(Schema.Unknown),
  priority: Schema.optional(Priority),
  ack: Schema.optional(Schema.Boolean)
})
export type PublishData = typeof PublishData.Type

/** POST /api/publish body: one publication, with an optional idempotency key. */
export const PublishRequest = Schema.Struct({
  ...PublishData.fields,
  idempotencyKey: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)))
})

/** POST /api/batch body: several publications flushed together (high priority first). */
export const BatchRequest = Schema.Struct({
  publications: Schema.Array(PublishData).pipe(Schema.minItems(1), Schema.maxItems(1000)),
  idempotencyKey: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)))
})

/** POST /api/tokens body: a session token for `subject` with some of the caller's permissions. */
export const TokenRequest = Schema.Struct({
  subject: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  permissions: Schema.Array(Schema.String.pipe(Schema.maxLength(256))).pipe(Schema.maxItems(64)),
  ttlSeconds: Schema.optional(Schema.Int.pipe(Schema.between(1, 7 * 24 * 3600)))
})
