import { join } from "node:path"
import { FastCheck as fc } from "effect"
import { freePort, startListening, stopChild } from "../../bench/lib/servers.ts"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { startKeyIssuer } from "../lib/keyIssuer.ts"
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
 * DroneEngage relay WebSocket (docs/droneengage.md "Client WebSocket"): envelopes in text frames,
 * binary frames (JSON header, 0x00, raw bytes), wrong frame kinds, floods, refused upgrades.
 * Lanes sit in four groups of four, so routed messages of other lanes arrive too (as documented).
 */

type RelayFrame =
  | {
      readonly kind: "text" | "binaryRaw"
      readonly message: { readonly [key: string]: Json }
      readonly mutation: Mutation
    }
  | {
      readonly kind: "binary"
      readonly message: { readonly [key: string]: Json }
      readonly mutation: Mutation
      readonly body: ReadonlyArray<number>
    }

type RelayCase =
  | { readonly kind: "frames"; readonly frames: ReadonlyArray<RelayFrame>; readonly repeat: number }
  | { readonly kind: "upgrade"; readonly key: string | null; readonly unit: string | null }

const LANES = 16
const unitOf = (lane: number) => `lane${lane}`
const groupOf = (lane: number) => `g${lane % 4}`

const envelope = fc.record(
  {
    ty: fc.constantFrom("g", "i", "s"),
    tg: fc.oneof(fc.constantFrom("", "_GCS_", "_GD_", "_AGN_", "lane1", "lane5", "nobody"), anyString),
    mt: fc.oneof(
      fc.integer({ min: 1000, max: 1100 }),
      fc.constantFrom(9001, 9002, 9004, 9005, 9006, 9008, 9100, 9999),
      anyString
    ),
    ms: fc.oneof(fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, fc.record({ s: anyString })),
    sd: fc.constantFrom("_SYS_", "lane3", "spoofed"),
    p: fc.integer(),
    _aid: anyString,
    _gid: anyString,
    _path: fc.array(anyString, { maxLength: 2 })
  },
  { requiredKeys: ["ty", "mt"] }
)

const frame: fc.Arbitrary<RelayFrame> = fc.oneof(
  {
    weight: 80,
    arbitrary: fc.record({ kind: fc.constant("text" as const), message: envelope, mutation: textMutation })
  },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("binary" as const),
      message: envelope,
      mutation: fc.oneof(textMutation, invalidUtf8Mutation),
      body: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 })
    })
  },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("binaryRaw" as const), message: envelope, mutation: textMutation })
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("text" as const), message: envelope, mutation: invalidUtf8Mutation })
  }
)

const arbitrary: fc.Arbitrary<RelayCase> = fc.oneof(
  {
    weight: 40,
    arbitrary: framesCase(frame)
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("upgrade" as const),
      key: fc.oneof(fc.constant(null), fc.hexaString({ minLength: 32, maxLength: 32 }), anyString),
      unit: fc.oneof(
        fc.constant(null),
        fc.constantFrom("", "_GCS_", "_GD_", "_AGN_", "_SYS_", "a\u0001b", "x".repeat(201)),
        anyString
      )
    })
  }
)

const bytesOf = (item: RelayFrame): { opcode: number; bytes: Uint8Array; invalidUtf8Text: boolean } => {
  const { bytes, utf8 } = applyMutation(item.message, item.mutation)
  if (item.kind !== "binary") {
    return item.kind === "text"
      ? { opcode: Opcode.text, bytes, invalidUtf8Text: !utf8 }
      : { opcode: Opcode.binary, bytes, invalidUtf8Text: false }
  }
  const body = Uint8Array.from(item.body)
  const out = new Uint8Array(bytes.length + 1 + body.length)
  out.set(bytes, 0)
  out.set(body, bytes.length + 1)
  return { opcode: Opcode.binary, bytes: out, invalidUtf8Text: false }
}

/** Every frame a lane may receive: our system replies, routed messages of other lanes, documented errors. */
const judgeFrames = (
  frames: ReadonlyArray<Frame>,
  lane: number,
  inputs: ReadonlyArray<string>,
  depth: number
): Array<Violation> => {
  const violations: Array<Violation> = []
  const table = answers.relay
  for (const frame of frames) {
    if (frame.opcode === Opcode.binary) continue // a routed binary message of another lane
    const text = frame.payload.toString()
    let message: any
    try {
      message = JSON.parse(text)
    } catch {
      violations.push({ invariant: "documented-answer", detail: `a text frame that is not JSON: ${text.slice(0, 80)}` })
      continue
    }
    if (message?.ty !== "s" || (message.sd !== undefined && message.sd !== "_SYS_" && message.sd !== unitOf(lane)))
      continue // routed
    if (!(table.systemReplies as ReadonlyArray<number>).includes(message.mt)) {
      violations.push({
        invariant: "documented-answer",
        detail: `system message mt ${message.mt}: ${text.slice(0, 80)}`
      })
      continue
    }
    if (message.mt !== 9100) continue
    const reason = typeof message.ms?.s === "string" ? message.ms.s.replace(/^ERR:/, "") : undefined
    if (!reason || !(table.errorReasons as ReadonlyArray<string>).includes(reason)) {
      violations.push({
        invariant: "documented-answer",
        detail: `error reply with reason ${JSON.stringify(message.ms?.s)?.slice(0, 60)}`
      })
    }
    if (text.length > MAX_ERROR_REPLY_BYTES || echoes(text, inputs)) {
      violations.push({
        invariant: "no-echo",
        detail: `9100 reply of ${text.length} bytes (input depth ${depth}): ${text.slice(0, 400)}`,
        defect: "12.2"
      })
    }
    if (leaksInternals(String(message.ms?.em ?? ""))) {
      violations.push({
        invariant: "no-internals",
        detail: `em shows schema internals: ${String(message.ms.em).slice(0, 100)}`,
        defect: "12.4"
      })
    }
  }
  return violations
}

export const relay: FuzzProtocol<RelayCase> = {
  name: "relay",
  title: "DroneEngage relay WebSocket",
  arbitrary,
  start: async () => {
    const issuer = startKeyIssuer()
    const port = freePort()
    const program = await startListening(
      "relay",
      [process.execPath, join(import.meta.dir, "../../programs/relay.ts")],
      {
        LOG_LEVEL: "error",
        RELAY_PORT: String(port),
        RELAY_HOSTNAME: "127.0.0.1",
        RELAY_PUBLIC_HOST: "127.0.0.1",
        RELAY_AUTHENTICATOR_URL: issuer.url,
        RELAY_S2S_SECRET: issuer.secret,
        RELAY_LOGIN_KEY_TTL_MS: "600000"
      },
      port
    )
    const connect = async (unit: string, group: string, localAddress: string) => {
      const key = await issuer.key(group)
      const socket = await FuzzSocket.open({ url: `ws://127.0.0.1:${port}/?f=${key.f}&s=${unit}`, localAddress })
      const hello = await socket.until((f) => f.payload.includes('"mt":9007'), 10_000)
      if (!hello.ended) throw new Error(`relay refused a lane: ${JSON.stringify(socket.closed)}`)
      return socket
    }
    const lanes = new Lanes((lane) => connect(unitOf(lane), groupOf(lane), "127.0.0.1"))
    let canary = await connect("canary", "canary-group", "127.0.0.2")
    let sentinel = 0
    const exchange = async (socket: FuzzSocket, send: () => void) => {
      const id = `s${++sentinel}`
      send()
      socket.text(JSON.stringify({ ty: "s", mt: 9005, ms: { k: id } }))
      return socket.until((f) => f.opcode === Opcode.text && f.payload.includes(`"k":"${id}"`), 20_000)
    }
    return {
      pids: [program.child.pid],
      lanes: LANES,
      execute: async (lane, testCase) => {
        if (testCase.kind === "upgrade") {
          const query = new URLSearchParams()
          if (testCase.key !== null) query.set("f", testCase.key)
          if (testCase.unit !== null) query.set("s", testCase.unit)
          const socket = await FuzzSocket.open({
            url: `ws://127.0.0.1:${port}/?${query}`,
            localAddress: UPGRADE_ADDRESS
          })
          const status = socket.refusedWith
          socket.close()
          if (status !== undefined && (answers.relay.upgradeRefusals as ReadonlyArray<number>).includes(status))
            return []
          return [
            {
              invariant: "documented-answer",
              detail:
                status === undefined
                  ? "a connect without a valid key was accepted"
                  : `upgrade refused with HTTP ${status}`
            }
          ]
        }
        const socket = await lanes.get(lane)
        const sent = testCase.frames.map(bytesOf)
        const inputs = sent.map((item) => Buffer.from(item.bytes).toString())
        const depth = Math.max(...sent.map((item) => nestingDepth(item.bytes)))
        const result = await exchange(socket, () => {
          for (let i = 0; i < testCase.repeat; i++) for (const item of sent) socket.send(item.opcode, item.bytes)
        })
        const violations = judgeFrames(result.frames, lane, inputs, depth)
        if (!result.ended && socket.closed) {
          const invalidUtf8Text = sent.some((item) => item.invalidUtf8Text)
          violations.push(
            ...judgeClose(socket.closed.code, answers.relay.closes, {
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
          canary = await connect("canary", "canary-group", "127.0.0.2")
          throw new Error(`the canary connection was closed: ${JSON.stringify(closed)}`)
        }
        const result = await exchange(canary, () => {})
        if (!result.ended) throw new Error(`canary closed: ${JSON.stringify(canary.closed)}`)
      },
      stop: async () => {
        lanes.closeAll()
        canary.close()
        await stopChild(program.child)
        issuer.stop()
      }
    }
  }
}
