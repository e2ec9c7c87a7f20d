import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FastCheck as fc } from "effect"
import { freePort, startListening } from "../../bench/lib/servers.ts"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { judgeClose, Lanes } from "../lib/lanes.ts"
import {
  anyString,
  anyValue,
  applyMutation,
  huge,
  invalidUtf8Mutation,
  type Json,
  type Mutation,
  nestingDepth,
  textMutation
} from "../lib/mutate.ts"
import { type Frame, FuzzSocket, Opcode } from "../lib/ws.ts"

/**
 * Neighbourhood / OLAF v1.2 (docs/neighbourhood.md): signed_data (hello, chat, public_chat,
 * server_hello) with broken content, counters that go backwards, bad signatures, and the unsigned
 * frames (client_list_request, client_update, client_update_request, unknown types), as text or
 * binary, on lanes that said hello with a real key and lanes that did not (chat before hello).
 */

/** Placeholders filled in at send time with the lane's own key. */
const OWN_PEM = "$own-pem"
const OWN_FINGERPRINT = "$own-fingerprint"
const SERVER_ADDRESS = "fuzz-server"

type Signature = "valid" | "garbage" | "notBase64" | "empty" | "otherCounter"
type Counter = "next" | "same" | "backwards" | "zero"

type NeighbourhoodItem =
  | {
      readonly kind: "signed"
      readonly content: { readonly [key: string]: Json }
      readonly contentMutation: Mutation
      readonly counter: Counter
      readonly signature: Signature
      readonly envelope: Mutation
      readonly binary: boolean
    }
  | {
      readonly kind: "plain"
      readonly message: { readonly [key: string]: Json }
      readonly mutation: Mutation
      readonly binary: boolean
    }

type NeighbourhoodCase = { readonly helloed: boolean; readonly items: ReadonlyArray<NeighbourhoodItem> }

const base64 = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Buffer.from(bytes).toString("base64"))
const address = fc.oneof({ weight: 4, arbitrary: fc.constant(SERVER_ADDRESS) }, { weight: 1, arbitrary: anyString })

const content: fc.Arbitrary<{ readonly [key: string]: Json }> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant("hello"), public_key: fc.oneof(fc.constant(OWN_PEM), anyString) })
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant("chat"),
      destination_servers: fc.array(address, { minLength: 1, maxLength: 3 }),
      iv: base64,
      symm_keys: fc.array(base64, { minLength: 1, maxLength: 3 }),
      chat: fc.oneof(base64, fc.constant(huge(5_000, "A")))
    })
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant("public_chat"),
      sender: fc.oneof({ weight: 4, arbitrary: fc.constant(OWN_FINGERPRINT) }, { weight: 1, arbitrary: anyString }),
      message: fc.oneof({ weight: 6, arbitrary: anyString as fc.Arbitrary<Json> }, { weight: 1, arbitrary: anyValue })
    })
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("server_hello"), sender: address }) },
  { weight: 1, arbitrary: fc.record({ type: anyString }) }
)

const plain: fc.Arbitrary<{ readonly [key: string]: Json }> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ type: "client_list_request" }) },
  { weight: 1, arbitrary: fc.constant({ type: "client_update_request" }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant("client_update"),
      clients: fc.array(fc.oneof(fc.constant(OWN_PEM), anyString), { maxLength: 3 })
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("client_list"),
      servers: fc.array(fc.record({ address, clients: fc.array(anyString, { maxLength: 2 }) }), { maxLength: 2 })
    })
  },
  { weight: 2, arbitrary: fc.record({ type: fc.oneof(fc.constantFrom("error", "signed_data", "nope"), anyString) }) }
)

const item: fc.Arbitrary<NeighbourhoodItem> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("signed" as const),
      content,
      contentMutation: fc.oneof(
        { weight: 3, arbitrary: fc.constant({ op: "valid" as const }) },
        { weight: 2, arbitrary: textMutation }
      ),
      counter: fc.constantFrom<Counter>("next", "next", "next", "same", "backwards", "zero"),
      signature: fc.constantFrom<Signature>("valid", "valid", "valid", "garbage", "notBase64", "empty", "otherCounter"),
      envelope: fc.oneof(
        { weight: 4, arbitrary: fc.constant({ op: "valid" as const }) },
        { weight: 2, arbitrary: textMutation }
      ),
      binary: fc.constantFrom(false, false, false, false, false, false, false, false, false, true)
    })
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("plain" as const),
      message: plain,
      mutation: fc.oneof({ weight: 12, arbitrary: textMutation }, { weight: 1, arbitrary: invalidUtf8Mutation }),
      binary: fc.constantFrom(false, false, false, false, true)
    })
  }
)

const arbitrary: fc.Arbitrary<NeighbourhoodCase> = fc.record({
  helloed: fc.constantFrom(true, true, true, false),
  items: fc.array(item, { minLength: 1, maxLength: 3 })
})

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** Replies a client may get: errors, client lists, and chats forwarded from other clients. */
const judgeFrames = (frames: ReadonlyArray<Frame>, inputs: ReadonlyArray<string>): Array<Violation> => {
  const violations: Array<Violation> = []
  for (const frame of frames) {
    const text = frame.payload.toString()
    let parsed: any
    try {
      parsed = frame.opcode === Opcode.text ? JSON.parse(text) : undefined
    } catch {}
    if (parsed === null || typeof parsed !== "object") {
      violations.push({
        invariant: "documented-answer",
        detail: `not a JSON text frame: opcode ${frame.opcode} ${text.slice(0, 60)}`
      })
      continue
    }
    if (parsed.type === "client_list" || parsed.type === "signed_data") continue
    if (parsed.type !== "error" || typeof parsed.message !== "string") {
      violations.push({
        invariant: "documented-answer",
        detail: `frame of type ${JSON.stringify(parsed.type)}`.slice(0, 200)
      })
      continue
    }
    if (text.length > MAX_ERROR_REPLY_BYTES || echoes(text, inputs))
      violations.push({ invariant: "no-echo", detail: `error of ${text.length} bytes: ${text.slice(0, 80)}` })
    if (leaksInternals(parsed.message))
      violations.push({ invariant: "no-internals", detail: `error text shows schema internals: ${text.slice(0, 160)}` })
  }
  return violations
}

const startNeighbourhood = async () => {
  const port = freePort()
  const base = join(tmpdir(), `switchboard-fuzz-neighbourhood-${process.pid}-${port}`)
  const config = {
    neighbourhood: {
      port,
      hostname: "127.0.0.1",
      address: SERVER_ADDRESS,
      keyPath: `${base}-key.pem`,
      files: { backend: "memory" },
      // Lanes send as fast as the server answers; the documented per-connection limits stay on, raised.
      limits: {
        messagesPerSecond: 100_000,
        messageBurst: 100_000,
        connectionsPerSecond: 10_000,
        connectionBurst: 10_000
      }
    }
  }
  writeFileSync(`${base}.json`, JSON.stringify(config))
  const proc = await startListening(
    "neighbourhood",
    [process.execPath, join(import.meta.dir, "../../programs/neighbourhood.ts"), "--config", `${base}.json`],
    { LOG_LEVEL: "error" },
    port
  )
  return { proc, url: `ws://127.0.0.1:${port}/` }
}

const LANES = 8

/** The signature of `data` with `counter` by the client's key (its `signed` signs the next counter only). */
const signAs = async (client: NeighbourhoodClient, data: string, counter: number): Promise<string> => {
  const last = client.lastCounter
  client.lastCounter = counter - 1
  const frame = JSON.parse(await client.signed(data)) as { signature: string }
  client.lastCounter = Math.max(last, counter)
  return frame.signature
}

const typeOf = (frame: Frame): unknown => {
  try {
    return (JSON.parse(frame.payload.toString()) as { type?: unknown }).type
  } catch {
    return undefined
  }
}

export const neighbourhood: FuzzProtocol<NeighbourhoodCase> = {
  name: "neighbourhood",
  title: "Neighbourhood (OLAF v1.2) WebSocket",
  arbitrary,
  start: async () => {
    const { proc, url } = await startNeighbourhood()
    const keys = await Promise.all(Array.from({ length: 2 * LANES + 1 }, () => NeighbourhoodClient.generate()))
    const canaryKey = keys[2 * LANES]!
    let sentinel = 0
    /** Sends, then an unknown type carrying a unique id: its error reply ends the case (replies come in order). */
    const exchange = async (socket: FuzzSocket, send: () => Promise<void>) => {
      const id = `sentinel-${++sentinel}`
      await send()
      socket.text(JSON.stringify({ type: id }))
      return socket.until((f) => f.opcode === Opcode.text && f.payload.includes(id), 20_000)
    }
    // A lane is a connection with its own key (lanes 2k said hello, lanes 2k+1 never do).
    const open = async (lane: number) => {
      const socket = await FuzzSocket.open({ url, localAddress: "127.0.0.1" })
      if (!socket.isOpen) throw new Error(`neighbourhood refused a lane: ${JSON.stringify(socket.closed)}`)
      if (lane % 2 === 0) {
        const hello = await keys[lane]!.hello()
        await exchange(socket, async () => socket.text(hello))
      }
      return socket
    }
    const lanes = new Lanes(open)
    const openCanary = async () => {
      const socket = await FuzzSocket.open({ url, localAddress: "127.0.0.2" })
      if (!socket.isOpen) throw new Error(`neighbourhood refused the canary: ${JSON.stringify(socket.closed)}`)
      socket.text(await canaryKey.hello())
      return socket
    }
    let canary = await openCanary()

    const render = async (client: NeighbourhoodClient, testItem: NeighbourhoodItem) => {
      const fill = (text: string) =>
        text
          .replaceAll(JSON.stringify(OWN_PEM), JSON.stringify(client.publicPem))
          .replaceAll(JSON.stringify(OWN_FINGERPRINT), JSON.stringify(client.fingerprint))
      if (testItem.kind === "plain") {
        const { bytes, utf8 } = applyMutation(testItem.message, testItem.mutation)
        return { bytes: utf8 ? encoder.encode(fill(decoder.decode(bytes))) : bytes, utf8, binary: testItem.binary }
      }
      const mutated = applyMutation(testItem.content, testItem.contentMutation)
      const data = fill(decoder.decode(mutated.bytes))
      const counter =
        testItem.counter === "next"
          ? ++client.lastCounter
          : testItem.counter === "same"
            ? client.lastCounter
            : testItem.counter === "backwards"
              ? Math.max(0, client.lastCounter - 3)
              : 0
      const signature =
        testItem.signature === "valid"
          ? await signAs(client, data, counter)
          : testItem.signature === "otherCounter"
            ? await signAs(client, data, counter + 1)
            : testItem.signature === "garbage"
              ? Buffer.from(crypto.getRandomValues(new Uint8Array(256))).toString("base64")
              : testItem.signature === "notBase64"
                ? "*not base64*"
                : ""
      const { bytes, utf8 } = applyMutation({ type: "signed_data", data, counter, signature }, testItem.envelope)
      return { bytes, utf8, binary: testItem.binary }
    }

    return {
      pids: [proc.child.pid],
      lanes: LANES,
      execute: async (lane, testCase) => {
        const laneIndex = 2 * lane + (testCase.helloed ? 0 : 1)
        const socket = await lanes.get(laneIndex)
        const client = keys[laneIndex]!
        const sent = await Promise.all(testCase.items.map((testItem) => render(client, testItem)))
        const inputs = sent.map((s) => decoder.decode(s.bytes))
        const depth = Math.max(...sent.map((s) => nestingDepth(s.bytes)))
        const result = await exchange(socket, async () => {
          for (const s of sent) socket.send(s.binary ? Opcode.binary : Opcode.text, s.bytes)
        })
        const violations = judgeFrames(result.frames, inputs)
        if (!result.ended && socket.closed) {
          violations.push(
            ...judgeClose(socket.closed.code, answers.neighbourhood.closes, {
              invalidUtf8Text: sent.some((s) => !s.binary && !s.utf8),
              depth,
              what: `${sent.length} frame(s)`
            })
          )
        }
        return violations
      },
      canary: async () => {
        if (!canary.isOpen) {
          const closed = canary.closed
          canary = await openCanary()
          throw new Error(`the canary connection was closed: ${JSON.stringify(closed)}`)
        }
        canary.frames.length = 0
        canary.text(canaryKey.clientListRequest())
        const result = await canary.until((f) => typeOf(f) === "client_list" || typeOf(f) === "error", 10_000)
        const last = result.frames.at(-1)?.payload.toString() ?? ""
        if (!result.ended) throw new Error(`canary closed: ${JSON.stringify(canary.closed)}`)
        const list = JSON.parse(last) as { type: string; servers?: Array<{ clients: Array<string> }> }
        if (list.type !== "client_list" || !list.servers?.[0]?.clients.includes(canaryKey.publicPem))
          throw new Error(`canary: unexpected answer to client_list_request: ${last.slice(0, 120)}`)
      },
      stop: async () => {
        lanes.closeAll()
        canary.close()
        proc.child.kill("SIGTERM")
        await proc.child.exited
      }
    }
  }
}
