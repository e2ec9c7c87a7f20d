/**
 * Every benchmark message carries `"b":"<run>.<sender>.<seq>.<sentAtMicros>"` somewhere in its payload,
 * whatever the protocol wraps around it. Receivers find it with one native indexOf and read the
 * four numbers without parsing the rest (so the client side stays cheap).
 */
export const markerBytes = Buffer.from('"b":"')

export const markerText = (run: number, sender: number, seq: number, sentAt: number) =>
  `"b":"${run}.${sender}.${seq}.${sentAt}"`

/** Pads a JSON-ish message to roughly `size` bytes with an "x" field. */
export const padTo = (size: number, withoutPadding: number): string => "x".repeat(Math.max(0, size - withoutPadding))

export interface Marker {
  run: number
  sender: number
  seq: number
  sentAt: number
}

/** Reads the marker into `out` (reused to avoid an allocation per delivery); false when absent. */
export const readMarker = (payload: Buffer, out: Marker, from = 0): boolean => {
  const at = payload.indexOf(markerBytes, from)
  if (at < 0) return false
  let i = at + markerBytes.length
  let field = 0
  let value = 0
  for (; i < payload.length; i++) {
    const c = payload[i]!
    if (c >= 48 && c <= 57) value = value * 10 + (c - 48)
    else if (c === 46) {
      if (field === 0) out.run = value
      else if (field === 1) out.sender = value
      else out.seq = value
      field += 1
      value = 0
    } else break
  }
  if (field !== 3) return false
  out.sentAt = value
  return true
}
