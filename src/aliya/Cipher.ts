import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"

/**
 * Body ciphers. A body on the wire is base64 with a "\n" after every 76 characters and at the
 * end (Python's base64.encodebytes; the newlines count in the frame length) of the ciphertext.
 */
export interface BodyCipher {
  readonly name: "aes-256-gcm" | "des-compat"
  /** Plaintext → wire body (ASCII bytes). */
  readonly seal: (plaintext: Uint8Array) => Uint8Array
  /** Wire body → plaintext, or undefined when it cannot be decrypted or authenticated. */
  readonly open: (body: Uint8Array) => Uint8Array | undefined
}

/** base64 in lines of 76 characters, each ending in "\n" (empty input → empty output, like encodebytes). */
export const encodeBase64Lines = (bytes: Uint8Array): Uint8Array => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
  const out = Buffer.allocUnsafe(text.length + Math.ceil(text.length / 76))
  let o = 0
  for (let i = 0; i < text.length; i += 76) {
    o += out.write(text.slice(i, i + 76), o, "latin1")
    out[o++] = 10
  }
  return out.subarray(0, o)
}

const alphabet = new Uint8Array(256)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") alphabet[c.charCodeAt(0)] = 1

/** Decodes base64, ignoring any byte outside the alphabet (as Python's decodebytes does); undefined if malformed. */
export const decodeBase64Lenient = (body: Uint8Array): Uint8Array | undefined => {
  const kept = Buffer.allocUnsafe(body.byteLength)
  let n = 0
  for (let i = 0; i < body.byteLength; i++) if (alphabet[body[i]!] === 1) kept[n++] = body[i]!
  const text = kept.toString("latin1", 0, n)
  if (n % 4 !== 0 || /=[^=]/.test(text)) return undefined
  return Buffer.from(text, "base64")
}

const NONCE = 12
const TAG = 16

/** AES-256-GCM: body = base64 lines of nonce(12) ‖ ciphertext ‖ tag(16); a random nonce per message. */
export const aesGcmCipher = (key: Uint8Array): BodyCipher => {
  if (key.byteLength !== 32) throw new Error("the AES-256-GCM key must be 32 bytes")
  const k = Buffer.from(key)
  return {
    name: "aes-256-gcm",
    seal: (plaintext) => {
      const nonce = randomBytes(NONCE)
      const cipher = createCipheriv("aes-256-gcm", k, nonce)
      const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
      return encodeBase64Lines(sealed)
    },
    open: (body) => {
      const raw = decodeBase64Lenient(body)
      if (!raw || raw.byteLength < NONCE + TAG) return undefined
      try {
        const decipher = createDecipheriv("aes-256-gcm", k, raw.subarray(0, NONCE))
        decipher.setAuthTag(raw.subarray(raw.byteLength - TAG))
        return Buffer.concat([decipher.update(raw.subarray(NONCE, raw.byteLength - TAG)), decipher.final()])
      } catch {
        return undefined
      }
    }
  }
}

/**
 * The original's cipher, for unchanged old clients only: DES-CBC with PKCS#5 padding (the
 * original wrote it as triple DES with equal halves, which is single DES). Insecure.
 */
export const desCompatCipher = (key: Uint8Array, iv: Uint8Array): BodyCipher => {
  if (key.byteLength !== 8 || iv.byteLength !== 8) throw new Error("the DES key and IV must be 8 bytes each")
  const k = Buffer.from(key)
  const v = Buffer.from(iv)
  return {
    name: "des-compat",
    seal: (plaintext) => {
      const cipher = createCipheriv("des-cbc", k, v)
      return encodeBase64Lines(Buffer.concat([cipher.update(plaintext), cipher.final()]))
    },
    open: (body) => {
      const raw = decodeBase64Lenient(body)
      if (!raw || raw.byteLength === 0 || raw.byteLength % 8 !== 0) return undefined
      try {
        const decipher = createDecipheriv("des-cbc", k, v)
        return Buffer.concat([decipher.update(raw), decipher.final()])
      } catch {
        return undefined
      }
    }
  }
}
