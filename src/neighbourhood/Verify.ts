import { constants, createPublicKey, type KeyObject, verify } from "node:crypto"
import { isBase64, type PublicKeyInfo, pssSaltLength, signedText } from "./Crypto.ts"

/**
 * The server's RSA-PSS check (SHA-256, MGF1-SHA-256, salt exactly 32 bytes, as Crypto.verifyData)
 * through node:crypto: one synchronous call costs ~25 % less CPU than WebCrypto's, whose work
 * pool hand-off and promise cost more than they save on a busy server (see docs/neighbourhood.md).
 * Server-only: the browser page and the typed client keep WebCrypto (Crypto.ts).
 */

const keyObjects = new WeakMap<PublicKeyInfo, KeyObject>()

/** The node:crypto key of an imported key, made once per key. */
const keyObjectOf = (key: PublicKeyInfo): KeyObject => {
  let keyObject = keyObjects.get(key)
  if (!keyObject) {
    keyObject = createPublicKey({ key: Buffer.from(key.spki), format: "der", type: "spki" })
    keyObjects.set(key, keyObject)
  }
  return keyObject
}

/** Whether `signature` (strict base64) is `key`'s RSA-PSS signature of `data` followed by `counter`. */
export const verifySigned = (key: PublicKeyInfo, data: string, counter: number, signature: string): boolean => {
  if (!isBase64(signature)) return false
  try {
    return verify(
      "sha256",
      Buffer.from(signedText(data, counter)),
      { key: keyObjectOf(key), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pssSaltLength },
      Buffer.from(signature, "base64")
    )
  } catch {
    return false
  }
}
