import { Duration, Effect, Layer, Option } from "effect"
import { repeatEvery } from "../../src/shared/Sweeps.ts"
import { randomToken, TokenTable } from "./TokenTable.ts"
import { Tokens, type TokensService } from "./Tokens.ts"

interface Held {
  readonly value: string
  readonly index: string | undefined
}

/**
 * Tokens in process memory: one TokenTable per kind (hashed lookup, constant-time compare) and
 * one sweep for all of them. The single-node default and the double the protocol tests use.
 */
export const makeMemoryTokens = (sweepInterval: Duration.DurationInput = "5 seconds") =>
  Effect.gen(function* () {
    const tables = new Map<string, TokenTable<Held>>()
    const tableOf = (kind: string) => {
      let table = tables.get(kind)
      if (!table) tables.set(kind, (table = new TokenTable<Held>((held) => held.index ?? "")))
      return table
    }
    yield* repeatEvery("tokens", sweepInterval, (now) => {
      for (const table of tables.values()) table.sweep(now)
    })
    const now = Effect.clockWith((clock) => clock.currentTimeMillis)
    // The synchronous issue and take read the clock this store was made with (the sweep's), as no Effect runs it.
    const clock = yield* Effect.clock
    const takeAt = (kind: string, token: string, at: number) => {
      const entry = tableOf(kind).take(token, at)
      return entry ? Option.some(entry.value.value) : Option.none()
    }

    const issueAt = (kind: string, value: string, ttl: Duration.Duration, index: string | undefined, at: number) => {
      const token = randomToken()
      tableOf(kind).insert(token, { value, index }, at + Duration.toMillis(ttl))
      return token
    }

    const revokeIndexedNow = (kind: string, index: string) => index !== "" && tableOf(kind).deleteByIndex(index)

    const service: TokensService<never> = {
      issue: (kind, value, ttl, index) => Effect.map(now, (at) => issueAt(kind, value, ttl, index, at)),
      issueNow: (kind, value, ttl, index) => issueAt(kind, value, ttl, index, clock.unsafeCurrentTimeMillis()),
      take: (kind, token) => Effect.map(now, (at) => takeAt(kind, token, at)),
      takeNow: (kind, token) => takeAt(kind, token, clock.unsafeCurrentTimeMillis()),
      get: (kind, token, slide) =>
        Effect.map(now, (at) => {
          const entry = tableOf(kind).find(token, at)
          if (!entry) return Option.none()
          if (slide !== undefined) entry.expiresAt = at + Duration.toMillis(slide)
          return Option.some(entry.value.value)
        }),
      revoke: (kind, token) => Effect.map(now, (at) => tableOf(kind).take(token, at) !== undefined),
      revokeIndexed: (kind, index) => Effect.sync(() => revokeIndexedNow(kind, index)),
      revokeIndexedNow: (kind, index) => revokeIndexedNow(kind, index),
      count: (kind) => Effect.sync(() => tables.get(kind)?.size ?? 0)
    }
    return service
  })

export const MemoryTokensLive = Layer.scoped(Tokens, makeMemoryTokens())
