import { FileSystem } from "@effect/platform"
import { Data, Effect, Option } from "effect"
import type { Neighbour, NeighbourSettings } from "./Config.ts"
import {
  canonicalPem,
  exportPrivatePem,
  exportPublicPem,
  fingerprintOf,
  generateKeyPair,
  importPrivateKey,
  pkcs8FromPem,
  publicSpkiOfPrivate
} from "./Crypto.ts"
import type { ServerIdentity } from "./Server.ts"

export class NeighbourhoodKeyError extends Data.TaggedError("NeighbourhoodKeyError")<{ readonly message: string }> {}

/** Where the public half of a server key is written for the neighbours' admins: `<keyPath>.pub`. */
export const publicKeyPathOf = (keyPath: string) => `${keyPath}.pub`

/**
 * This server's RSA key from `keyPath` (PKCS#8 PEM), generated there (mode 0600, with the public
 * PEM beside it) when the file does not exist yet.
 */
export const loadOrCreateServerKey = (keyPath: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const fail = (message: string) => new NeighbourhoodKeyError({ message })
    const exists = yield* fs.exists(keyPath).pipe(Effect.mapError(() => fail(`cannot read ${keyPath}`)))
    if (!exists) {
      const pair = yield* Effect.promise(() => generateKeyPair())
      const directory = keyPath.includes("/") ? keyPath.slice(0, keyPath.lastIndexOf("/")) : "."
      yield* fs
        .makeDirectory(directory, { recursive: true, mode: 0o700 })
        .pipe(Effect.mapError(() => fail(`cannot create ${directory}`)))
      yield* fs
        .writeFileString(keyPath, yield* Effect.promise(() => exportPrivatePem(pair.privateKey)), { mode: 0o600 })
        .pipe(Effect.mapError(() => fail(`cannot write ${keyPath}`)))
      yield* fs
        .writeFileString(publicKeyPathOf(keyPath), `${yield* Effect.promise(() => exportPublicPem(pair.publicKey))}\n`)
        .pipe(Effect.mapError(() => fail(`cannot write ${publicKeyPathOf(keyPath)}`)))
      yield* Effect.logInfo(
        `generated a neighbourhood server key in ${keyPath} (public key in ${publicKeyPathOf(keyPath)})`
      )
    }
    const pem = yield* fs.readFileString(keyPath).pipe(Effect.mapError(() => fail(`cannot read ${keyPath}`)))
    const pkcs8 = pkcs8FromPem(pem)
    if (!pkcs8) return yield* fail(`${keyPath} is not a PKCS#8 PEM private key`)
    const { signKey } = yield* Effect.tryPromise({
      try: () => importPrivateKey(pkcs8),
      catch: () => fail(`${keyPath} is not an RSA private key`)
    })
    const spki = yield* Effect.promise(() => publicSpkiOfPrivate(signKey))
    const identity: ServerIdentity = {
      signKey,
      publicPem: canonicalPem(spki),
      fingerprint: yield* Effect.promise(() => fingerprintOf(spki))
    }
    return identity
  })

/** The neighbours with their keys as PEM text (inline `publicKey`, or read from `publicKeyPath`). */
export const loadNeighbourKeys = (neighbours: ReadonlyArray<NeighbourSettings>) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    return yield* Effect.forEach(neighbours, (n) =>
      Option.match(n.publicKey, {
        onSome: (pem) => Effect.succeed<Neighbour>({ address: n.address, url: n.url, publicKeyPem: pem }),
        onNone: () => {
          const path = Option.getOrElse(n.publicKeyPath, () => "")
          return fs.readFileString(path).pipe(
            Effect.map((pem): Neighbour => ({ address: n.address, url: n.url, publicKeyPem: pem })),
            Effect.mapError(
              () =>
                new NeighbourhoodKeyError({
                  message: `neighbourhood.neighbours: cannot read the key of ${n.address} at ${path}`
                })
            )
          )
        }
      })
    )
  })
