import type { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import {
  exportPublicPem,
  generateKeyPair,
  importPublicPem,
  type PublicKeyInfo,
  signData,
  verifyData
} from "../../src/neighbourhood/Crypto.ts"
import { verifySigned } from "../../src/neighbourhood/Verify.ts"
import { cpuMicros } from "../lib/proc.ts"
import { type ReceiverPool, startReceivers } from "./neighbourhood-receivers.ts"
import {
  type BenchClient,
  connectClient,
  type RunFigures,
  replay,
  SENDERS,
  waitForClients
} from "./neighbourhood-replay.ts"
import { type RawMode, type ServerProcess, startMesh, startRaw } from "./neighbourhood-servers.ts"

/** The measured cases: public-chat fan-out (one server or a mesh), private-chat routing, raw verification. */

const PAYLOAD = 64
export const payloadBytes = PAYLOAD
const text = (sender: number, seq: number) => `b ${sender} ${seq} `.padEnd(PAYLOAD, "x")
const probeParse = /b (\d+) (\d+) /

/** Bytes of one bench public chat as its sender sends it (the signed_data frame, UTF-8; forwarded alike). */
export const publicChatFrameBytes = async (key: NeighbourhoodClient) =>
  Buffer.byteLength(await key.publicChat(text(0, 0)))

/** The receivers that are not in this process: hellos signed here, sockets in the pool's processes. */
const receiversOn = async (entries: ReadonlyArray<{ key: NeighbourhoodClient; port: number }>, workers: number) =>
  startReceivers(
    await Promise.all(entries.map(async (e) => ({ url: `ws://127.0.0.1:${e.port}/`, hello: await e.key.hello() }))),
    workers
  )

/** Servers, in-process clients and receiver processes of one case, all stopped afterwards. */
const withCase = async <A>(
  start: () => Promise<ReadonlyArray<ServerProcess>>,
  body: (servers: ReadonlyArray<ServerProcess>, clients: Array<BenchClient>, pools: Array<ReceiverPool>) => Promise<A>
) => {
  const servers = await start()
  const clients: Array<BenchClient> = []
  const pools: Array<ReceiverPool> = []
  try {
    return await body(servers, clients, pools)
  } finally {
    for (const c of clients) c.conn.close()
    await Promise.all(pools.map((p) => p.close()))
    await Promise.all(servers.map((s) => s.stop()))
  }
}

/** Who serves a public-chat case: our servers (a mesh of `count`), or the raw Bun floor on the same wire. */
export type PublicServers = { readonly count: number } | { readonly raw: RawMode }

/**
 * Public chat: 100 clients spread over `servers`, 10 of them senders; every message reaches the
 * other 99. Senders and the probe (the last client) are in this process, the rest in receiver processes.
 */
export const publicFanout = (
  keys: ReadonlyArray<NeighbourhoodClient>,
  on: PublicServers,
  perSender: number,
  workers: number
): Promise<RunFigures> => {
  const serverCount = "count" in on ? on.count : 1
  const start = () => ("count" in on ? startMesh(on.count) : startRaw(on.raw))
  return withCase(start, async (servers, clients, pools) => {
    const probe = { onDone: (_s: number, _q: number) => {} }
    const portOf = (i: number) => servers[i % serverCount]!.port
    const probeIndex = keys.length - 1
    for (let i = 0; i < SENDERS; i++) clients.push(await connectClient(portOf(i), keys[i]!))
    const probeClient = await connectClient(portOf(probeIndex), keys[probeIndex]!, (frame) => {
      const m = probeParse.exec(frame)
      if (m) probe.onDone(Number(m[1]), Number(m[2]))
    })
    clients.push(probeClient)
    const others = keys.slice(SENDERS, probeIndex).map((key, j) => ({ key, port: portOf(SENDERS + j) }))
    const pool = await receiversOn(others, workers)
    pools.push(pool)
    await waitForClients(servers[0]!.port, keys.length)
    const senders = clients.slice(0, SENDERS)
    const frames = await Promise.all(
      senders.map((s, i) => Promise.all(Array.from({ length: perSender }, (_, q) => s.client.publicChat(text(i, q)))))
    )
    for (const c of clients) c.received = 0
    return replay({
      senders,
      frames,
      local: clients,
      pool,
      probe,
      deliveriesPerMessage: keys.length - 1,
      serverPids: servers.map((s) => s.pid),
      verificationsPerMessage: "raw" in on && on.raw === "publish" ? 0 : serverCount
    })
  })
}

/** Private chat: 10 senders on s0, 10 receivers on s1; each chat is sealed for the probe and delivered to s1's clients. */
export const privateRouting = (
  keys: ReadonlyArray<NeighbourhoodClient>,
  perSender: number,
  workers: number
): Promise<RunFigures> =>
  withCase(
    () => startMesh(2),
    async (servers, clients, pools) => {
      const probe = { onDone: (_s: number, _q: number) => {} }
      const probeKey = keys[SENDERS]!
      const sentOrder: Array<Map<string, number>> = []
      for (let i = 0; i < SENDERS; i++) clients.push(await connectClient(servers[0]!.port, keys[i]!))
      // The probe tells chats apart by their signature (the plaintext is sealed).
      const probeClient = await connectClient(servers[1]!.port, probeKey, (frame) => {
        const signature = /"signature":"([^"]+)"/.exec(frame)?.[1]
        if (!signature) return
        for (const [s, order] of sentOrder.entries()) {
          const q = order.get(signature)
          if (q !== undefined) return probe.onDone(s, q)
        }
      })
      clients.push(probeClient)
      const others = keys.slice(SENDERS + 1, 2 * SENDERS).map((key) => ({ key, port: servers[1]!.port }))
      const pool = await receiversOn(others, workers)
      pools.push(pool)
      await waitForClients(servers[0]!.port, 2 * SENDERS)
      const senders = clients.slice(0, SENDERS)
      const recipient = [{ pem: probeKey.publicPem, server: "s1" }]
      // Sealed one after another per sender: chat() takes its counter after sealing, so order must be kept here.
      const frames = await Promise.all(
        senders.map(async (s, i) => {
          const list: Array<string> = []
          for (let q = 0; q < perSender; q++) list.push(await s.client.chat(recipient, text(i, q)))
          return list
        })
      )
      for (const list of frames)
        sentOrder.push(new Map(list.map((frame, q) => [JSON.parse(frame).signature as string, q])))
      for (const c of clients) c.received = 0
      return replay({
        senders,
        frames,
        local: [probeClient],
        pool,
        probe,
        deliveriesPerMessage: SENDERS,
        serverPids: servers.map((s) => s.pid),
        verificationsPerMessage: 1
      })
    }
  )

/**
 * Raw RSA-PSS verifications in this process, per CPU-second used: WebCrypto (one at a time, and
 * many in flight on its work pool) and node:crypto's synchronous verify, which the server uses.
 */
export const rawVerify = async (count: number) => {
  const pair = await generateKeyPair()
  const key = (await importPublicPem(await exportPublicPem(pair.publicKey))) as PublicKeyInfo
  const data = text(0, 0)
  const signature = await signData(pair.privateKey, data, 1)
  const measure = async (run: () => Promise<unknown> | unknown) => {
    const cpuBefore = cpuMicros(process.pid)
    const started = performance.now()
    await run()
    return {
      perSec: count / ((performance.now() - started) / 1000),
      perCoreSecond: count / ((cpuMicros(process.pid) - cpuBefore) / 1e6)
    }
  }
  const sequential = await measure(async () => {
    for (let i = 0; i < count; i++) await verifyData(pair.publicKey, data, 1, signature)
  })
  const parallel = await measure(() =>
    Promise.all(Array.from({ length: count }, () => verifyData(pair.publicKey, data, 1, signature)))
  )
  const node = await measure(() => {
    for (let i = 0; i < count; i++) if (!verifySigned(key, data, 1, signature)) throw new Error("verify failed")
  })
  return { sequential, parallel, node }
}
