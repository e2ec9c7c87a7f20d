/** A token bucket: `ratePerSecond` tokens accrue up to `burst`; each admitted event takes one. */
export interface TokenBucket {
  tokens: number
  updatedAt: number
}

export const fullBucket = (burst: number, now: number): TokenBucket => ({ tokens: burst, updatedAt: now })

/** Refills for the time since the last call, then takes a token if there is one. Mutates in place (hot path). */
export const takeToken = (bucket: TokenBucket, now: number, ratePerSecond: number, burst: number): boolean => {
  const elapsed = now - bucket.updatedAt
  if (elapsed > 0) {
    bucket.tokens = Math.min(burst, bucket.tokens + (elapsed * ratePerSecond) / 1000)
    bucket.updatedAt = now
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1
    return true
  }
  return false
}

/** Whether a bucket untouched since `updatedAt` would be full again by `now` (safe to forget). */
export const isRefilled = (bucket: TokenBucket, now: number, ratePerSecond: number, burst: number): boolean =>
  bucket.tokens + ((now - bucket.updatedAt) * ratePerSecond) / 1000 >= burst

/** As takeToken, for `count` tokens at once (a byte budget takes a datagram's size). */
export const takeTokens = (
  bucket: TokenBucket,
  now: number,
  ratePerSecond: number,
  burst: number,
  count: number
): boolean => {
  const elapsed = now - bucket.updatedAt
  if (elapsed > 0) {
    bucket.tokens = Math.min(burst, bucket.tokens + (elapsed * ratePerSecond) / 1000)
    bucket.updatedAt = now
  }
  if (bucket.tokens >= count) {
    bucket.tokens -= count
    return true
  }
  return false
}
