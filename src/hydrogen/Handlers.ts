import { Clock, Effect, Either, Schema } from "effect"
import { PublishData, RefreshData, ResumeData, SubscribeData, UnsubscribeData } from "./Commands.ts"
import { issuesOf } from "./Envelope.ts"
import { handPublishData } from "./HandDecode.ts"
import { authenticationError, ErrorCodes, type HydrogenError, protocolError, applicationError } from "./Errors.ts"
import { allows, type Identity, Permission } from "./Permissions.ts"
import type { Publication } from "./Encode.ts"
import type { Channels, Published } from "./Channels.ts"
import type { Session } from "./Session.ts"
import type { Sessions } from "./Sessions.ts"
import type { Status } from "./Status.ts"

/** What a command handler knows about its caller. */
export interface CommandContext {
  readonly session: Session
  /** The connection's identity, or the one of the command's own `auth.token`. */
  readonly identity: Identity
  /** Switches the connection to a resumed session. */
  readonly adoptSession: (session: Session) => void
  /** Replaces the connection's identity after a token refresh (same subject). */
  readonly refreshIdentity: (identity: Identity) => void
}

export interface Handler {
  readonly run: (context: CommandContext, data: unknown) => Effect.Effect<unknown, HydrogenError>
  /**
   * The same command started synchronously, without a fiber, for the connection's own identity
   * (no `auth.token`): `done` hears the outcome, now or later (events/publish: from the flush).
   */
  readonly start?: (
    context: CommandContext,
    data: unknown,
    done: (outcome: Either.Either<unknown, HydrogenError>) => void
  ) => void
}

/** Handlers by channel, then action: the seed's "handlers registered per channel". */
export type HandlerTable = ReadonlyMap<string, ReadonlyMap<string, Handler>>

export const maxSubscriptionsPerSession = 256

/** Decodes a command's data; a mismatch is a protocol error listing the issues. */
export const decodeDataEither = <A, I>(schema: Schema.Schema<A, I>, data: unknown): Either.Either<A, HydrogenError> =>
  Either.mapLeft(Schema.decodeUnknownEither(schema, { errors: "all" })(data ?? {}), (error) =>
    protocolError(ErrorCodes.invalidData, "the command's data is not valid", issuesOf(error))
  )

export const decodeData = <A, I>(schema: Schema.Schema<A, I>, data: unknown): Effect.Effect<A, HydrogenError> =>
  Either.match(decodeDataEither(schema, data), { onLeft: Effect.fail, onRight: Effect.succeed })

/** Why the identity may not do this, or undefined when it may. */
const refusal = (identity: Identity, permission: string, channel?: string): HydrogenError | undefined =>
  allows(identity, permission, channel)
    ? undefined
    : authenticationError(
        ErrorCodes.forbidden,
        `${identity.name} may not ${permission}${channel ? ` on ${channel}` : ""}`
      )

const requirePermission = (identity: Identity, permission: string, channel?: string) => {
  const error = refusal(identity, permission, channel)
  return error ? Effect.fail(error) : Effect.void
}

/** events/publish data: checked by hand when plain, else by its Schema. */
const publishDataOf = (raw: unknown): Either.Either<PublishData, HydrogenError> => {
  const plain = handPublishData(raw)
  return plain ? Either.right(plain) : decodeDataEither(PublishData, raw)
}

/** Checks a publish command's data and permission; the publication, or why not. */
const publicationOf = (identity: Identity, raw: unknown): Either.Either<Publication, HydrogenError> =>
  Either.flatMap(publishDataOf(raw), (data) => {
    const error = refusal(identity, Permission.publish, data.channel)
    return error ? Either.left(error) : Either.right(toPublication(data))
  })

export const toPublication = (data: PublishData): Publication => ({
  channel: data.channel,
  action: data.action,
  data: data.data ?? null,
  priority: data.priority ?? "normal",
  ack: data.ack ?? false
})

/** A single publication's outcome, failing with its error. */
export const publishOne = (channels: Channels, publication: Publication): Effect.Effect<Published, HydrogenError> =>
  channels
    .publish([publication])
    .pipe(Effect.flatMap((results) => Either.match(results[0]!, { onLeft: Effect.fail, onRight: Effect.succeed })))

const table = (entries: Record<string, Record<string, Handler>>): HandlerTable =>
  new Map(Object.entries(entries).map(([channel, actions]) => [channel, new Map(Object.entries(actions))]))

/** Handlers an embedding program adds, by channel then action (the seed's websocket_register_handler). */
export type ExtraHandlers = Readonly<Record<string, Readonly<Record<string, Handler>>>>

/** The shipped handlers: system (status, ping, whoami, refresh, resume), subscriptions, events (publish); plus any extra channels. */
export const makeHandlers = (deps: {
  readonly channels: Channels
  readonly sessions: Sessions
  readonly status: Status
  readonly authenticate: (credential: string) => Effect.Effect<Identity, HydrogenError>
  readonly extra?: ExtraHandlers
}): HandlerTable => {
  const { channels, sessions, status, authenticate } = deps
  return table({
    ...deps.extra,
    system: {
      status: { run: (context) => status.snapshot(context.identity) },
      ping: { run: () => Effect.map(Clock.currentTimeMillis, (now) => ({ pong: new Date(now).toISOString() })) },
      whoami: {
        run: (context) =>
          Effect.succeed({
            name: context.identity.name,
            kind: context.identity.kind,
            permissions: context.identity.permissions,
            session: context.session.id
          })
      },
      refresh: {
        run: (context, raw) =>
          Effect.gen(function* () {
            const data = yield* decodeData(RefreshData, raw)
            const fresh = yield* authenticate(data.token)
            if (
              context.identity.kind !== "session" ||
              fresh.kind !== "session" ||
              fresh.name !== context.identity.name
            ) {
              return yield* authenticationError(
                ErrorCodes.forbidden,
                "refresh takes a session token for the connection's own subject"
              )
            }
            context.refreshIdentity(fresh)
            return {
              name: fresh.name,
              permissions: fresh.permissions,
              expiresAt: new Date(fresh.expiresAt!).toISOString()
            }
          })
      },
      resume: {
        run: (context, raw) =>
          Effect.gen(function* () {
            const data = yield* decodeData(ResumeData, raw)
            const result = yield* sessions.resume(context.session, data.session, data.positions ?? {})
            context.adoptSession(result.session)
            return { session: result.session.id, channels: result.channels }
          })
      }
    },
    subscriptions: {
      subscribe: {
        run: (context, raw) =>
          Effect.gen(function* () {
            const data = yield* decodeData(SubscribeData, raw)
            yield* requirePermission(context.identity, Permission.subscribe, data.channel)
            if (
              !context.session.subscriptions.has(data.channel) &&
              context.session.subscriptions.size >= maxSubscriptionsPerSession
            ) {
              return yield* applicationError(
                ErrorCodes.limitExceeded,
                `at most ${maxSubscriptionsPerSession} subscriptions per session`
              )
            }
            if (data.recover && !channels.isReliable(data.channel)) {
              return yield* protocolError(
                ErrorCodes.invalidData,
                `${data.channel} is not a reliable channel: nothing to recover`
              )
            }
            const result = yield* channels.subscribe(context.session, {
              channel: data.channel,
              filter: data.filter,
              priority: data.priority ?? "normal",
              recover: data.recover
            })
            return { ...result, session: context.session.id }
          })
      },
      unsubscribe: {
        run: (context, raw) =>
          Effect.flatMap(decodeData(UnsubscribeData, raw), (data) =>
            Effect.map(channels.unsubscribe(context.session, data.channel), (unsubscribed) => ({
              channel: data.channel,
              unsubscribed
            }))
          )
      },
      list: {
        run: (context) =>
          Effect.succeed(
            [...context.session.subscriptions.values()].map((s) => ({
              channel: s.channel,
              priority: s.priority,
              reliable: channels.isReliable(s.channel),
              ...(s.filter ? { filter: s.filter } : {})
            }))
          )
      }
    },
    events: {
      publish: {
        run: (context, raw) =>
          Effect.flatMap(
            Either.match(publicationOf(context.identity, raw), { onLeft: Effect.fail, onRight: Effect.succeed }),
            (publication) => publishOne(channels, publication)
          ),
        // Enqueued now and answered from the flush: no fiber per publish command.
        start: (context, raw, done) => {
          const publication = publicationOf(context.identity, raw)
          if (Either.isLeft(publication)) done(publication)
          else channels.publishNow(publication.right, done)
        }
      }
    }
  })
}
