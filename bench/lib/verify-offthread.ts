/**
 * Issue 9: can the RSA-PSS check leave the event loop? Main-thread CPU (this thread's schedstat)
 * and process CPU per verification, and wall throughput, of (a) synchronous node:crypto verify (the
 * inline verifier), (b) node:crypto verify with a callback, (c) the server's worker pool
 * (layers/Crypto/VerifierPool.ts: Bun Workers fed one batch per event-loop turn), (d) WebCrypto.
 * `npx bun run bench/lib/verify-offthread.ts [verifications]`
 */
import { constants, createPublicKey, verify } from "node:crypto"
import { readFileSync } from "node:fs"
import { makeVerifierPool } from "../../layers/Crypto/VerifierPool.ts"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { importPublicPem, type PublicKeyInfo, signedText } from "../../src/neighbourhood/Crypto.ts"
import { neighbourhoodPss } from "../../src/neighbourhood/Verify.ts"
import type { SignedData } from "../../src/neighbourhood/Wire.ts"

const COUNT = Number(process.argv[2] ?? 20_000)
const DISTINCT = 200

/** ns of CPU this (main) thread has used. */
const threadNs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0])
const processUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

const client = await NeighbourhoodClient.generate()
const keyInfo = (await importPublicPem(client.publicPem)) as PublicKeyInfo
const frames = await Promise.all(
  Array.from({ length: DISTINCT }, (_, q) => client.publicChat(`b 0 ${q} `.padEnd(64, "x")))
)
const parsed = frames.map((f) => JSON.parse(f) as SignedData & { data: string })
const keyObject = createPublicKey({ key: Buffer.from(keyInfo.spki), format: "der", type: "spki" })
const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
const textOf = (i: number) => {
  const f = parsed[i % DISTINCT]!
  return signedText(f.data, f.counter)
}
const signatureOf = (i: number) => parsed[i % DISTINCT]!.signature

const report = async (label: string, run: () => Promise<number> | number) => {
  const thread0 = threadNs()
  const process0 = processUs()
  const wall0 = performance.now()
  const valid = await run()
  const wall = performance.now() - wall0
  const thread = (threadNs() - thread0) / 1000
  const cpu = processUs() - process0
  if (valid !== COUNT) throw new Error(`${label}: ${valid} of ${COUNT} valid`)
  const rate = ((COUNT / wall) * 1000).toFixed(0)
  console.log(
    `${label.padEnd(44)} main ${(thread / COUNT).toFixed(2).padStart(6)} µs  process ${(cpu / COUNT).toFixed(2).padStart(6)} µs  ${rate.padStart(7)}/s wall`
  )
}

const syncVerify = () => {
  let valid = 0
  for (let i = 0; i < COUNT; i++) {
    const ok = verify(
      "sha256",
      Buffer.from(textOf(i)),
      { key: keyObject, ...pss },
      Buffer.from(signatureOf(i), "base64")
    )
    if (ok) valid++
  }
  return valid
}

/** `inFlight` checks at a time through node:crypto's callback form (Bun runs it on its thread pool). */
const callbackVerify = (inFlight: number) =>
  new Promise<number>((resolve) => {
    let started = 0
    let done = 0
    let valid = 0
    const start = () => {
      const i = started++
      verify(
        "sha256",
        Buffer.from(textOf(i)),
        { key: keyObject, ...pss },
        Buffer.from(signatureOf(i), "base64"),
        (error, ok) => {
          if (!error && ok) valid++
          if (++done === COUNT) resolve(valid)
          else if (started < COUNT) start()
        }
      )
    }
    for (let i = 0; i < Math.min(inFlight, COUNT); i++) start()
  })

/** WebCrypto, `inFlight` at a time. */
const subtleVerify = (inFlight: number) =>
  new Promise<number>((resolve) => {
    let started = 0
    let done = 0
    let valid = 0
    const encoder = new TextEncoder()
    const start = () => {
      const i = started++
      void crypto.subtle
        .verify(
          { name: "RSA-PSS", saltLength: 32 },
          keyInfo.verifyKey,
          Buffer.from(signatureOf(i), "base64"),
          encoder.encode(textOf(i))
        )
        .then((ok) => {
          if (ok) valid++
          if (++done === COUNT) resolve(valid)
          else if (started < COUNT) start()
        })
    }
    for (let i = 0; i < Math.min(inFlight, COUNT); i++) start()
  })

/** The server's pool: `perTurn` checks asked for per event-loop turn. */
const poolVerify = async (threads: number, perTurn: number) => {
  const pool = makeVerifierPool({ scheme: neighbourhoodPss, threads, maxInFlight: 1_000_000, onCrash: console.error })
  await pool.verify(keyInfo.spki, textOf(0), signatureOf(0)) // workers up and warm
  await report(`(c) pool x${threads}, ${perTurn} checks per turn`, async () => {
    const answers: Array<boolean | Promise<boolean>> = []
    for (let i = 0; i < COUNT; i++) {
      answers.push(pool.verify(keyInfo.spki, textOf(i), signatureOf(i)))
      if ((i + 1) % perTurn === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    return (await Promise.all(answers)).filter(Boolean).length
  })
  pool.close()
}

const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
console.log(`${COUNT} RSA-2048 PSS verifications of 570 B public chats; load ${load}`)
await report("warm-up (sync)", syncVerify)
await report("(a) sync node:crypto verify", syncVerify)
await report("(b) node:crypto verify(cb), 1 in flight", () => callbackVerify(1))
await report("(b) node:crypto verify(cb), 64 in flight", () => callbackVerify(64))
await report("(d) WebCrypto subtle.verify, 1 in flight", () => subtleVerify(1))
await report("(d) WebCrypto subtle.verify, 64 in flight", () => subtleVerify(64))
for (const perTurn of [1, 8, 32, 64]) await poolVerify(1, perTurn)
await poolVerify(2, 32)
await report("(a) sync node:crypto verify, again", syncVerify)
process.exit(0)
