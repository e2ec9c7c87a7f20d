import type { KeyObject } from "node:crypto"
import { FileSystem } from "@effect/platform"
import { Data, Effect, Option } from "effect"
import { privateKeyFromPem, publicKeyFromPem } from "./S2S.ts"

export class S2sKeyError extends Data.TaggedError("S2sKeyError")<{ readonly message: string }> {}

/** The text of a PEM key file; a missing or unreadable file stops the program with one line. */
export const readKeyFile = (path: string, what: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
    Effect.mapError(() => new S2sKeyError({ message: `cannot read ${what} at ${path}` }))
  )

/** server id → Ed25519 public key, from server id → PEM file path. */
export const loadTrustedKeys = (paths: ReadonlyMap<string, string>) =>
  Effect.forEach([...paths], ([serverId, path]) =>
    readKeyFile(path, `the S2S public key of ${serverId}`).pipe(
      Effect.flatMap((pem) =>
        Effect.try({
          try: () => [serverId, publicKeyFromPem(pem)] as const,
          catch: () => new S2sKeyError({ message: `${path} is not a PEM public key` })
        })
      )
    )
  ).pipe(Effect.map((entries) => new Map<string, KeyObject>(entries)))

/** The relay's Ed25519 private key, when configured. */
export const loadPrivateKey = (path: Option.Option<string>) =>
  Option.match(path, {
    onNone: () => Effect.succeed(Option.none<KeyObject>()),
    onSome: (file) =>
      readKeyFile(file, "the relay's S2S private key").pipe(
        Effect.flatMap((pem) =>
          Effect.try({
            try: () => Option.some(privateKeyFromPem(pem)),
            catch: () => new S2sKeyError({ message: `${file} is not a PEM private key` })
          })
        )
      )
  })
