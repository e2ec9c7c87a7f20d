import type { KeyObject } from "node:crypto"
import { Deferred, type Duration, Effect, Either, Option, Redacted, Stream, SubscriptionRef } from "effect"
import { Federation } from "../../layers/Federation/Federation.ts"
import { type Link, LinkClosed } from "../../layers/Federation/Link.ts"
import { decodeAuthToRelayFast, encodeLoginReply, encodeLogout } from "./S2SFast.ts"
import { encodeRelayToAuth, type InfoData, type LoginRequestData, signChallenge, signChallengeEd25519 } from "./S2S.ts"
import type { UnitRoomsService, UnitMember } from "./UnitRooms.ts"
import type { LoginKeys } from "./LoginKeys.ts"
import type { TokenStoreUnavailable } from "../../layers/Tokens/Tokens.ts"
import { ErrorCode } from "./Wire.ts"

/** What a login key admits: the LOGIN request the authenticator sent. */
export type UnitGrant = LoginRequestData

export interface AuthLinkOptions {
  readonly url: string
  readonly serverId: string
  readonly version: string
  /** Answers the authenticator's challenge nonce (Ed25519 key or shared secret); None: no credentials. */
  readonly prove: Option.Option<(nonce: string) => Effect.Effect<string, LinkClosed>>
  /** Host and port clients are told to dial (cs.g, cs.h); the port is known once the relay listens. */
  readonly publicHost: string
  readonly publicPort: Effect.Effect<number>
  readonly redialMax: Duration.DurationInput
  /** At most one INFO per interval: a burst of joins and leaves becomes one INFO, then the final state. */
  readonly infoInterval: Duration.DurationInput
  readonly keys: LoginKeys<UnitGrant>
  readonly rooms: Pick<UnitRoomsService, "snapshot" | "onChange">
}

/** The relay's challenge answer: an Ed25519 signature when a private key is given, else the shared-secret HMAC. */
export const challengeProver = (
  serverId: string,
  secret: Option.Option<Redacted.Redacted<string>>,
  privateKey: Option.Option<KeyObject>
): Option.Option<(nonce: string) => Effect.Effect<string, LinkClosed>> => {
  // A signature that cannot be made drops this link attempt; the link re-dials.
  const unsigned = () => new LinkClosed({ code: 1011, reason: "could not sign the challenge" })
  if (Option.isSome(privateKey)) {
    const key = privateKey.value
    return Option.some((nonce) => Effect.try({ try: () => signChallengeEd25519(key, nonce), catch: unsigned }))
  }
  return Option.map(
    secret,
    (value) => (nonce: string) =>
      Effect.tryPromise({ try: () => signChallenge(Redacted.value(value), serverId, nonce), catch: unsigned })
  )
}

/** The relay's view of its authenticator link. */
export interface AuthLink {
  /** Tells the authenticator a unit left (LOGOUT); dropped when the link is down. */
  readonly notifyLogout: (member: UnitMember) => void
  /** Linked and accepted by the authenticator. */
  readonly isUp: () => boolean
  /** Completes once the link is (or already was) up (`true`) or down (`false`). */
  readonly awaitUp: (up: boolean) => Effect.Effect<void>
}

/**
 * The relay's side of the server-to-server link: dials the authenticator and keeps re-dialling
 * (jittered, capped), answers its challenge, then sends INFO at once and after joins and leaves
 * (coalesced: at most one per `infoInterval`), and answers LOGIN with a fresh single-use key.
 * The dialling, backoff and up/down gauge are the Federation link's. Lives as long as the
 * calling Scope.
 */
export const makeAuthLink = (options: AuthLinkOptions) =>
  Effect.gen(function* () {
    const federation = yield* Federation
    let current: { link: Link; accepted: Deferred.Deferred<void>; up: boolean } | undefined
    const upState = yield* SubscriptionRef.make(false)
    const setUp = (state: { up: boolean }, up: boolean) =>
      Effect.suspend(() => {
        state.up = up
        return SubscriptionRef.set(upState, up)
      })

    const info = Effect.zipWith(
      options.rooms.snapshot,
      options.publicPort,
      (snapshot, port): InfoData => ({
        isOnline: true,
        version: options.version,
        serverId: options.serverId,
        public_host: options.publicHost,
        serverPort: port,
        accounts: snapshot.accounts,
        accountDetails: snapshot.accountDetails
      })
    )

    const sendInfo = (link: Link) =>
      Effect.flatMap(info, (d) => Effect.sync(() => link.send(encodeRelayToAuth({ c: "a", d }))))

    const onOpen = (link: Link) =>
      Effect.gen(function* () {
        const accepted = yield* Deferred.make<void>()
        const state = { link, accepted, up: false }
        current = state
        yield* Effect.addFinalizer(() => setUp(state, false))
        // Listen before waiting, so no join or leave between acceptance and the first INFO is missed.
        // Every INFO carries the whole state, so a burst needs one INFO, not one per change: a join or leave
        // only raises a flag (the latch opens once per burst), and the link's INFO fiber wakes once for it.
        let changed = false
        const pending = yield* Effect.makeLatch(false)
        yield* options.rooms.onChange(() => {
          if (changed) return
          changed = true
          pending.unsafeOpen()
        })
        // The first change after a quiet spell goes out at once, then at most one INFO per interval, and the
        // pause after each INFO lets the next burst pile up (the flag is cleared before the state is read).
        const sendLatest = Effect.suspend(() => {
          changed = false
          pending.unsafeClose()
          return Effect.zipRight(sendInfo(link), Effect.sleep(options.infoInterval))
        })
        yield* Deferred.await(accepted).pipe(
          Effect.zipRight(setUp(state, true)),
          Effect.zipRight(sendLatest),
          Effect.zipRight(Effect.forever(Effect.zipRight(pending.await, sendLatest))),
          Effect.forkScoped
        )
      })

    // Learnt by the first LOGIN answered through the Effect path; then LOGINs can be answered on the spot.
    let knownPort: number | undefined
    const sendLoginReply = (link: Link, request: LoginRequestData, key: string, port: number) =>
      link.send(encodeLoginReply({ r: request.r, e: 0, g: options.publicHost, h: port, f: key }))

    // A key the store could not issue refuses this login only (the authenticator answers "No available Server").
    const refuseLogin = (link: Link, request: LoginRequestData, error: TokenStoreUnavailable) =>
      Effect.zipRight(
        Effect.logWarning("LOGIN refused: login key store unavailable", error.reason),
        Effect.sync(() => link.send(encodeLoginReply({ r: request.r, e: ErrorCode.databaseError })))
      )

    const answerLogin = (link: Link, request: LoginRequestData) =>
      Effect.gen(function* () {
        const key = yield* options.keys.issue(request)
        const port = (knownPort = yield* options.publicPort)
        sendLoginReply(link, request, key, port)
      }).pipe(Effect.catchTag("TokenStoreUnavailable", (error) => refuseLogin(link, request, error)))

    /** A LOGIN answered without the link's fiber when the keys are issued on the spot; anything else goes to onMessage. */
    const onMessageNow = (message: string | Uint8Array, link: Link) => {
      const issueNow = options.keys.issueNow
      if (issueNow === undefined || knownPort === undefined) return false
      const decoded = decodeAuthToRelayFast(typeof message === "string" ? message : new TextDecoder().decode(message))
      if (Either.isLeft(decoded) || "s2s_auth" in decoded.right) return false
      const request = decoded.right.d
      sendLoginReply(link, request, issueNow(request), knownPort)
      return true
    }

    const onMessage = (message: string | Uint8Array, link: Link) =>
      Effect.gen(function* () {
        const decoded = decodeAuthToRelayFast(typeof message === "string" ? message : new TextDecoder().decode(message))
        if (Either.isLeft(decoded)) return yield* Effect.logWarning("authenticator sent an unreadable frame; ignored")
        const frame = decoded.right
        if ("s2s_auth" in frame) {
          if (frame.s2s_auth === "ok") return current ? yield* Deferred.succeed(current.accepted, undefined) : undefined
          if (Option.isNone(options.prove))
            yield* Effect.logError(
              "the authenticator demands credentials but neither relay.s2sSecret nor relay.s2sPrivateKeyPath is set"
            )
          const sig = Option.isSome(options.prove) ? yield* options.prove.value(frame.nonce) : ""
          return link.send(encodeRelayToAuth({ s2s_auth: "response", id: options.serverId, sig }))
        }
        return yield* answerLogin(link, frame.d)
      })

    yield* federation.link({
      name: `${options.serverId}->authenticator`,
      url: options.url,
      maxDelay: options.redialMax,
      handler: { onOpen, onMessage, onMessageNow }
    })

    const link: AuthLink = {
      notifyLogout: (member) => {
        if (current?.up)
          current.link.send(encodeLogout({ s: member.unitName, a: member.accountId, r: member.requestId }))
      },
      isUp: () => current?.up === true,
      awaitUp: (up) =>
        upState.changes.pipe(
          Stream.filter((state) => state === up),
          Stream.runHead,
          Effect.asVoid
        )
    }
    return link
  })
