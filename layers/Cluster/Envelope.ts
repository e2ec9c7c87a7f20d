/**
 * What crosses the broker: [kind: 1 byte][node id length: 1 byte][node id: ASCII][body]. The node id
 * lets a node drop its own echo; the kind keeps text frames text and binary frames binary. A batch's
 * body is several frames in order, each [kind: text|binary][length: u32 big-endian][frame].
 */
export const EnvelopeKind = { text: 0, binary: 1, joined: 2, left: 3, batch: 4 } as const
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind]

export interface Envelope {
  readonly kind: EnvelopeKind
  readonly nodeId: string
  readonly body: Uint8Array
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A node id's header bytes, computed once per node. */
export const envelopeHeader = (nodeId: string): Uint8Array => {
  const id = encoder.encode(nodeId)
  if (id.length > 255) throw new Error("a node id is at most 255 bytes")
  const header = new Uint8Array(2 + id.length)
  header[1] = id.length
  header.set(id, 2)
  return header
}

/** Header (with the kind written in) followed by `body`: one allocation per message. */
export const encodeEnvelope = (header: Uint8Array, kind: EnvelopeKind, body: string | Uint8Array): Uint8Array => {
  if (typeof body !== "string") {
    const out = new Uint8Array(header.length + body.length)
    out.set(header)
    out[0] = kind
    out.set(body, header.length)
    return out
  }
  const out = new Uint8Array(header.length + Buffer.byteLength(body, "utf8"))
  out.set(header)
  out[0] = kind
  encoder.encodeInto(body, out.subarray(header.length))
  return out
}

/** Undefined for bytes too short or of an unknown kind (a foreign publisher on our channel). */
export const decodeEnvelope = (bytes: Uint8Array): Envelope | undefined => {
  if (bytes.length < 2) return undefined
  const kind = bytes[0]!
  const idLength = bytes[1]!
  if (kind > EnvelopeKind.batch || bytes.length < 2 + idLength) return undefined
  return {
    kind: kind as EnvelopeKind,
    nodeId: decoder.decode(bytes.subarray(2, 2 + idLength)),
    body: bytes.subarray(2 + idLength)
  }
}

/** True when the envelope came from the node whose header this is (compared without decoding). */
export const isFrom = (bytes: Uint8Array, header: Uint8Array): boolean => {
  if (bytes.length < header.length || bytes[1] !== header[1]) return false
  for (let i = 2; i < header.length; i++) if (bytes[i] !== header[i]) return false
  return true
}

export const bodyText = (body: Uint8Array) => decoder.decode(body)

/** One frame of a batch: text stays text, bytes stay bytes. */
export type BatchFrame = string | Uint8Array

const frameHeader = 5

/** Header (kind = batch) followed by every frame in order: one allocation for the whole batch. */
export const encodeBatch = (header: Uint8Array, frames: ReadonlyArray<BatchFrame>): Uint8Array => {
  let size = header.length
  for (const frame of frames)
    size += frameHeader + (typeof frame === "string" ? Buffer.byteLength(frame, "utf8") : frame.length)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(header)
  out[0] = EnvelopeKind.batch
  let at = header.length
  for (const frame of frames) {
    const start = at + frameHeader
    const length =
      typeof frame === "string"
        ? encoder.encodeInto(frame, out.subarray(start)).written
        : (out.set(frame, start), frame.length)
    out[at] = typeof frame === "string" ? EnvelopeKind.text : EnvelopeKind.binary
    view.setUint32(at + 1, length)
    at = start + length
  }
  return out
}

/** The frames of a batch's body in order; undefined when it is malformed (nothing of it is trusted). */
export const decodeBatch = (body: Uint8Array): Array<BatchFrame> | undefined => {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const frames: Array<BatchFrame> = []
  let at = 0
  while (at < body.length) {
    if (body.length - at < frameHeader) return undefined
    const kind = body[at]!
    const length = view.getUint32(at + 1)
    const start = at + frameHeader
    if (kind > EnvelopeKind.binary || body.length - start < length) return undefined
    const frame = body.subarray(start, start + length)
    frames.push(kind === EnvelopeKind.text ? decoder.decode(frame) : frame)
    at = start + length
  }
  return frames
}

/**
 * Builds a batch envelope in place as frames come: each frame is written (text encoded, bytes copied)
 * straight into the one buffer that is published, so a frame is copied once on the sending node.
 * Layout as `encodeBatch`; `finish` returns a lone frame as a plain envelope without copying it again.
 */
export class BatchWriter {
  private buffer: Uint8Array
  private view: DataView
  private used: number
  private lastKind: EnvelopeKind = EnvelopeKind.text
  /** Frames written so far. */
  count = 0

  constructor(
    private readonly header: Uint8Array,
    firstFrameBytes = 0
  ) {
    this.buffer = Buffer.allocUnsafe(Math.max(4096, 2 * (header.length + frameHeader + firstFrameBytes)))
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength)
    this.buffer.set(header)
    this.buffer[0] = EnvelopeKind.batch
    this.used = header.length
  }

  /** Bytes of the batch envelope so far. */
  get bytes(): number {
    return this.used
  }

  add(frame: BatchFrame): void {
    const isText = typeof frame === "string"
    // UTF-8 takes at most 3 bytes per UTF-16 unit; the exact size is known once written.
    this.reserve(frameHeader + (isText ? frame.length * 3 : frame.length))
    const start = this.used + frameHeader
    const length = isText
      ? encoder.encodeInto(frame, this.buffer.subarray(start)).written
      : (this.buffer.set(frame, start), frame.length)
    this.lastKind = isText ? EnvelopeKind.text : EnvelopeKind.binary
    this.buffer[this.used] = this.lastKind
    this.view.setUint32(this.used + 1, length)
    this.used = start + length
    this.count++
  }

  /** The envelope to publish: a batch, or for a lone frame the plain envelope (header moved up to the frame). */
  finish(): Uint8Array {
    if (this.count !== 1) return this.buffer.subarray(0, this.used)
    const at = frameHeader
    this.buffer.copyWithin(at, 0, this.header.length)
    this.buffer[at] = this.lastKind
    return this.buffer.subarray(at, this.used)
  }

  private reserve(more: number): void {
    if (this.used + more <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.used + more))
    grown.set(this.buffer.subarray(0, this.used))
    this.buffer = grown
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength)
  }
}
