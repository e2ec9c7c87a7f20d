/**
 * The worker of `VerifierPool.ts`. First message: the scheme. Then batches: keys as base64 SPKI
 * (KeyObjects kept in a bounded map, so a key costs one import per worker) and items packed in one
 * string (per item "keyIndex textLength signatureLength\n" + text + signature), answered with one
 * byte per item in order (1 = valid).
 */
import { constants, createPublicKey, type KeyObject, verify } from "node:crypto"
import type { WorkerBatch, WorkerInit, WorkerResult } from "./VerifierPool.ts"

declare const self: Worker

/** Keys kept per worker; the least recently used is dropped beyond this (it is re-imported if it comes back). */
const keyCapacity = 10_000
const keyObjects = new Map<string, KeyObject | undefined>()
let options = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
let hash = "sha256"

const keyOf = (spkiBase64: string): KeyObject | undefined => {
  if (keyObjects.has(spkiBase64)) {
    const key = keyObjects.get(spkiBase64)
    keyObjects.delete(spkiBase64)
    keyObjects.set(spkiBase64, key)
    return key
  }
  let key: KeyObject | undefined
  try {
    key = createPublicKey({ key: Buffer.from(spkiBase64, "base64"), format: "der", type: "spki" })
  } catch {
    key = undefined
  }
  keyObjects.set(spkiBase64, key)
  if (keyObjects.size > keyCapacity) keyObjects.delete(keyObjects.keys().next().value!)
  return key
}

const check = (key: KeyObject | undefined, text: string, signature: string) => {
  if (!key) return 0
  try {
    return verify(hash, Buffer.from(text), { key, ...options }, Buffer.from(signature, "base64")) ? 1 : 0
  } catch {
    return 0
  }
}

export const handleBatch = (batch: WorkerBatch): WorkerResult => {
  const keys = batch.keys.map(keyOf)
  const results = new Uint8Array(batch.count)
  const packed = batch.items
  let at = 0
  for (let i = 0; i < batch.count; i++) {
    const lineEnd = packed.indexOf("\n", at)
    const header = packed.slice(at, lineEnd).split(" ")
    const textEnd = lineEnd + 1 + Number(header[1])
    const signatureEnd = textEnd + Number(header[2])
    results[i] = check(keys[Number(header[0])], packed.slice(lineEnd + 1, textEnd), packed.slice(textEnd, signatureEnd))
    at = signatureEnd
  }
  return { seq: batch.seq, results }
}

self.onmessage = (event: MessageEvent<WorkerInit | WorkerBatch>) => {
  const message = event.data
  if ("scheme" in message) {
    hash = message.scheme.hash
    options = { ...options, saltLength: message.scheme.saltLength }
    return
  }
  const result = handleBatch(message)
  self.postMessage(result, [result.results.buffer])
}
