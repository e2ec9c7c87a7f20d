/**
 * The OLAF/Neighbourhood v1.2 cryptography on WebCrypto only, so the server, the typed client and
 * the browser page share one implementation: RSA-2048 (e = 65537) keys exported as SPKI PEM,
 * RSA-PSS/SHA-256 signatures with a 32-byte salt over `data + counter`, RSA-OAEP/SHA-256 for the
 * AES key, AES-128-GCM with a 16-byte IV and the 16-byte tag appended, fingerprints as
 * base64(SHA-256(PEM)). No Effect here: this module runs in browsers as it is.
 */

const subtle = () => globalThis.crypto.subtle
/** Bytes backed by a plain ArrayBuffer, as WebCrypto wants them. */
export type Bytes = Uint8Array<ArrayBuffer>
const encoder = new TextEncoder()

export const rsaPss = { name: "RSA-PSS", hash: "SHA-256" } as const
export const rsaOaep = { name: "RSA-OAEP", hash: "SHA-256" } as const
export const pssSaltLength = 32
export const aesKeyBytes = 16
export const aesIvBytes = 16
export const minModulusBits = 2048
export const maxModulusBits = 4096

// ---- base64 (RFC 4648, standard alphabet, padded) ----------------------------------------------

export const toBase64 = (bytes: Uint8Array): string => {
  let binary = ""
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary)
}

const base64Shape = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Whether `text` is strict base64 (standard alphabet, padding required). */
export const isBase64 = (text: string): boolean => base64Shape.test(text)

/** Strict base64 (padding required); undefined when the text is not base64. */
export const fromBase64 = (text: string): Bytes | undefined => {
  if (!isBase64(text)) return undefined
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

// ---- PEM and fingerprints ------------------------------------------------------------------------

/** BEGIN/END lines with 4 or 5 dashes (the v1.2 example has a 4-dash typo), any whitespace in the body. */
const pemShape = /^\s*-{4,5}BEGIN PUBLIC KEY-{4,5}\s*([A-Za-z0-9+/=\s]+?)\s*-{4,5}END PUBLIC KEY-{4,5}\s*$/

/** The SPKI bytes of a PEM public key, whatever its line breaks; undefined when it is not one. */
export const spkiFromPem = (pem: string): Bytes | undefined => {
  const match = pemShape.exec(pem)
  if (!match) return undefined
  return fromBase64(match[1]!.replace(/\s+/g, ""))
}

/** v1.2's fingerprint form: header, the base64 SPKI on one line, footer; no trailing newline. */
export const canonicalPem = (spki: Bytes): string =>
  `-----BEGIN PUBLIC KEY-----\n${toBase64(spki)}\n-----END PUBLIC KEY-----`

/** The same key as OpenSSL, Node and Python write it: 64-column lines and a trailing newline. */
export const wrappedPem = (spki: Bytes): string =>
  `-----BEGIN PUBLIC KEY-----\n${(toBase64(spki).match(/.{1,64}/g) ?? []).join("\n")}\n-----END PUBLIC KEY-----\n`

export const sha256Base64 = async (text: string): Promise<string> =>
  toBase64(new Uint8Array(await subtle().digest("SHA-256", encoder.encode(text))))

/** The fingerprint v1.2 defines: base64(SHA-256(canonical PEM)). */
export const fingerprintOf = (spki: Bytes) => sha256Base64(canonicalPem(spki))

/**
 * Every fingerprint a peer may reasonably have computed for this key: the canonical one, and
 * those of the PEM texts other implementations hash (with a trailing newline, 64-column lines,
 * the text as the client sent it). Input side only; we emit the canonical one.
 */
export const fingerprintVariants = async (spki: Bytes, asSent?: string): Promise<ReadonlyArray<string>> => {
  const canonical = canonicalPem(spki)
  const wrapped = wrappedPem(spki)
  const texts = new Set([canonical, `${canonical}\n`, wrapped, wrapped.slice(0, -1)])
  if (asSent !== undefined) texts.add(asSent)
  return Promise.all([...texts].map(sha256Base64))
}

// ---- keys ----------------------------------------------------------------------------------------

export interface PublicKeyInfo {
  readonly spki: Bytes
  readonly pem: string
  readonly fingerprint: string
  readonly verifyKey: CryptoKey
}

export type KeyProblem =
  | "not a PEM public key"
  | "not an RSA key"
  | "RSA modulus must be 2048 to 4096 bits"
  | "RSA public exponent must be 65537"

const isF4 = (exponent: Uint8Array) => {
  let start = 0
  while (start < exponent.length && exponent[start] === 0) start++
  const e = exponent.subarray(start)
  return e.length === 3 && e[0] === 1 && e[1] === 0 && e[2] === 1
}

/** Parses and checks a client's or neighbour's PEM (RSA, 2048-4096 bits, e = 65537). */
export const importPublicPem = async (pem: string): Promise<PublicKeyInfo | KeyProblem> => {
  const spki = spkiFromPem(pem)
  if (!spki) return "not a PEM public key"
  let verifyKey: CryptoKey
  try {
    verifyKey = await subtle().importKey("spki", spki, rsaPss, true, ["verify"])
  } catch {
    return "not an RSA key"
  }
  const algorithm = verifyKey.algorithm as RsaHashedKeyAlgorithm
  if (algorithm.modulusLength < minModulusBits || algorithm.modulusLength > maxModulusBits)
    return "RSA modulus must be 2048 to 4096 bits"
  if (!isF4(algorithm.publicExponent)) return "RSA public exponent must be 65537"
  return { spki, pem: canonicalPem(spki), fingerprint: await fingerprintOf(spki), verifyKey }
}

export const encryptKeyFor = (spki: Bytes) => subtle().importKey("spki", spki, rsaOaep, false, ["encrypt"])

/** A fresh RSA-2048 key pair usable for signing (PSS) and, re-imported, for OAEP. */
export const generateKeyPair = () =>
  subtle().generateKey({ ...rsaPss, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, true, [
    "sign",
    "verify"
  ]) as Promise<CryptoKeyPair>

export const exportPublicPem = async (key: CryptoKey) =>
  canonicalPem(new Uint8Array(await subtle().exportKey("spki", key)))

export const exportPrivatePem = async (key: CryptoKey) =>
  `-----BEGIN PRIVATE KEY-----\n${(toBase64(new Uint8Array(await subtle().exportKey("pkcs8", key))).match(/.{1,64}/g) ?? []).join("\n")}\n-----END PRIVATE KEY-----\n`

const pkcs8Shape = /^\s*-{5}BEGIN PRIVATE KEY-{5}\s*([A-Za-z0-9+/=\s]+?)\s*-{5}END PRIVATE KEY-{5}\s*$/

export const pkcs8FromPem = (pem: string): Bytes | undefined => {
  const match = pkcs8Shape.exec(pem)
  return match ? fromBase64(match[1]!.replace(/\s+/g, "")) : undefined
}

/** The signing and decryption halves of one PKCS#8 private key (WebCrypto binds a key to one algorithm). */
export const importPrivateKey = async (pkcs8: Bytes) => ({
  signKey: await subtle().importKey("pkcs8", pkcs8, rsaPss, true, ["sign"]),
  decryptKey: await subtle().importKey("pkcs8", pkcs8, rsaOaep, false, ["decrypt"])
})

/** The public half of a PKCS#8 RSA key, via its JWK (WebCrypto does not derive it directly). */
export const publicSpkiOfPrivate = async (signKey: CryptoKey): Promise<Bytes> => {
  const jwk = await subtle().exportKey("jwk", signKey)
  const publicKey = await subtle().importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e, ext: true }, rsaPss, true, [
    "verify"
  ])
  return new Uint8Array(await subtle().exportKey("spki", publicKey))
}

// ---- signatures ----------------------------------------------------------------------------------

/** What v1.2 signs: the `data` string followed by the decimal counter. */
export const signedText = (data: string, counter: number) => `${data}${counter}`

export const signData = async (signKey: CryptoKey, data: string, counter: number): Promise<string> =>
  toBase64(
    new Uint8Array(
      await subtle().sign(
        { name: "RSA-PSS", saltLength: pssSaltLength },
        signKey,
        encoder.encode(signedText(data, counter))
      )
    )
  )

export const verifyData = async (
  verifyKey: CryptoKey,
  data: string,
  counter: number,
  signature: string
): Promise<boolean> => {
  const bytes = fromBase64(signature)
  if (!bytes) return false
  try {
    return await subtle().verify(
      { name: "RSA-PSS", saltLength: pssSaltLength },
      verifyKey,
      bytes,
      encoder.encode(signedText(data, counter))
    )
  } catch {
    return false
  }
}

// ---- chat encryption -----------------------------------------------------------------------------

export interface SealedChat {
  readonly iv: string
  readonly symm_keys: ReadonlyArray<string>
  readonly chat: string
}

/** One AES-128-GCM key for the message, wrapped with RSA-OAEP for each recipient in order. */
export const sealChat = async (plaintext: string, recipients: ReadonlyArray<Bytes>): Promise<SealedChat> => {
  const aesKey = await subtle().generateKey({ name: "AES-GCM", length: aesKeyBytes * 8 }, true, ["encrypt"])
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(aesIvBytes))
  const ciphertext = new Uint8Array(
    await subtle().encrypt({ name: "AES-GCM", iv, tagLength: 128 }, aesKey, encoder.encode(plaintext))
  )
  const rawKey = new Uint8Array(await subtle().exportKey("raw", aesKey))
  const symm_keys = await Promise.all(
    recipients.map(async (spki) =>
      toBase64(new Uint8Array(await subtle().encrypt(rsaOaep, await encryptKeyFor(spki), rawKey)))
    )
  )
  return { iv: toBase64(iv), symm_keys, chat: toBase64(ciphertext) }
}

/** Tries each wrapped key with our private key; the plaintext when one opens the message, else undefined. */
export const openChat = async (decryptKey: CryptoKey, sealed: SealedChat): Promise<string | undefined> => {
  const iv = fromBase64(sealed.iv)
  const ciphertext = fromBase64(sealed.chat)
  if (!iv || !ciphertext) return undefined
  for (const wrapped of sealed.symm_keys) {
    const wrappedBytes = fromBase64(wrapped)
    if (!wrappedBytes) continue
    try {
      const rawKey = await subtle().decrypt(rsaOaep, decryptKey, wrappedBytes)
      const aesKey = await subtle().importKey("raw", rawKey, "AES-GCM", false, ["decrypt"])
      return new TextDecoder().decode(
        await subtle().decrypt({ name: "AES-GCM", iv, tagLength: 128 }, aesKey, ciphertext)
      )
    } catch {
      // Not our key (OAEP fails) or a tampered message (GCM tag fails): try the next one.
    }
  }
  return undefined
}
