import { type KV, Kvm } from "@nats-io/kv"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import { natsConnection } from "../Cluster/NatsBroker.ts"
import { followedGate, NotConnected, natsResource } from "../Cluster/NatsResources.ts"
import { repeatEvery } from "../../src/shared/Sweeps.ts"
import { randomToken } from "./TokenTable.ts"
import { TokenStoreUnavailable, Tokens, type TokensService } from "./Tokens.ts"

export interface NatsTokensOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one NATS: the bucket is named from it. */
  readonly prefix: string
  /** How often expired entries are purged (default 30 s). */
  readonly sweepInterval?: Duration.DurationInput
}

interface Held {
  readonly v: string
  readonly i?: string | undefined
  /** Expires at (ms since the epoch, the nodes' clocks: keep them in sync, as for any cluster). */
  readonly e: number
}

const digest = (token: string) => new Bun.CryptoHasher("sha256").update(token).digest("hex")
const keyPart = (name: string) => Buffer.from(name).toString("base64url")

/**
 * Tokens shared by every node of a cluster in a JetStream KV bucket. Keys hold the SHA-256 of a
 * token, never the token. NATS 2.9 has no per-key expiry, so each value carries its expiry time and
 * a sweep purges what has passed. A take is a compare-and-delete on the entry's revision: of two
 * nodes taking one key, exactly one delete succeeds.
 */
export const makeNatsTokens = (options: NatsTokensOptions) =>
  Effect.gen(function* () {
    const connection = yield* natsConnection(options.url, "switchboard-tokens").pipe(Effect.orDie)
    const bucket = natsTokensBucket(options.prefix)
    // Made again when a restarted server lost it (no JetStream storage): before use after each reconnect, or on a miss.
    const tokens = natsResource(() => new Kvm(connection).create(bucket, { history: 1 }))
    yield* Effect.promise(tokens.get)
    const gate = followedGate(connection, tokens.renew)
    const tokenKey = (kind: string, token: string) => `t.${keyPart(kind)}.${digest(token)}`
    const indexKey = (kind: string, index: string) => `x.${keyPart(kind)}.${keyPart(index)}`
    const now = Clock.currentTimeMillis
    // Fails at once while the connection is down (and when it drops): the caller answers, nobody waits for NATS.
    const run = <A>(command: (kv: KV) => Promise<A>) =>
      Effect.tryPromise({
        try: () => gate.whileUp(() => tokens.use(command)),
        catch: (error) =>
          new TokenStoreUnavailable({
            reason: error instanceof NotConnected ? "NATS not connected" : "NATS did not answer"
          })
      })
    const live = async (kv: KV, key: string, at: number) => {
      const entry = await kv.get(key)
      if (!entry || entry.operation !== "PUT") return undefined
      const held = entry.json<Held>()
      return held.e > at ? { held, revision: entry.revision } : undefined
    }
    const purgeExpired = (filter: string, at: number) =>
      run(async (kv) => {
        let count = 0
        for await (const key of await kv.keys(filter)) {
          const entry = await kv.get(key)
          if (!entry || entry.operation !== "PUT") continue
          if (
            key.startsWith("t.")
              ? entry.json<Held>().e > at
              : (await live(kv, `t.${key.split(".")[1]}.${entry.string()}`, at)) !== undefined
          )
            count++
          else await kv.delete(key, { previousSeq: entry.revision }).catch(() => {})
        }
        return count
      })
    // Deletes leave markers in the stream; the sweep drops markers older than a sweep interval too.
    const sweepMillis = Duration.toMillis(Duration.decode(options.sweepInterval ?? "30 seconds"))
    const purgeMarkersOf = (kv: KV) =>
      (kv as unknown as { purgeDeletes?: (olderMillis?: number) => Promise<unknown> }).purgeDeletes?.bind(kv)
    yield* repeatEvery("nats tokens", sweepMillis, (at) =>
      Effect.zipRight(
        purgeExpired("t.>", at),
        run(async (kv) => void (await purgeMarkersOf(kv)?.(sweepMillis)))
      )
    )

    const service: TokensService = {
      issue: (kind, value, ttl, index) =>
        Effect.flatMap(now, (at) =>
          run(async (kv) => {
            const token = randomToken()
            const held: Held = { v: value, i: index, e: at + Duration.toMillis(ttl) }
            await kv.put(tokenKey(kind, token), JSON.stringify(held))
            if (index !== undefined && index !== "") await kv.put(indexKey(kind, index), digest(token))
            return token
          })
        ),
      take: (kind, token) =>
        Effect.flatMap(now, (at) =>
          run(async (kv) => {
            const found = await live(kv, tokenKey(kind, token), at)
            if (!found) return Option.none<string>()
            // Compare-and-delete: fails when another node changed or took it since our read.
            const won = await kv.delete(tokenKey(kind, token), { previousSeq: found.revision }).then(
              () => true,
              () => false
            )
            return won ? Option.some(found.held.v) : Option.none<string>()
          })
        ),
      get: (kind, token, slide) =>
        Effect.flatMap(now, (at) =>
          run(async (kv) => {
            const found = await live(kv, tokenKey(kind, token), at)
            if (!found) return Option.none<string>()
            if (slide !== undefined) {
              const moved: Held = { ...found.held, e: at + Duration.toMillis(slide) }
              await kv.update(tokenKey(kind, token), JSON.stringify(moved), found.revision).catch(() => {})
            }
            return Option.some(found.held.v)
          })
        ),
      revoke: (kind, token) =>
        Effect.flatMap(now, (at) =>
          run(async (kv) => {
            const found = await live(kv, tokenKey(kind, token), at)
            if (!found) return false
            return kv.delete(tokenKey(kind, token), { previousSeq: found.revision }).then(
              () => true,
              () => false
            )
          })
        ),
      revokeIndexed: (kind, index) =>
        index === ""
          ? Effect.succeed(false)
          : Effect.flatMap(now, (at) =>
              run(async (kv) => {
                const pointer = await kv.get(indexKey(kind, index))
                if (!pointer || pointer.operation !== "PUT") return false
                await kv.delete(indexKey(kind, index))
                const key = `t.${keyPart(kind)}.${pointer.string()}`
                const found = await live(kv, key, at)
                if (!found) return false
                return kv.delete(key, { previousSeq: found.revision }).then(
                  () => true,
                  () => false
                )
              })
            ),
      count: (kind) => Effect.flatMap(now, (at) => purgeExpired(`t.${keyPart(kind)}.*`, at))
    }
    return service
  })

export const NatsTokensLive = (options: NatsTokensOptions) => Layer.scoped(Tokens, makeNatsTokens(options))

/** The bucket of a prefix (tests remove it when they end). */
export const natsTokensBucket = (prefix: string) => `${prefix.replace(/[^A-Za-z0-9_-]/g, "_")}_tokens`
