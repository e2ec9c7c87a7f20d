/**
 * Event ids: `<prefix>-<ordinal in base 36>`, the prefix random per process and the ordinal counting
 * up from 0. Pending acks are indexed by the ordinal (a number), so an ack finds its entry without
 * hashing the id; the id itself is still compared, so a foreign or forged id never matches.
 */
export const eventId = (prefix: string, ordinal: number): string => `${prefix}-${ordinal.toString(36)}`

/** Base-36 digits of the largest ordinal read back (36^10 < 2^53: every one is exact). */
const maxDigits = 10

/** The ordinal of an id made by `eventId`; undefined when it cannot be one. */
export const eventOrdinal = (id: string): number | undefined => {
  const dash = id.lastIndexOf("-")
  const digits = id.length - dash - 1
  if (dash < 0 || digits === 0 || digits > maxDigits) return undefined
  let ordinal = 0
  for (let i = dash + 1; i < id.length; i++) {
    const c = id.charCodeAt(i)
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1
    if (digit < 0) return undefined
    ordinal = ordinal * 36 + digit
  }
  return ordinal
}
