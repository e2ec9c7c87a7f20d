import { createHmac, timingSafeEqual } from "node:crypto"
import { Clock, Deferred, Duration, Effect, Exit, Layer, Option } from "effect"
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
  /** The account as the answer handed out (always Some), built once per entry. */
  readonly found: Option.Option<Account>
  readonly expiresAt: number
  /** The stored hash the code was verified against, when the store tells it (`storedCredential`). */
  readonly codeHash: string | undefined
}

/** What one verification (or recheck) found: the account, and the stored hash it stands on. */
interface Found {
  readonly account: Option.Option<Account>
  readonly codeHash: string | undefined
}

/**
 * Remembers successful authentications for a short TTL so reconnect storms don't pay argon2 per
 * login. The cache keeps an HMAC of the code under a per-process random key (never the code), is
 * cleared for a name on regenerate/setEnabled here, and only remembers successes: a wrong code
 * always goes to the store. Changes made by another process show up after at most `ttl`. Concurrent logins
 * with one name and code share one verification, so a burst after the TTL passes pays argon2 once, not per login.
 * When the store tells its stored hash (`storedCredential`), an entry past its TTL whose code was verified
 * against the hash still stored is renewed from the store's current account without argon2: the same
 * code against the same hash would verify again. A changed hash (or no row) verifies afresh.
 */
export const cacheAuthentications = (store: AccountStore["Type"], options: AuthCacheOptions) =>
  // The hit on the spot reads the clock the cache was made with (TestClock in tests), as no Effect runs it.
  Effect.map(Effect.clock, (clock) => {
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

    const storedCredential = store.storedCredential
    /** Argon2 through the store; the stored hash is read first, so a change meanwhile only ever makes a later recheck fail. */
    const verify = (name: string, accessCode: string): Effect.Effect<Found, StorageError> =>
      storedCredential
        ? Effect.flatMap(storedCredential(name), (before) =>
            Effect.map(store.authenticate(name, accessCode), (account) => ({
              account,
              codeHash: Option.getOrUndefined(Option.map(before, (stored) => stored.codeHash))
            }))
          )
        : Effect.map(store.authenticate(name, accessCode), (account) => ({ account, codeHash: undefined }))
    /**
     * After the TTL, a code verified against a hash that is still the stored one would verify again
     * (same code, same hash), so the store's current account is the answer without argon2; else verify.
     */
    const recheck = (name: string, accessCode: string, expired: Verified | undefined) =>
      expired?.codeHash === undefined || !storedCredential
        ? verify(name, accessCode)
        : Effect.flatMap(storedCredential(name), (now) =>
            Option.isSome(now) && now.value.codeHash === expired.codeHash
              ? Effect.succeed<Found>({ account: Option.some(now.value.account), codeHash: expired.codeHash })
              : verify(name, accessCode)
          )

    /** A miss: join a verification under way for the same code, or run one and remember a success. */
    const lookUp = (name: string, accessCode: string, digest: Buffer, now: number, expired: Verified | undefined) =>
      Effect.gen(function* () {
        const joined = inFlight.get(name)
        if (joined && timingSafeEqual(joined.digest, digest)) return yield* Deferred.await(joined.answer)
        const flight: InFlight = { digest, answer: yield* Deferred.make<Option.Option<Account>, StorageError>() }
        inFlight.set(name, flight)
        const changesBefore = changes
        // Uninterruptible: logins waiting on this verification must get its answer even if this one gives up.
        const exit = yield* Effect.exit(Effect.uninterruptible(recheck(name, accessCode, expired)))
        if (inFlight.get(name) === flight) inFlight.delete(name)
        const answer = Exit.map(exit, (found) => found.account)
        yield* Deferred.done(flight.answer, answer)
        if (exit._tag === "Success" && Option.isSome(exit.value.account) && changes === changesBefore) {
          verified.delete(name)
          verified.set(name, {
            digest,
            found: exit.value.account,
            expiresAt: now + ttl,
            codeHash: exit.value.codeHash
          })
          if (verified.size > maxEntries) verified.delete(verified.keys().next().value!)
        }
        return yield* answer
      })

    const cached: AccountStore["Type"] = {
      // The hit path builds no generator and no new Option: a steady login stream lands here.
      authenticate: (name, accessCode) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const digest = digestOf(accessCode)
          const hit = verified.get(name)
          const sameCode = hit !== undefined && timingSafeEqual(hit.digest, digest)
          if (sameCode && hit.expiresAt > now) return Effect.succeed(hit.found)
          return lookUp(name, accessCode, digest, now, sameCode ? hit : undefined)
        }),
      // The same hit without an Effect; anything else (a miss, an expired entry, another code) is authenticate's.
      authenticateNow: (name, accessCode) => {
        const digest = digestOf(accessCode)
        const hit = verified.get(name)
        const sameCode = hit !== undefined && timingSafeEqual(hit.digest, digest)
        return sameCode && hit.expiresAt > clock.unsafeCurrentTimeMillis() ? hit.found : undefined
      },
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
