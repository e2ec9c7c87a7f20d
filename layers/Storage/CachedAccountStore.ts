import { createHmac, timingSafeEqual } from "node:crypto"
import { Clock, Deferred, Duration, Effect, Layer, Option } from "effect"
import type { Account, StorageError } from "../../src/storage/Account.ts"
import { AccountStore } from "./AccountStore.ts"

export interface AuthCacheOptions {
  /** How long a verified name + code is trusted without hashing again. */
  readonly ttl: Duration.DurationInput
  /** Most names remembered; the oldest go first. */
  readonly maxEntries?: number
}

/** A verification under way: logins with the same name and code wait for it instead of hashing too. */
interface InFlight {
  readonly digest: Buffer
  readonly answer: Deferred.Deferred<Option.Option<Account>, StorageError>
}

interface Verified {
  readonly digest: Buffer
  readonly account: Account
  readonly expiresAt: number
}

/**
 * Remembers successful authentications for a short TTL so reconnect storms don't pay argon2 per
 * login. The cache keeps an HMAC of the code under a per-process random key (never the code), is
 * cleared for a name on regenerate/setEnabled here, and only remembers successes: a wrong code
 * always goes to the store. Changes made by another process show up after at most `ttl`. Concurrent logins
 * with one name and code share one verification, so a burst after the TTL passes pays argon2 once, not per login.
 */
export const cacheAuthentications = (store: AccountStore["Type"], options: AuthCacheOptions) =>
  Effect.sync(() => {
    const ttl = Duration.toMillis(options.ttl)
    const maxEntries = options.maxEntries ?? 10_000
    const hmacKey = crypto.getRandomValues(new Uint8Array(32))
    const verified = new Map<string, Verified>()
    const inFlight = new Map<string, InFlight>()
    // Bumped by every change: a lookup that raced with one must not cache what it saw before it.
    let changes = 0
    const digestOf = (accessCode: string) => createHmac("sha256", hmacKey).update(accessCode).digest()
    const forget = (name: string) =>
      Effect.sync(() => {
        changes++
        verified.delete(name)
        inFlight.delete(name)
      })

    const cached: AccountStore["Type"] = {
      authenticate: (name, accessCode) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const digest = digestOf(accessCode)
          const hit = verified.get(name)
          if (hit && hit.expiresAt > now && timingSafeEqual(hit.digest, digest)) return Option.some(hit.account)
          const joined = inFlight.get(name)
          if (joined && timingSafeEqual(joined.digest, digest)) return yield* Deferred.await(joined.answer)
          const flight: InFlight = { digest, answer: yield* Deferred.make<Option.Option<Account>, StorageError>() }
          inFlight.set(name, flight)
          const changesBefore = changes
          // Uninterruptible: logins waiting on this verification must get its answer even if this one gives up.
          const exit = yield* Effect.exit(Effect.uninterruptible(store.authenticate(name, accessCode)))
          if (inFlight.get(name) === flight) inFlight.delete(name)
          yield* Deferred.done(flight.answer, exit)
          if (exit._tag === "Success" && Option.isSome(exit.value) && changes === changesBefore) {
            verified.delete(name)
            verified.set(name, { digest, account: exit.value.value, expiresAt: now + ttl })
            if (verified.size > maxEntries) verified.delete(verified.keys().next().value!)
          }
          return yield* exit
        }),
      findByName: store.findByName,
      list: store.list,
      create: store.create,
      regenerateAccessCode: (name) => Effect.ensuring(store.regenerateAccessCode(name), forget(name)),
      setEnabled: (name, enabled) => Effect.ensuring(store.setEnabled(name, enabled), forget(name))
    }
    return cached
  })

/** Wraps the AccountStore below it with the authentication cache. */
export const CachedAccountStore = (options: AuthCacheOptions) =>
  Layer.effect(
    AccountStore,
    Effect.flatMap(AccountStore, (store) => cacheAuthentications(store, options))
  )
