import { FastCheck as fc } from "effect"
import { startServer } from "../../bench/lib/servers.ts"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { judgeClose, Lanes } from "../lib/lanes.ts"
import {
  anyString,
  applyMutation,
  framesCase,
  invalidUtf8Mutation,
  type Json,
  type Mutation,
  nestingDepth,
  textMutation
} from "../lib/mutate.ts"
import { type Frame, FuzzSocket, Opcode, UPGRADE_ADDRESS } from "../lib/ws.ts"

/**
 * Hydrogen WebSocket (docs/hydrogen.md "Messages"): commands of every channel and action with
 * broken envelopes and data, acks, the legacy status, binary frames, floods, and refused upgrades
 * (no subprotocol, bad credentials). Lanes share a few channels, so events of other lanes arrive too.
 */

type HydrogenFrame = {
  readonly binary: boolean
  readonly message: { readonly [key: string]: Json }
  readonly mutation: Mutation
}

type HydrogenWsCase =
  | { readonly kind: "frames"; readonly frames: ReadonlyArray<HydrogenFrame>; readonly repeat: number }
  | {
      readonly kind: "upgrade"
      readonly protocol: string | null
      readonly credential: "none" | "wrong" | "header" | "query" | "bearer"
    }

export const channelName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("news", "orders", "reliable-a", "system", "c.1:x-y") },
  { weight: 1, arbitrary: anyString }
)
const action = fc.oneof(fc.constantFrom("created", "x", "status_update"), anyString)
const filter = fc.dictionary(
  fc.constantFrom("level", "src.app", "n", "a.b.c"),
  fc.oneof(
    anyString as fc.Arbitrary<Json>,
    fc.record({ in: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 4 }) }),
    fc.record({ gte: fc.integer() }),
    fc.record({ exists: fc.boolean() })
  ),
  { maxKeys: 3 }
)
const position = fc.record({ epoch: anyString, seq: fc.integer() })

/** The documented commands, each with its data. */
const command = fc
  .oneof(
    fc.record({ channel: fc.constant("system"), action: fc.constantFrom("status", "ping", "whoami") }),
    fc.record({
      channel: fc.constant("system"),
      action: fc.constant("refresh"),
      data: fc.record({ token: anyString })
    }),
    fc.record({
      channel: fc.constant("system"),
      action: fc.constant("resume"),
      data: fc.record(
        { session: anyString, positions: fc.dictionary(channelName, position, { maxKeys: 2 }) },
        { requiredKeys: ["session"] }
      )
    }),
    fc.record({
      channel: fc.constant("subscriptions"),
      action: fc.constant("subscribe"),
      data: fc.record(
        { channel: channelName, filter, priority: fc.constantFrom("normal", "high", "urgent"), recover: position },
        { requiredKeys: ["channel"] }
      )
    }),
    fc.record({
      channel: fc.constant("subscriptions"),
      action: fc.constant("unsubscribe"),
      data: fc.record({ channel: channelName })
    }),
    fc.record({ channel: fc.constant("subscriptions"), action: fc.constant("list") }),
    fc.record({
      channel: fc.constant("events"),
      action: fc.constant("publish"),
      data: fc.record(
        {
          channel: channelName,
          action,
          data: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
          priority: fc.constantFrom("normal", "high"),
          ack: fc.boolean()
        },
        { requiredKeys: ["channel", "action"] }
      )
    }),
    fc.record({ channel: anyString, action })
  )
  .chain((body) =>
    fc.record(
      {
        type: fc.constant("command"),
        id: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.integer()),
        timestamp: fc.constantFrom("2026-11-29T00:00:00.000Z", "yesterday"),
        channel: fc.constant(body.channel),
        action: fc.constant(body.action),
        data: fc.constant(("data" in body ? body.data : {}) as Json),
        auth: fc.oneof(fc.record({ token: anyString }), fc.record({ signature: anyString }))
      },
      { requiredKeys: ["type", "id", "channel", "action"] }
    )
  )

const message: fc.Arbitrary<{ readonly [key: string]: Json }> = fc.oneof(
  { weight: 12, arbitrary: command },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("ack"), id: anyString }) },
  { weight: 1, arbitrary: fc.constant({ type: "status" }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("event", "response", "nope"), id: anyString }) }
)

const frame: fc.Arbitrary<HydrogenFrame> = fc.oneof(
  { weight: 90, arbitrary: fc.record({ binary: fc.constant(false), message, mutation: textMutation }) },
  {
    weight: 8,
    arbitrary: fc.record({ binary: fc.constant(true), message, mutation: fc.oneof(textMutation, invalidUtf8Mutation) })
  },
  { weight: 1, arbitrary: fc.record({ binary: fc.constant(false), message, mutation: invalidUtf8Mutation }) }
)

const arbitrary: fc.Arbitrary<HydrogenWsCase> = fc.oneof(
  {
    weight: 40,
    arbitrary: framesCase(frame)
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("upgrade" as const),
      protocol: fc.oneof(fc.constant(null), fc.constantFrom("hydrogen-protocol", "chat", "hydrogen-protocol, other")),
      credential: fc.constantFrom(
        "none" as const,
        "wrong" as const,
        "header" as const,
        "query" as const,
        "bearer" as const
      )
    })
  }
)

/** An error response: documented category and code, a short text without the schema's type. */
const judgeError = (text: string, error: any, inputs: ReadonlyArray<string>, depth: number): Array<Violation> => {
  const violations: Array<Violation> = []
  const codes = answers.hydrogen.errorCodes[String(error?.category)]
  if (!codes || !codes.includes(String(error?.code))) {
    violations.push({ invariant: "documented-answer", detail: `error ${error?.category}/${error?.code}` })
  }
  if (text.length > MAX_ERROR_REPLY_BYTES || echoes(text, inputs)) {
    violations.push({
      invariant: "no-echo",
      detail: `error ${error?.code} of ${text.length} bytes (input depth ${depth})`,
      defect: "12.2"
    })
  }
  if (leaksInternals(JSON.stringify(error))) {
    violations.push({
      invariant: "no-internals",
      detail: `error text shows schema internals: ${JSON.stringify(error).slice(0, 120)}`,
      defect: "12.4"
    })
  }
  return violations
}

const judgeFrames = (frames: ReadonlyArray<Frame>, inputs: ReadonlyArray<string>, depth: number): Array<Violation> => {
  const violations: Array<Violation> = []
  for (const frame of frames) {
    const text = frame.payload.toString()
    let parsed: any
    try {
      parsed = frame.opcode === Opcode.text ? JSON.parse(text) : undefined
    } catch {}
    if (parsed === undefined || parsed === null || typeof parsed !== "object") {
      violations.push({
        invariant: "documented-answer",
        detail: `not a JSON text frame: opcode ${frame.opcode} ${text.slice(0, 60)}`
      })
      continue
    }
    if (parsed.type === undefined && parsed.version && parsed.status) continue // the legacy status reply
    if (!(answers.hydrogen.frameTypes as ReadonlyArray<string>).includes(parsed.type)) {
      violations.push({ invariant: "documented-answer", detail: `frame of type ${JSON.stringify(parsed.type)}` })
      continue
    }
    if (parsed.type === "response" && parsed.error !== undefined)
      violations.push(...judgeError(text, parsed.error, inputs, depth))
  }
  return violations
}

export const startHydrogen = async () => {
  const server = await startServer("hydrogen", { env: { LOG_LEVEL: "error" } })
  const target = server.target as Extract<typeof server.target, { protocol: "hydrogen" }>
  return { server, target, port: Number(new URL(target.url).port) }
}

export const hydrogenWs: FuzzProtocol<HydrogenWsCase> = {
  name: "hydrogen-ws",
  title: "Hydrogen WebSocket",
  arbitrary,
  start: async () => {
    const { server, target } = await startHydrogen()
    const connect = async (localAddress: string) => {
      const socket = await FuzzSocket.open({
        url: target.url,
        protocol: target.subprotocol,
        headers: { Authorization: `Key ${target.key}` },
        localAddress
      })
      if (!socket.isOpen) throw new Error(`hydrogen refused a lane: ${JSON.stringify(socket.closed)}`)
      return socket
    }
    let sentinel = 0
    const exchange = async (socket: FuzzSocket, send: () => void) => {
      const id = `sentinel-${++sentinel}`
      send()
      socket.text(JSON.stringify({ type: "command", id, channel: "system", action: "ping" }))
      return socket.until((f) => f.opcode === Opcode.text && f.payload.includes(`"id":"${id}"`), 20_000)
    }
    // Lanes send bad per-message tokens, so an address gets blocked (429) as documented: a refused
    // lane moves to the next loopback address, as a blocked client's neighbours are unaffected.
    let laneAddress = 0
    const connectLane = async (): Promise<FuzzSocket> => {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const n = laneAddress++
        try {
          // 62,500 loopback addresses (127.1.0.1 … 127.1.249.250): more than a run can get blocked.
          return await connect(`127.1.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`)
        } catch (error) {
          if (!String(error).includes('"code":429')) throw error
        }
      }
      throw new Error("hydrogen refused lanes from 1000 addresses in a row")
    }
    const lanes = new Lanes(connectLane)
    let canary = await connect("127.0.0.2")
    return {
      pids: server.pids,
      lanes: 16,
      execute: async (lane, testCase) => {
        if (testCase.kind === "upgrade") {
          const credential = testCase.credential
          const key = credential === "wrong" ? "not-the-key" : target.key
          const headers: Record<string, string> = {}
          if (credential === "header" || credential === "wrong") headers.Authorization = `Key ${key}`
          if (credential === "bearer") headers.Authorization = `Bearer ${key}`
          const url = credential === "query" ? `${target.url}?key=${encodeURIComponent(key)}` : target.url
          const socket = await FuzzSocket.open({
            url,
            headers,
            localAddress: UPGRADE_ADDRESS,
            ...(testCase.protocol === null ? {} : { protocol: testCase.protocol })
          })
          const status = socket.refusedWith
          socket.close()
          if (status === undefined || (answers.hydrogen.upgradeRefusals as ReadonlyArray<number>).includes(status))
            return []
          return [{ invariant: "documented-answer", detail: `upgrade refused with HTTP ${status}` }]
        }
        const socket = await lanes.get(lane)
        const sent = testCase.frames.map((item) => {
          const { bytes, utf8 } = applyMutation(item.message, item.mutation)
          return { opcode: item.binary ? Opcode.binary : Opcode.text, bytes, invalidUtf8Text: !item.binary && !utf8 }
        })
        const inputs = sent.map((item) => Buffer.from(item.bytes).toString())
        const depth = Math.max(...sent.map((item) => nestingDepth(item.bytes)))
        const result = await exchange(socket, () => {
          for (let i = 0; i < testCase.repeat; i++) for (const item of sent) socket.send(item.opcode, item.bytes)
        })
        const violations = judgeFrames(result.frames, inputs, depth)
        if (!result.ended && socket.closed) {
          const invalidUtf8Text = sent.some((item) => item.invalidUtf8Text)
          violations.push(
            ...judgeClose(socket.closed.code, answers.hydrogen.closes, {
              invalidUtf8Text,
              depth,
              what: `${sent.length} frame(s) ×${testCase.repeat}`
            })
          )
        }
        return violations
      },
      canary: async () => {
        if (!canary.isOpen) {
          const closed = canary.closed
          canary = await connect("127.0.0.2")
          throw new Error(`the canary connection was closed: ${JSON.stringify(closed)}`)
        }
        const result = await exchange(canary, () => {})
        if (!result.ended) throw new Error(`canary closed: ${JSON.stringify(canary.closed)}`)
      },
      stop: async () => {
        lanes.closeAll()
        canary.close()
        await server.stop()
      }
    }
  }
}
