import { Duration, Effect, Option, Schema } from "effect"
import { type TokenStoreUnavailable, Tokens } from "../../layers/Tokens/Tokens.ts"

/**
 * Login sessions (the DroneEngage `sid`): a 128-bit token of the Tokens Tag holding what the
 * login proved, as JSON decoded with its schema. Sessions expire `ttl` after creation (fixed) or
 * after their last use (sliding).
 */
export interface Sessions<S> {
  readonly create: (data: S) => Effect.Effect<string, TokenStoreUnavailable>
  /** `create` on the spot when the token store answers without I/O; absent: use `create`. */
  readonly createNow?: ((data: S) => string) | undefined
  /** The session's data if it is live; a sliding session's expiry moves forward. */
  readonly get: (sid: string) => Effect.Effect<Option.Option<S>, TokenStoreUnavailable>
  /** Ends one session; false if it was not live. */
  readonly end: (sid: string) => Effect.Effect<boolean, TokenStoreUnavailable>
  /** Ends the session whose `index(data)` is `key`, without a scan; false if none. */
  readonly endIndexed: (key: string) => Effect.Effect<boolean, TokenStoreUnavailable>
  /** `endIndexed` on the spot when the token store answers without I/O; absent: use `endIndexed`. */
  readonly endIndexedNow?: ((key: string) => boolean) | undefined
  /** Sessions currently held (expired ones count until the next sweep). */
  readonly count: Effect.Effect<number, TokenStoreUnavailable>
}

export interface SessionOptions<S> {
  /** Separates these sessions from other tokens in a shared store. */
  readonly kind: string
  readonly ttl: Duration.DurationInput
  /** true: expiry is ttl after the last use; false: ttl after creation. */
  readonly sliding: boolean
  /** A key unique per session (e.g. the login request id) that `endIndexed` finds the session by. */
  readonly index: (data: S) => string
  /** A hand-written encoder giving exactly what the schema's JSON encoding gives (property-tested); else the schema's. */
  readonly encode?: (data: S) => string
}

export const makeSessions = <S, I>(
  schema: Schema.Schema<S, I>,
  options: SessionOptions<S>
): Effect.Effect<Sessions<S>, never, Tokens> =>
  Effect.gen(function* () {
    const tokens = yield* Tokens
    const codec = Schema.parseJson(schema)
    const encode = options.encode ?? Schema.encodeSync(codec)
    const decode = Schema.decodeUnknownOption(codec)
    const ttl = Duration.decode(options.ttl)
    const slide = options.sliding ? ttl : undefined
    const { issueNow, revokeIndexedNow } = tokens
    return {
      create: (data) => tokens.issue(options.kind, encode(data), ttl, options.index(data)),
      createNow: issueNow && ((data) => issueNow(options.kind, encode(data), ttl, options.index(data))),
      get: (sid) => Effect.map(tokens.get(options.kind, sid, slide), Option.flatMap(decode)),
      end: (sid) => tokens.revoke(options.kind, sid),
      endIndexed: (key) => tokens.revokeIndexed(options.kind, key),
      endIndexedNow: revokeIndexedNow && ((key) => revokeIndexedNow(options.kind, key)),
      count: tokens.count(options.kind)
    }
  })
