import { Effect, Layer } from "effect"
import { makeMemoryTokens } from "../../layers/Tokens/MemoryTokens.ts"
import { TokenStoreUnavailable, Tokens, type TokensService } from "../../layers/Tokens/Tokens.ts"

/**
 * Tokens in memory that a test takes down and brings back: while down every call fails with
 * TokenStoreUnavailable, as a shared store's does in an outage. Like a shared store it has no
 * on-the-spot paths (issueNow, takeNow), so callers take the Effect paths that can fail.
 */
export const switchableTokens = Effect.gen(function* () {
  const memory = yield* makeMemoryTokens()
  let down = false
  const gated = <A>(call: () => Effect.Effect<A>) =>
    Effect.suspend(() => (down ? Effect.fail(new TokenStoreUnavailable({ reason: "test: store down" })) : call()))
  const service: TokensService = {
    issue: (kind, value, ttl, index) => gated(() => memory.issue(kind, value, ttl, index)),
    take: (kind, token) => gated(() => memory.take(kind, token)),
    get: (kind, token, slide) => gated(() => memory.get(kind, token, slide)),
    revoke: (kind, token) => gated(() => memory.revoke(kind, token)),
    revokeIndexed: (kind, index) => gated(() => memory.revokeIndexed(kind, index)),
    count: (kind) => gated(() => memory.count(kind))
  }
  return {
    layer: Layer.succeed(Tokens, service),
    setDown: (value: boolean) =>
      Effect.sync(() => {
        down = value
      })
  }
})
