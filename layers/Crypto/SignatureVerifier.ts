import { constants, createPublicKey, type KeyObject, verify } from "node:crypto"
import { Context, Layer } from "effect"

/** An RSA-PSS scheme: the digest (node:crypto's name, e.g. "sha256", also used for MGF1) and the exact salt length. */
export interface PssScheme {
  readonly hash: string
  readonly saltLength: number
}

/**
 * RSA-PSS signature checks, inline on the event loop or on worker threads (`VerifierPool.ts`).
 * Generic: the protocol decides the scheme, what text is signed and what a result means.
 */
export interface SignatureVerifierService {
  /**
   * Whether `signature` (base64) is the signature of `text` (UTF-8) under the SPKI (DER) key: a
   * boolean at once (inline), or a promise of it (a worker). The same `spki` array is expected for
   * the same key, as keys are prepared once per array. Never rejects: a bad key or signature is false.
   */
  readonly verify: (spki: Uint8Array, text: string, signature: string) => boolean | Promise<boolean>
  /** Worker threads behind `verify` (0: inline). */
  readonly threads: number
}

export class SignatureVerifier extends Context.Tag("switchboard/SignatureVerifier")<
  SignatureVerifier,
  SignatureVerifierService
>() {}

export interface InlineVerifier extends SignatureVerifierService {
  readonly verify: (spki: Uint8Array, text: string, signature: string) => boolean
}

export const makeInlineVerifier = (scheme: PssScheme): InlineVerifier => {
  const keyObjects = new WeakMap<Uint8Array, KeyObject>()
  const options = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.saltLength }
  return {
    threads: 0,
    verify: (spki, text, signature) => {
      try {
        let key = keyObjects.get(spki)
        if (!key) {
          key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" })
          keyObjects.set(spki, key)
        }
        return verify(scheme.hash, Buffer.from(text), { key, ...options }, Buffer.from(signature, "base64"))
      } catch {
        return false
      }
    }
  }
}

/** The inline verifier as a layer (what the protocol tests and `verifyThreads: 0` use). */
export const InlineSignatureVerifier = (scheme: PssScheme) =>
  Layer.sync(SignatureVerifier, () => makeInlineVerifier(scheme))
