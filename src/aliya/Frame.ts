/**
 * The Aliya wire frame: the 32 hex characters of MD5("aliya"), the body length as 4 zero-padded
 * decimal digits, then the body. Pure functions; no I/O.
 */

export const MAGIC = "e3cb970693574ea75d091a6049f8a3ff"
export const HEADER_SIZE = 36
export const MAX_BODY = 9999

const magicBytes = new TextEncoder().encode(MAGIC)

/** The frame around `body`, or undefined when the body does not fit the 4-digit length. */
export const encodeFrame = (body: Uint8Array): Uint8Array | undefined => {
  if (body.byteLength > MAX_BODY) return undefined
  const frame = new Uint8Array(HEADER_SIZE + body.byteLength)
  frame.set(magicBytes, 0)
  const digits = String(body.byteLength).padStart(4, "0")
  for (let i = 0; i < 4; i++) frame[32 + i] = digits.charCodeAt(i)
  frame.set(body, HEADER_SIZE)
  return frame
}

/** Body length from a 36-byte header, or -1 when the header is not a valid Aliya header. */
export const parseHeader = (header: Uint8Array): number => {
  for (let i = 0; i < 32; i++) if (header[i] !== magicBytes[i]) return -1
  let length = 0
  for (let i = 32; i < 36; i++) {
    const digit = header[i]! - 48
    if (digit < 0 || digit > 9) return -1
    length = length * 10 + digit
  }
  return length
}

export type DecodeResult = { readonly frames: ReadonlyArray<Uint8Array>; readonly badHeader: boolean }

/**
 * Incremental decoder: feed it bytes as they arrive (any split), get whole frame bodies back.
 * A bad header is final: the caller closes the connection without a reply. At most one frame
 * (36 + 9999 bytes) is ever buffered, whatever the input.
 */
export class FrameDecoder {
  private buffer = new Uint8Array(HEADER_SIZE + MAX_BODY)
  private filled = 0
  private bodyLength = -1
  private failed = false

  push(chunk: Uint8Array): DecodeResult {
    if (this.failed) return { frames: [], badHeader: true }
    const frames: Array<Uint8Array> = []
    let offset = 0
    while (offset < chunk.byteLength) {
      const wanted = (this.bodyLength < 0 ? HEADER_SIZE : HEADER_SIZE + this.bodyLength) - this.filled
      const take = Math.min(wanted, chunk.byteLength - offset)
      this.buffer.set(chunk.subarray(offset, offset + take), this.filled)
      this.filled += take
      offset += take
      if (take < wanted) break
      if (this.bodyLength < 0) {
        this.bodyLength = parseHeader(this.buffer)
        if (this.bodyLength < 0) {
          this.failed = true
          return { frames, badHeader: true }
        }
      }
      if (this.filled === HEADER_SIZE + this.bodyLength) {
        frames.push(this.buffer.slice(HEADER_SIZE, this.filled))
        this.filled = 0
        this.bodyLength = -1
      }
    }
    return { frames, badHeader: false }
  }

  /** Bytes held for an unfinished frame. */
  get buffered() {
    return this.filled
  }
}
