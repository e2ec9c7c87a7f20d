import { Effect, Layer } from "effect"

type Algorithm = Parameters<typeof Bun.password.hash>[1]

const make = (algorithm: Algorithm) => {
  const hash = (accessCode: string) => Effect.promise(() => Bun.password.hash(accessCode, algorithm))
  // Verifying against this when an account does not exist keeps "no such account" as slow as "wrong code".
  const decoy = Bun.password.hashSync("decoy access code", algorithm)
  const verify = (accessCode: string, storedHash: string | undefined) =>
    // tryPromise, not promise: a malformed stored hash makes verify reject, and that must read as "no match".
    Effect.tryPromise(() => Bun.password.verify(accessCode, storedHash ?? decoy)).pipe(
      Effect.map((ok) => ok && storedHash !== undefined),
      Effect.orElseSucceed(() => false)
    )
  return { hash, verify } as const
}

/** Hashes and verifies access codes with Bun.password (argon2id; constant-time comparison inside). */
export class AccessCodeHasher extends Effect.Service<AccessCodeHasher>()("switchboard/AccessCodeHasher", {
  sync: () => make({ algorithm: "argon2id" })
}) {
  /** Cheap bcrypt (cost 4) for tests: same API and behaviour, milliseconds instead of tens of them. */
  static readonly Fast = Layer.sync(AccessCodeHasher, () =>
    AccessCodeHasher.make(make({ algorithm: "bcrypt", cost: 4 }))
  )
}
