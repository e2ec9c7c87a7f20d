import { createHash, timingSafeEqual } from "node:crypto"
import { Context, Option, Redacted } from "effect"
import type { ApiKeySetting } from "./Config.ts"
import type { Identity } from "./Permissions.ts"

/** The stored form of an API key: "sha256:<hex>". API keys are long random strings, so a fast hash suffices. */
export const hashApiKey = (key: string): string => `sha256:${createHash("sha256").update(key).digest("hex")}`

interface StoredKey {
  readonly digest: Buffer
  readonly identity: Identity
}

/**
 * Configured API keys, held only as SHA-256 digests. A presented key is hashed and compared with
 * every stored digest in constant time, without stopping at the first match.
 */
export class ApiKeys extends Context.Tag("switchboard/ApiKeys")<
  ApiKeys,
  { readonly lookup: (presented: string) => Option.Option<Identity> }
>() {}

export const makeApiKeys = (settings: ReadonlyArray<ApiKeySetting>) => {
  const stored: ReadonlyArray<StoredKey> = settings.map((setting) => {
    const hash = Option.getOrElse(setting.hash, () => hashApiKey(Redacted.value(Option.getOrThrow(setting.key))))
    return {
      digest: Buffer.from(hash.slice("sha256:".length), "hex"),
      identity: { name: setting.name, kind: "api-key", permissions: setting.permissions }
    }
  })
  return ApiKeys.of({
    lookup: (presented) => {
      const digest = createHash("sha256").update(presented).digest()
      let found: Identity | undefined
      for (const key of stored) if (timingSafeEqual(digest, key.digest) && !found) found = key.identity
      return Option.fromNullable(found)
    }
  })
}
