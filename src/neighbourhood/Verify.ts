import { makeInlineVerifier, type SignatureVerifierService } from "../../layers/Crypto/SignatureVerifier.ts"
import { isBase64, type PublicKeyInfo, pssSaltLength, signedText } from "./Crypto.ts"

/**
 * The server's RSA-PSS rule (SHA-256, MGF1-SHA-256, salt exactly 32 bytes, as Crypto.verifyData,
 * over `data` followed by the counter, the signature strict base64), checked with node:crypto
 * through the SignatureVerifier layer: inline (one synchronous call, ~25 % less CPU than WebCrypto,
 * whose work pool and promise cost more than they save) or on worker threads
 * (`neighbourhood.verifyThreads`). Server-only: the page and the typed client keep WebCrypto.
 */
export const neighbourhoodPss = { hash: "sha256", saltLength: pssSaltLength } as const

/** Inline checks: hellos and server_hellos (rare, and they change state at once), and the default verifier. */
export const inlineVerifier = makeInlineVerifier(neighbourhoodPss)

/** Whether `signature` is `key`'s signature of `data` followed by `counter`: now, or later when on a worker. */
export const checkSigned = (
  verifier: SignatureVerifierService,
  key: PublicKeyInfo,
  data: string,
  counter: number,
  signature: string
): boolean | Promise<boolean> =>
  isBase64(signature) ? verifier.verify(key.spki, signedText(data, counter), signature) : false

/** The same check now, on this thread. */
export const verifySigned = (key: PublicKeyInfo, data: string, counter: number, signature: string): boolean =>
  isBase64(signature) && inlineVerifier.verify(key.spki, signedText(data, counter), signature)
