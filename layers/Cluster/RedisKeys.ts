/**
 * Every Redis key name of a cluster, in one place. Keys that one command, MULTI or script touches
 * together carry the same hash tag (`{...}`), so on Redis Cluster they sit in one slot; on one Redis
 * the tag is just part of the name. Every key starts with the prefix (a prefix must hold no braces,
 * else its own braces become the tag: still one slot per prefix, but no spreading).
 */
export const redisKeys = (prefix: string) => ({
  /** A node's liveness key; claim scripts read the holders' ones with the scope's hash: tag `{nodes}`. */
  node: (nodeId: string) => `${prefix}{nodes}:node:${nodeId}`,
  claims: (scope: string) => `${prefix}{nodes}:claims:${scope}`,
  /** Single-key structures: no tag, so they spread over the slots. */
  presence: (room: string) => `${prefix}presence:${room}`,
  record: (key: string) => `${prefix}record:${key}`,
  count: (key: string) => `${prefix}count:${key}`,
  max: (key: string) => `${prefix}max:${key}`,
  /** A kind's tokens, its index entries and its expiry set move together: tag `{tokens:<kind>}`. */
  token: (kind: string, digest: string) => `${prefix}{tokens:${kind}}:token:${digest}`,
  tokenIndex: (kind: string, index: string) => `${prefix}{tokens:${kind}}:index:${index}`,
  tokenExpiries: (kind: string) => `${prefix}{tokens:${kind}}:expiries`
})

export type RedisKeys = ReturnType<typeof redisKeys>

/** The liveness id of a claim holder (`<liveness id>/<n>`), or undefined for a malformed one. */
export const holderNode = (holder: string): string | undefined => {
  const slash = holder.indexOf("/")
  return slash < 0 ? undefined : holder.slice(0, slash)
}
