/**
 * Issue 9: can the RSA-PSS check leave the event loop? Main-thread CPU (this thread's schedstat)
 * and process CPU per verification, and wall throughput, of (a) synchronous node:crypto verify (the
 * server's), (b) node:crypto verify with a callback, (c) Bun Workers fed one batch per event-loop
 * turn (as the pool built for issue 9 did: commit ebd3939, reverted; docs/benchmarks.md), (d) WebCrypto.
 * `npx bun run bench/lib/verify-offthread.ts [verifications]`
 */
import { constants, createPublicKey, verify } from "node:crypto"
import { readFileSync } from "node:fs"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { importPublicPem, type PublicKeyInfo, signedText } from "../../src/neighbourhood/Crypto.ts"
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

/** `threads` Bun Workers; `perTurn` checks asked for per event-loop turn, sent at the turn's end to the least busy worker. */
const workerVerify = async (threads: number, perTurn: number) => {
  const spki = Buffer.from(keyInfo.spki).toString("base64")
  const workers = Array.from({ length: threads }, () => ({
    worker: new Worker(new URL("./verify-offthread-worker.ts", import.meta.url)),
    waiting: new Map<number, (results: Uint8Array) => void>(),
    queued: 0
  }))
  for (const w of workers)
    w.worker.onmessage = (event: MessageEvent<{ seq: number; results: Uint8Array }>) => {
      w.queued -= event.data.results.length
      w.waiting.get(event.data.seq)!(event.data.results)
      w.waiting.delete(event.data.seq)
    }
  let seq = 0
  const send = (items: string, count: number) => {
    let w = workers[0]!
    for (const other of workers) if (other.queued < w.queued) w = other
    w.queued += count
    const id = seq++
    w.worker.postMessage({ seq: id, key: spki, items, count })
    return new Promise<Uint8Array>((resolve) => w.waiting.set(id, resolve))
  }
  await Promise.all(
    workers.map(() => send(`${textOf(0).length} ${signatureOf(0).length}\n${textOf(0)}${signatureOf(0)}`, 1))
  )
  await report(`(c) worker x${threads}, ${perTurn} checks per turn`, async () => {
    const batches: Array<Promise<Uint8Array>> = []
    for (let i = 0; i < COUNT; i += perTurn) {
      const parts: Array<string> = []
      const end = Math.min(COUNT, i + perTurn)
      for (let j = i; j < end; j++)
        parts.push(`${textOf(j).length} ${signatureOf(j).length}\n`, textOf(j), signatureOf(j))
      await new Promise((resolve) => setImmediate(resolve))
      batches.push(send(parts.join(""), end - i))
    }
    return (await Promise.all(batches)).reduce((sum, results) => sum + results.reduce((a, b) => a + b, 0), 0)
  })
  for (const w of workers) w.worker.terminate()
}

const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
console.log(`${COUNT} RSA-2048 PSS verifications of 570 B public chats; load ${load}`)
await report("warm-up (sync)", syncVerify)
await report("(a) sync node:crypto verify", syncVerify)
await report("(b) node:crypto verify(cb), 1 in flight", () => callbackVerify(1))
await report("(b) node:crypto verify(cb), 64 in flight", () => callbackVerify(64))
await report("(d) WebCrypto subtle.verify, 1 in flight", () => subtleVerify(1))
await report("(d) WebCrypto subtle.verify, 64 in flight", () => subtleVerify(64))
for (const perTurn of [1, 8, 32, 64]) await workerVerify(1, perTurn)
await workerVerify(2, 32)
await report("(a) sync node:crypto verify, again", syncVerify)
process.exit(0)
