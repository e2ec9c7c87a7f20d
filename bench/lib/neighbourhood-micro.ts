/**
 * CPU per step of a client's public chat on its home server, each step alone over many
 * iterations (the bench's 570 B frames, 64-character messages): parse, decode, verify (and its
 * parts), counters, the outgoing frame, and the whole protocol handler on a connection double whose
 * publish does nothing. A profiling aid for issue 9, not a scenario:
 * `npx bun run bench/lib/neighbourhood-micro.ts [iterations]`.
 * For instruction counts, `--count handler|verify N` only runs N pre-signed public chats (cached in
 * the temp directory) through the handler, or only their RSA checks; under
 * `valgrind --tool=callgrind`, the difference between N and 0 over N is the cost per message.
 * `--count timed N`: N passes of all cached public chats through a fresh handler, timed.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { constants, createPublicKey, verify } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Either, Layer, Logger, LogLevel } from "effect"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { NeighbourhoodConfig } from "../../src/neighbourhood/Config.ts"
import { Counters, RecentSet } from "../../src/neighbourhood/Counters.ts"
import {
  importPublicPem,
  isBase64,
  type PublicKeyInfo,
  pssSaltLength,
  signedText,
  verifyData
} from "../../src/neighbourhood/Crypto.ts"
import { Mesh } from "../../src/neighbourhood/Mesh.ts"
import type { NeighbourhoodContext } from "../../src/neighbourhood/NeighbourFrames.ts"
import { makeNeighbourhoodProtocol } from "../../src/neighbourhood/Protocol.ts"
import { verifySigned } from "../../src/neighbourhood/Verify.ts"
import { encodeSignedData, openSignedData, parseFrame, type SignedData } from "../../src/neighbourhood/Wire.ts"

const countMode = process.argv[2] === "--count" ? { what: process.argv[3], n: Number(process.argv[4] ?? 0) } : undefined
const ITERATIONS = countMode ? 0 : Number(process.argv[2] ?? 20_000)
const DISTINCT = 500

const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

let sink: unknown
/** µs of CPU per call of `step(i)`, after a warm-up of the same size. */
const measure = (label: string, step: (i: number) => unknown, iterations = ITERATIONS) => {
  for (let i = 0; i < iterations; i++) sink = step(i)
  const before = cpuUs()
  for (let i = 0; i < iterations; i++) sink = step(i)
  const us = (cpuUs() - before) / iterations
  console.log(`${label.padEnd(52)} ${us.toFixed(3).padStart(8)} µs`)
  return us
}

const text = (seq: number) => `b 0 ${seq} `.padEnd(64, "x")

/** A hello and `count` public chats of one client with rising counters, signed once and kept in the temp directory. */
const signedFrames = async (count: number): Promise<{ hello: string; chats: Array<string> }> => {
  const path = join(tmpdir(), `neighbourhood-micro-${count}.json`)
  if (existsSync(path)) return JSON.parse(readFileSync(path, "utf8"))
  const client = await NeighbourhoodClient.generate()
  const hello = await client.hello()
  const chats = await Promise.all(Array.from({ length: count }, (_, q) => client.publicChat(text(q))))
  writeFileSync(path, JSON.stringify({ hello, chats }))
  return { hello, chats }
}

const connection: Connection<undefined> = {
  id: 1,
  data: undefined,
  remoteAddress: "127.0.0.1",
  send: () => "sent",
  publish: (_topic: string, _message: WireMessage) => {},
  publishToAll: () => {},
  subscribe: () => {},
  unsubscribe: () => {},
  isSubscribed: () => true,
  close: () => {},
  isOpen: () => true
}

/** The protocol handler of one connection after `hello`, on a context whose metrics and logs do nothing. */
const handlerAfter = (hello: string) =>
  Effect.gen(function* () {
    const rooms = yield* Rooms
    const config = yield* Effect.withConfigProvider(
      NeighbourhoodConfig,
      ConfigProvider.fromJson({
        neighbourhood: {
          port: 1,
          address: "s0",
          files: { backend: "memory" },
          limits: { messagesPerSecond: 1_000_000_000, messageBurst: 1_000_000_000 }
        }
      })
    )
    const ctx: NeighbourhoodContext = {
      config,
      mesh: new Mesh(config.address, [], [], 1000),
      counters: new Counters(1000),
      sharedCounters: undefined,
      relayed: new RecentSet(1000),
      rooms,
      room: "bench",
      refused: (reason) => {
        throw new Error(`refused: ${reason}`)
      },
      routed: () => {},
      linkOpened: () => {},
      clientsChanged: () => {},
      flushClientUpdate: () => {},
      clientListsChanged: () => {},
      signedServerHello: Effect.die("the micro-benchmark has no neighbours"),
      admitConnection: () => true,
      warn: (m) => console.log(m),
      defect: (e) => console.log(e)
    }
    const handler = yield* makeNeighbourhoodProtocol(ctx).open(connection)
    yield* handler.onMessage(hello, connection) ?? Effect.void
    return (frame: string) => {
      if (handler.onMessage(frame, connection)) throw new Error("the public chat did not finish synchronously")
    }
  })

const layer = Layer.mergeAll(InProcessRoomsLive, Logger.minimumLogLevel(LogLevel.Warning))
const withHandler = (hello: string, use: (handle: (frame: string) => void) => void) =>
  Effect.runPromise(handlerAfter(hello).pipe(Effect.map(use), Effect.scoped, Effect.provide(layer)))

if (countMode) {
  const { hello, chats } = await signedFrames(4000)
  const n = Math.min(countMode.n, chats.length)
  if (countMode.what === "timed") {
    // Passes over the cached frames, each on a fresh handler (fresh counters): CPU µs per message of each pass.
    for (let pass = 0; pass < n; pass++) {
      await withHandler(hello, (handle) => {
        const before = cpuUs()
        for (const chat of chats) handle(chat)
        console.log(`pass ${pass + 1}: ${((cpuUs() - before) / chats.length).toFixed(2)} µs per public chat`)
      })
    }
  } else if (countMode.what === "handler") {
    await withHandler(hello, (handle) => {
      for (let i = 0; i < n; i++) handle(chats[i]!)
    })
  } else {
    const key = (await importPublicPem(JSON.parse(JSON.parse(hello).data).public_key)) as PublicKeyInfo
    await withHandler(hello, () => {
      for (let i = 0; i < n; i++) {
        const f = JSON.parse(chats[i]!) as SignedData
        if (!verifySigned(key, f.data as string, f.counter, f.signature)) throw new Error("bad signature")
      }
    })
  }
  process.exit(0)
}

const client = await NeighbourhoodClient.generate()
const keyInfo = (await importPublicPem(client.publicPem)) as PublicKeyInfo
const frames = await Promise.all(Array.from({ length: DISTINCT }, (_, q) => client.publicChat(text(q))))
const frameOf = (i: number) => frames[i % DISTINCT]!
console.log(`frame: ${frames[0]!.length} characters; ${ITERATIONS} iterations per step`)

const parsed = frames.map((f) => Either.getOrThrow(parseFrame(f)) as SignedData)
const opened = parsed.map((f) => Either.getOrThrow(openSignedData(f)))
const keyObject = createPublicKey({ key: Buffer.from(keyInfo.spki), format: "der", type: "spki" })
const signatures = parsed.map((f) => Buffer.from(f.signature, "base64"))
const signedBytes = parsed.map((f) => Buffer.from(signedText(f.data as string, f.counter)))

console.log("-- parse and decode")
measure("JSON.parse(frame)", (i) => JSON.parse(frameOf(i)))
measure("parseFrame (depth check, JSON.parse, fast decode)", (i) => parseFrame(frameOf(i)))
measure("JSON.parse(data)", (i) => JSON.parse(parsed[i % DISTINCT]!.data as string))
measure("openSignedData (depth check, JSON.parse, fast decode)", (i) => openSignedData(parsed[i % DISTINCT]!))

console.log("-- signature check")
const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pssSaltLength }
const verifyIterations = Math.max(1000, ITERATIONS / 4)
measure("isBase64(signature)", (i) => isBase64(parsed[i % DISTINCT]!.signature))
measure("Buffer.from(signature, base64)", (i) => Buffer.from(parsed[i % DISTINCT]!.signature, "base64"))
measure("Buffer.from(data + counter)", (i) => {
  const f = parsed[i % DISTINCT]!
  return Buffer.from(signedText(f.data as string, f.counter))
})
measure(
  "crypto.verify, inputs ready, KeyObject reused",
  (i) => verify("sha256", signedBytes[i % DISTINCT]!, { key: keyObject, ...pss }, signatures[i % DISTINCT]!),
  verifyIterations
)
measure(
  "crypto.verify, key as DER each time",
  (i) =>
    verify(
      "sha256",
      signedBytes[i % DISTINCT]!,
      { key: Buffer.from(keyInfo.spki), format: "der", type: "spki", ...pss },
      signatures[i % DISTINCT]!
    ),
  verifyIterations
)
measure(
  "verifySigned (the server's, all of the above)",
  (i) => {
    const f = parsed[i % DISTINCT]!
    return verifySigned(keyInfo, f.data as string, f.counter, f.signature)
  },
  verifyIterations
)
{
  const before = cpuUs()
  const count = verifyIterations
  await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const f = parsed[i % DISTINCT]!
      return verifyData(keyInfo.verifyKey, f.data as string, f.counter, f.signature)
    })
  )
  const us = (cpuUs() - before) / count
  console.log(`${"WebCrypto verify, all in flight (CPU of every thread)".padEnd(52)} ${us.toFixed(3).padStart(8)} µs`)
}

console.log("-- routing")
const counters = new Counters(100_000)
let counter = 0
measure("counters.fresh + commit", () => {
  counter++
  return counters.fresh("k", counter) && counters.commit("k", counter)
})
measure("encodeSignedData (the outgoing frame)", (i) => {
  const f = parsed[i % DISTINCT]!
  return encodeSignedData(opened[i % DISTINCT]!.dataText, f.counter, f.signature)
})

console.log("-- the whole handler (publish does nothing)")
{
  const count = verifyIterations
  const { hello, chats } = await signedFrames(4000)
  await withHandler(hello, (handle) => {
    const half = Math.min(count, chats.length / 2)
    for (let i = 0; i < half; i++) handle(chats[i]!)
    const before = cpuUs()
    for (let i = half; i < 2 * half; i++) handle(chats[i]!)
    console.log(`${"onMessage, public chat".padEnd(52)} ${((cpuUs() - before) / half).toFixed(3).padStart(8)} µs`)
  })
}
if (sink === Symbol.for("never")) console.log(sink)
