/**
 * The worker of `verify-offthread.ts`: batches of checks packed in one string (per item
 * "textLength signatureLength\n" + text + signature) under one SPKI key, answered with one byte per
 * item in order (1 = valid), as the off-thread verifier built for issue 9 did (commit ebd3939).
 */
import { constants, createPublicKey, type KeyObject, verify } from "node:crypto"

declare const self: Worker
const keys = new Map<string, KeyObject>()
const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }

self.onmessage = (event: MessageEvent<{ seq: number; key: string; items: string; count: number }>) => {
  const { seq, key: spki, items, count } = event.data
  let key = keys.get(spki)
  if (!key) {
    key = createPublicKey({ key: Buffer.from(spki, "base64"), format: "der", type: "spki" })
    keys.set(spki, key)
  }
  const results = new Uint8Array(count)
  let at = 0
  for (let i = 0; i < count; i++) {
    const lineEnd = items.indexOf("\n", at)
    const [textLength, signatureLength] = items.slice(at, lineEnd).split(" ").map(Number) as [number, number]
    const textEnd = lineEnd + 1 + textLength
    const text = items.slice(lineEnd + 1, textEnd)
    const signature = items.slice(textEnd, textEnd + signatureLength)
    results[i] = verify("sha256", Buffer.from(text), { key, ...pss }, Buffer.from(signature, "base64")) ? 1 : 0
    at = textEnd + signatureLength
  }
  self.postMessage({ seq, results }, [results.buffer])
}
