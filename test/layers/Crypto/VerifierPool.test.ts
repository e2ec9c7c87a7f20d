import { describe, expect } from "bun:test"
import { generateKeyPairSync, sign, constants } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { makeInlineVerifier, SignatureVerifier } from "../../../layers/Crypto/SignatureVerifier.ts"
import {
  makeVerifierPool,
  SignatureVerifierFor,
  type VerifierPoolOptions
} from "../../../layers/Crypto/VerifierPool.ts"
import { it } from "../../support/effect.ts"

const scheme = { hash: "sha256", saltLength: 32 }
const inline = makeInlineVerifier(scheme)

const makeKey = () => {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const spki = new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" }))
  const signText = (text: string) =>
    sign("sha256", Buffer.from(text), {
      key: pair.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32
    }).toString("base64")
  return { spki, signText }
}
const alice = makeKey()
const bob = makeKey()

/** A pool for one test, closed when the test's scope ends; crash reports are collected. */
const poolFor = (options: Partial<VerifierPoolOptions> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const crashes: Array<string> = []
      const pool = makeVerifierPool({
        scheme,
        threads: 1,
        maxInFlight: 1000,
        onCrash: (message) => void crashes.push(message),
        ...options
      })
      return { pool, crashes }
    }),
    ({ pool }) => Effect.sync(pool.close)
  )

const crashingWorker = new URL("./crashing-verifier-worker.ts", import.meta.url)

describe("VerifierPool (RSA-PSS checks on Bun Workers)", () => {
  it.live("answers every check as the inline verifier does, over several batches and workers", () =>
    Effect.gen(function* () {
      const { pool } = yield* poolFor({ threads: 2, maxBatch: 4 })
      const checks: Array<[Uint8Array, string, string]> = []
      for (let i = 0; i < 6; i++) {
        const text = `{"type":"public_chat","message":"é ${i} \\n"}${i}`
        checks.push([alice.spki, text, alice.signText(text)])
        checks.push([bob.spki, text, bob.signText(text)])
        checks.push([alice.spki, `${text}!`, alice.signText(text)]) // text changed
        checks.push([bob.spki, text, alice.signText(text)]) // another key's signature
      }
      checks.push([alice.spki, "x", "not base64 at all"])
      checks.push([new Uint8Array([1, 2, 3]), "x", alice.signText("x")]) // not a key
      const answers = checks.map(([spki, text, signature]) => pool.verify(spki, text, signature))
      expect(answers.every((a) => a instanceof Promise)).toBe(true)
      const results = yield* Effect.promise(() => Promise.all(answers))
      expect(results).toEqual(checks.map(([spki, text, signature]) => inline.verify(spki, text, signature)))
      expect(results.filter(Boolean)).toHaveLength(12)
      expect(pool.inFlight()).toBe(0)
    })
  )

  it.live("past maxInFlight, a check runs inline and answers at once", () =>
    Effect.gen(function* () {
      const { pool } = yield* poolFor({ maxInFlight: 2 })
      const text = "bounded"
      const signature = alice.signText(text)
      const answers = [1, 2, 3].map(() => pool.verify(alice.spki, text, signature))
      expect(answers[0]).toBeInstanceOf(Promise)
      expect(answers[1]).toBeInstanceOf(Promise)
      expect(answers[2]).toBe(true)
      expect(yield* Effect.promise(() => Promise.all(answers))).toEqual([true, true, true])
    })
  )

  it.live("a worker that dies is reported and replaced, and its checks are answered once, none lost", () =>
    Effect.gen(function* () {
      const directory = mkdtempSync(join(tmpdir(), "verifier-crash-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(directory, { recursive: true, force: true })))
      const { pool, crashes } = yield* poolFor({ workerUrl: crashingWorker })
      const texts = Array.from({ length: 8 }, (_, i) => (i === 3 ? `crash-once:${join(directory, "m")} ${i}` : `${i}`))
      const answers = texts.map((text, i) =>
        pool.verify(alice.spki, text, i === 5 ? bob.signText(text) : alice.signText(text))
      )
      const results = yield* Effect.promise(() => Promise.all(answers))
      expect(results).toEqual(texts.map((_, i) => i !== 5))
      expect(pool.restarts()).toBe(1)
      expect(crashes).toHaveLength(1)
      expect(crashes[0]).toContain("signature worker died (error: crashed for the test)")
      expect(crashes[0]).toContain("sent 8 unanswered check(s) again")
      // Answered exactly once: a second answer would take the count below zero.
      expect(pool.inFlight()).toBe(0)
      const after = pool.verify(alice.spki, "after", alice.signText("after"))
      expect(yield* Effect.promise(async () => after)).toBe(true)
    })
  )

  it.live("a batch that kills every worker is refused after maxAttempts, and the pool carries on", () =>
    Effect.gen(function* () {
      const { pool, crashes } = yield* poolFor({ workerUrl: crashingWorker, maxAttempts: 2 })
      const poison = pool.verify(alice.spki, "crash-always ", alice.signText("crash-always "))
      const neighbour = pool.verify(alice.spki, "same batch", alice.signText("same batch"))
      expect(yield* Effect.promise(() => Promise.all([poison, neighbour]))).toEqual([false, false])
      expect(crashes).toHaveLength(2)
      expect(crashes[1]).toContain("2 refused after 2 workers died on them")
      const after = pool.verify(bob.spki, "next", bob.signText("next"))
      expect(yield* Effect.promise(async () => after)).toBe(true)
      expect(pool.inFlight()).toBe(0)
    })
  )

  it.live("closing answers what is in flight with false; later checks run inline", () =>
    Effect.gen(function* () {
      const { pool } = yield* poolFor()
      const pending = pool.verify(alice.spki, "late", alice.signText("late"))
      pool.close()
      expect(yield* Effect.promise(async () => pending)).toBe(false)
      expect(pool.verify(alice.spki, "late", alice.signText("late"))).toBe(true)
      expect(pool.inFlight()).toBe(0)
    })
  )

  it.live("SignatureVerifierFor: 0 threads is inline, more is a pool for the layer's lifetime", () =>
    Effect.gen(function* () {
      const inlineService = yield* Effect.provide(SignatureVerifier, SignatureVerifierFor(scheme, 0))
      expect(inlineService.threads).toBe(0)
      expect(inlineService.verify(alice.spki, "a", alice.signText("a"))).toBe(true)
      const pooled = yield* Effect.scoped(
        Effect.gen(function* () {
          const service = yield* SignatureVerifier
          const answer = service.verify(bob.spki, "b", bob.signText("b"))
          expect(service.threads).toBe(2)
          return yield* Effect.promise(async () => answer)
        }).pipe(Effect.provide(SignatureVerifierFor(scheme, 2)))
      )
      expect(pooled).toBe(true)
    })
  )
})
