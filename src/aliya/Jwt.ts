import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto"
import { jwtVerify, SignJWT } from "jose"
import { Effect, Redacted } from "effect"

/** How tokens are signed: an HS256 secret (at least 32 bytes) or an Ed25519 private key (PKCS#8 PEM). */
export type SigningKey =
  | { readonly algorithm: "HS256"; readonly secret: Redacted.Redacted<string> }
  | { readonly algorithm: "EdDSA"; readonly privateKeyPem: Redacted.Redacted<string> }

export interface Claims {
  readonly unique_id: string
  readonly jti: string
  readonly exp: number
}

export interface JwtCodec {
  readonly algorithm: "HS256" | "EdDSA"
  readonly sign: (claims: Claims, issuedAt: number) => Effect.Effect<string>
  /** The claims of a well-signed, unexpired token at `nowMillis`; None otherwise. */
  readonly verify: (token: string, nowMillis: number) => Effect.Effect<Claims | undefined>
}

export const makeJwtCodec = (key: SigningKey): JwtCodec => {
  let signKey: Uint8Array | KeyObject | Promise<CryptoKey>
  let verifyKey: Uint8Array | KeyObject | Promise<CryptoKey>
  if (key.algorithm === "HS256") {
    const secret = new TextEncoder().encode(Redacted.value(key.secret))
    if (secret.byteLength < 32) throw new Error("the HS256 secret must be at least 32 bytes")
    // Imported once: given raw bytes, jose imports the key again on every sign and verify (most of a verify's cost).
    signKey = verifyKey = crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify"
    ])
  } else {
    const privateKey = createPrivateKey(Redacted.value(key.privateKeyPem))
    if (privateKey.asymmetricKeyType !== "ed25519") throw new Error("the private key must be an Ed25519 key")
    signKey = privateKey
    verifyKey = createPublicKey(privateKey)
  }
  const algorithms = [key.algorithm]
  return {
    algorithm: key.algorithm,
    sign: (claims, issuedAt) =>
      Effect.promise(async () =>
        new SignJWT({ unique_id: claims.unique_id })
          .setProtectedHeader({ alg: key.algorithm, typ: "JWT" })
          .setJti(claims.jti)
          .setIssuedAt(issuedAt)
          .setExpirationTime(claims.exp)
          .sign(await signKey)
      ),
    verify: (token, nowMillis) =>
      Effect.promise(async () =>
        jwtVerify(token, await verifyKey, { algorithms, currentDate: new Date(nowMillis) }).then(
          ({ payload }) =>
            typeof payload.unique_id === "string" && typeof payload.jti === "string" && typeof payload.exp === "number"
              ? { unique_id: payload.unique_id, jti: payload.jti, exp: payload.exp }
              : undefined,
          () => undefined
        )
      )
  }
}
