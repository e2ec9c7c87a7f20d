/**
 * What crosses the broker: [kind: 1 byte][node id length: 1 byte][node id: ASCII][body]. The node id
 * lets a node drop its own echo; the kind keeps text frames text and binary frames binary.
 */
export const EnvelopeKind = { text: 0, binary: 1, joined: 2, left: 3 } as const
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
  if (kind > EnvelopeKind.left || bytes.length < 2 + idLength) return undefined
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
