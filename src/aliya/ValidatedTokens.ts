/**
 * The gateway's memory of tokens the token server accepted, so a read or a spend does not cost a
 * /validate hop each time. An entry is trusted for at most `ttlMillis` after the token server
 * said yes (and never past the token's own `exp`); a login answered through this gateway drops
 * the player's older tokens at once. The bound: a token revoked by a login that did NOT pass
 * through this gateway (another gateway, the token server's HTTP API directly) is still accepted
 * here for at most `ttlMillis`. ttl 0 = ask the token server on every request.
 * Only the token server's positive answers are remembered; the gateway holds no signing key.
 */
export interface ValidatedTokens {
  /** unique_id of a token accepted less than ttl ago and not expired; undefined = ask the token server. */
  readonly lookup: (token: string, nowMillis: number) => string | undefined
  /** The token server accepted `token` for `uniqueId` at `nowMillis`. */
  readonly remember: (token: string, uniqueId: string, nowMillis: number) => void
  /** A login through this gateway issued `token`: every older token of its player is forgotten. */
  readonly issued: (token: string) => void
  readonly size: () => number
}

interface Entry {
  readonly uniqueId: string
  readonly until: number
}

/** The claims part of a JWT the token server issued or accepted (already verified by it): unique_id and exp. */
export const unverifiedClaims = (token: string): { unique_id: string; exp: number } | undefined => {
  const first = token.indexOf(".")
  const second = token.indexOf(".", first + 1)
  if (first < 0 || second < 0) return undefined
  try {
    const claims = JSON.parse(Buffer.from(token.slice(first + 1, second), "base64url").toString()) as {
      unique_id?: unknown
      exp?: unknown
    }
    return typeof claims.unique_id === "string" && typeof claims.exp === "number"
      ? { unique_id: claims.unique_id, exp: claims.exp }
      : undefined
  } catch {
    return undefined
  }
}

export const makeValidatedTokens = (options: {
  readonly ttlMillis: number
  readonly maxEntries: number
}): ValidatedTokens => {
  const entries = new Map<string, Entry>()
  // Each player's tokens in the cache, so a new login can drop them all.
  const byPlayer = new Map<string, Set<string>>()

  const forget = (token: string) => {
    const entry = entries.get(token)
    if (!entry) return
    entries.delete(token)
    const tokens = byPlayer.get(entry.uniqueId)
    tokens?.delete(token)
    if (tokens?.size === 0) byPlayer.delete(entry.uniqueId)
  }

  return {
    lookup: (token, now) => {
      const entry = entries.get(token)
      if (!entry) return undefined
      if (now < entry.until) return entry.uniqueId
      forget(token)
      return undefined
    },
    remember: (token, uniqueId, now) => {
      if (options.ttlMillis <= 0) return
      const claims = unverifiedClaims(token)
      if (!claims || claims.unique_id !== uniqueId) return
      const until = Math.min(now + options.ttlMillis, claims.exp * 1000)
      if (until <= now) return
      forget(token)
      // Bounded: the oldest entry (Map order = insertion order) makes room.
      if (entries.size >= options.maxEntries) {
        const oldest = entries.keys().next()
        if (!oldest.done) forget(oldest.value)
      }
      entries.set(token, { uniqueId, until })
      let tokens = byPlayer.get(uniqueId)
      if (!tokens) byPlayer.set(uniqueId, (tokens = new Set()))
      tokens.add(token)
    },
    issued: (token) => {
      const claims = unverifiedClaims(token)
      const tokens = claims && byPlayer.get(claims.unique_id)
      if (!tokens) return
      for (const old of [...tokens]) if (old !== token) forget(old)
    },
    size: () => entries.size
  }
}
