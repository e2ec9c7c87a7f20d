import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FastCheck as fc } from "effect"
import { aliyaStackEnv } from "../../bench/lib/aliyaStackEnv.ts"
import { startListening } from "../../bench/lib/servers.ts"
import { aesGcmCipher, type BodyCipher } from "../../src/aliya/Cipher.ts"
import { requestFrame } from "../../src/aliya/Client.ts"
import { encodeFrame, FrameDecoder, HEADER_SIZE, MAGIC, MAX_BODY } from "../../src/aliya/Frame.ts"
import { FunctionData } from "../../src/aliya/Functions.ts"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { anyString, anyValue, applyMutation, type Json, type Mutation, textMutation } from "../lib/mutate.ts"

/**
 * The Aliya gateway over raw TCP (docs/aliya.md "The wire"): frames of header + 4-digit length +
 * base64 body, with requests for every function and broken data, bodies that are not base64, not
 * decryptable or not JSON, bad headers (closed without a reply), and frames split across writes or
 * pipelined in one. The gateway, token server and managers run in one child (bench/lib/aliya-stack.ts).
 */

/** Filled in at send time with the canary account's token. */
const TOKEN = "$token"

type AliyaFrame =
  | { readonly kind: "request"; readonly message: { readonly [key: string]: Json }; readonly mutation: Mutation }
  /** Decryptable, but not a JSON request. */
  | { readonly kind: "sealedText"; readonly text: string }
  /** base64 that is not a sealed body. */
  | { readonly kind: "undecryptable"; readonly bytes: ReadonlyArray<number> }
  /** Any bytes as the body. */
  | { readonly kind: "rawBody"; readonly bytes: ReadonlyArray<number> }
  /** A header that is not an Aliya header: the connection closes without a reply. */
  | { readonly kind: "badHeader"; readonly header: "magic" | "digit" | "garbage" | "http"; readonly at: number }

type AliyaCase = {
  readonly frames: ReadonlyArray<AliyaFrame>
  /** Where the bytes are cut into separate writes (fractions of the whole). */
  readonly splits: ReadonlyArray<number>
}

const functionName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Object.keys(FunctionData)) },
  { weight: 1, arbitrary: anyString },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty") }
)
const dataKey = fc.constantFrom(
  "weapon",
  "iron",
  "scroll_id",
  "skill_id",
  "unique_id",
  "device_secret",
  "account",
  "password",
  "identifier",
  "value",
  "energy",
  "level",
  "star"
)
const dataValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("weapon1", "weapon40", "scroll_skill_10", "skill1", "100", "fuzz-player") },
  { weight: 2, arbitrary: fc.integer({ min: -10, max: 10_000 }) },
  { weight: 3, arbitrary: anyValue }
)
const request = fc.record(
  {
    function: functionName,
    random: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
    data: fc
      .tuple(fc.oneof(fc.constant(TOKEN), anyString), fc.dictionary(dataKey, dataValue, { maxKeys: 3 }))
      .map(([token, rest]) => ({ token, ...rest }) as Json)
  },
  { requiredKeys: ["function", "data"] }
)
const bytes = (max: number) => fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: max })

const frame: fc.Arbitrary<AliyaFrame> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc.record({
      kind: fc.constant("request" as const),
      message: request,
      mutation: fc.oneof(
        { weight: 2, arbitrary: fc.constant({ op: "valid" as const }) },
        { weight: 3, arbitrary: textMutation }
      )
    })
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("sealedText" as const), text: anyString }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("undecryptable" as const), bytes: bytes(120) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("rawBody" as const), bytes: bytes(120) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("badHeader" as const),
      header: fc.constantFrom("magic" as const, "digit" as const, "garbage" as const, "http" as const),
      at: fc.nat(35)
    })
  }
)

const arbitrary: fc.Arbitrary<AliyaCase> = fc.record({
  frames: fc.array(frame, { minLength: 1, maxLength: 4 }),
  splits: fc.oneof(
    { weight: 3, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }) }
  )
})

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A frame around a body of any size: bodies over 9999 bytes are cut (then they no longer decrypt). */
const frameAround = (body: Uint8Array) => encodeFrame(body.subarray(0, MAX_BODY))!

/** The bytes of one case frame, whether it must be answered with status 10, and whether it breaks the stream. */
const render = (cipher: BodyCipher, token: string, item: AliyaFrame) => {
  switch (item.kind) {
    case "request": {
      const { bytes } = applyMutation(item.message, item.mutation)
      const text = decoder.decode(bytes).replaceAll(JSON.stringify(TOKEN), JSON.stringify(token))
      const body = cipher.seal(encoder.encode(text))
      // A valid request gets its function's status; a mutated one may still be valid.
      return { bytes: frameAround(body), input: text, mustBeInvalid: body.byteLength > MAX_BODY, breaks: false }
    }
    case "sealedText": {
      const body = cipher.seal(encoder.encode(item.text))
      return { bytes: frameAround(body), input: item.text, mustBeInvalid: true, breaks: false }
    }
    case "undecryptable": {
      const body = encoder.encode(Buffer.from(item.bytes).toString("base64"))
      return { bytes: frameAround(body), input: "", mustBeInvalid: true, breaks: false }
    }
    case "rawBody":
      return { bytes: frameAround(Uint8Array.from(item.bytes)), input: "", mustBeInvalid: true, breaks: false }
    case "badHeader": {
      const header = encoder.encode(`${MAGIC}0004`)
      if (item.header === "magic") header[item.at % 32] = 0x5a // "Z" is not a hex digit
      if (item.header === "digit") header[32 + (item.at % 4)] = 0x2d // "-"
      const bytes =
        item.header === "garbage"
          ? crypto.getRandomValues(new Uint8Array(HEADER_SIZE + 4))
          : item.header === "http"
            ? encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
            : Uint8Array.from([...header, 0x41, 0x41, 0x41, 0x41])
      return { bytes, input: "", mustBeInvalid: true, breaks: true }
    }
  }
}

/** A raw TCP connection to the gateway that collects reply bodies and notices the close. */
class AliyaSocket {
  readonly replies: Array<Uint8Array> = []
  closed = false
  badReplyHeader = false
  private readonly frames = new FrameDecoder()
  private pending: Array<Uint8Array> = []
  private wake: (() => void) | undefined
  private constructor(private readonly socket: Bun.Socket<undefined>) {}

  static async open(port: number): Promise<AliyaSocket> {
    let self: AliyaSocket | undefined
    const early: Array<Uint8Array> = []
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_socket, chunk) => {
          if (self) self.receive(chunk)
          else early.push(chunk)
        },
        drain: () => self?.flush(),
        close: () => self?.end(),
        end: () => self?.end(),
        error: () => self?.end()
      }
    })
    self = new AliyaSocket(socket as Bun.Socket<undefined>)
    for (const chunk of early) self.receive(chunk)
    return self
  }

  private receive(chunk: Uint8Array) {
    const { frames, badHeader } = this.frames.push(chunk)
    if (badHeader) this.badReplyHeader = true
    this.replies.push(...frames)
    this.poke()
  }

  private end() {
    this.closed = true
    this.poke()
  }

  write(bytes: Uint8Array) {
    this.pending.push(bytes)
    this.flush()
  }

  private flush() {
    while (this.pending.length > 0 && !this.closed) {
      const next = this.pending[0]!
      const written = this.socket.write(next)
      if (written >= next.byteLength) this.pending.shift()
      else {
        this.pending[0] = next.subarray(Math.max(0, written))
        return
      }
    }
  }

  /** Waits until `done` holds or the connection closes; false on timeout. */
  async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs
    while (!done() && !this.closed) {
      const left = deadline - performance.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    return true
  }

  get isOpen() {
    return !this.closed
  }

  close() {
    this.closed = true
    this.socket.end()
  }

  private poke() {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

type Reply = { status?: unknown; message?: unknown; random?: unknown; data?: unknown }

const judgeReply = (
  cipher: BodyCipher,
  body: Uint8Array,
  expected: { mustBeInvalid: boolean; input: string } | undefined
): { reply?: Reply; violations: Array<Violation> } => {
  const plaintext = cipher.open(body)
  let reply: Reply | undefined
  try {
    reply = plaintext ? (JSON.parse(decoder.decode(plaintext)) as Reply) : undefined
  } catch {}
  if (!reply || typeof reply !== "object")
    return { violations: [{ invariant: "documented-answer", detail: "a reply that is not a sealed JSON object" }] }
  const violations: Array<Violation> = []
  const text = JSON.stringify(reply)
  if (!(answers.aliya.statuses as ReadonlyArray<unknown>).includes(reply.status) || typeof reply.message !== "string")
    violations.push({ invariant: "documented-answer", detail: `reply ${text.slice(0, 120)}` })
  else if (expected?.mustBeInvalid && reply.status !== answers.aliya.invalidFormat)
    violations.push({ invariant: "documented-answer", detail: `a broken body answered with ${text.slice(0, 120)}` })
  // 13 means a manager, the token server or the database failed to answer: nothing is down here, so it is an internal error.
  if (reply.status === answers.aliya.unavailable)
    violations.push({ invariant: "no-internal-error", detail: `status 13 to ${(expected?.input ?? "").slice(0, 160)}` })
  if (
    reply.status !== 0 &&
    reply.status !== 1 &&
    (text.length > MAX_ERROR_REPLY_BYTES || echoes(text, [expected?.input ?? ""]))
  )
    violations.push({ invariant: "no-echo", detail: `status ${reply.status} reply of ${text.length} bytes` })
  if (leaksInternals(text))
    violations.push({ invariant: "no-internals", detail: `reply shows internals: ${text.slice(0, 160)}` })
  return { reply, violations }
}

const startAliya = async () => {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(32)))
  const dir = mkdtempSync(join(tmpdir(), "switchboard-fuzz-aliya-"))
  const { env, gateway } = aliyaStackEnv(key, dir, { players: 1, logLevel: "Error" })
  const proc = await startListening(
    "aliya stack",
    [process.execPath, join(import.meta.dir, "../../bench/lib/aliya-stack.ts")],
    env,
    gateway!
  )
  return { proc, port: gateway!, cipher: aesGcmCipher(key), dir }
}

const LANES = 8

export const aliya: FuzzProtocol<AliyaCase> = {
  name: "aliya",
  title: "Aliya gateway (raw TCP)",
  arbitrary,
  start: async () => {
    const { proc, port, cipher, dir } = await startAliya()
    let sentinel = 0
    const call = async (socket: AliyaSocket, fn: string, data: Record<string, unknown>): Promise<Reply> => {
      const random = `canary-${++sentinel}`
      socket.write(requestFrame(cipher, JSON.stringify({ function: fn, random, data })))
      let found: Reply | undefined
      const done = () => {
        while (!found && socket.replies.length > 0) {
          const opened = cipher.open(socket.replies.shift()!)
          const reply = opened ? (JSON.parse(decoder.decode(opened)) as Reply) : undefined
          if (reply?.random === random) found = reply
        }
        return found !== undefined
      }
      if (!(await socket.until(done, 10_000)) || !found) throw new Error(`${fn}: no reply (closed: ${socket.closed})`)
      return found
    }
    // The canary account: login_unique creates it (status 1 with its device secret), then logs in with the secret.
    let canary = await AliyaSocket.open(port)
    const created = await call(canary, "login_unique", { unique_id: "fuzz-canary" })
    const deviceSecret = (created.data as { device_secret?: string } | undefined)?.device_secret
    const login = async (socket: AliyaSocket) => {
      const reply = await call(socket, "login_unique", { unique_id: "fuzz-canary", device_secret: deviceSecret })
      const token = (reply.data as { token?: string } | undefined)?.token
      if (reply.status !== 0 || !token) throw new Error(`canary login refused: ${JSON.stringify(reply).slice(0, 200)}`)
      return token
    }
    let token = await login(canary)

    const lanes: Array<AliyaSocket | undefined> = []
    const laneSocket = async (lane: number) => {
      const current = lanes[lane]
      if (current?.isOpen) return current
      const socket = await AliyaSocket.open(port)
      lanes[lane] = socket
      return socket
    }

    return {
      pids: [proc.child.pid],
      lanes: LANES,
      execute: async (lane, testCase) => {
        const socket = await laneSocket(lane)
        const rendered = testCase.frames.map((item) => render(cipher, token, item))
        const firstBreak = rendered.findIndex((item) => item.breaks)
        const answered = firstBreak === -1 ? rendered : rendered.slice(0, firstBreak)
        const id = `sentinel-${++sentinel}`
        const parts = [...rendered.map((item) => item.bytes)]
        if (firstBreak === -1)
          parts.push(requestFrame(cipher, JSON.stringify({ function: "fuzz_sentinel", random: id })))
        const stream = Buffer.concat(parts)
        const cuts = [...new Set(testCase.splits.map((at) => Math.floor(stream.byteLength * at)))].sort((a, b) => a - b)
        let from = 0
        for (const cut of [...cuts, stream.byteLength]) {
          if (cut <= from) continue
          socket.write(stream.subarray(from, cut))
          from = cut
          if (cut < stream.byteLength) await Bun.sleep(0)
        }
        const violations: Array<Violation> = []
        const expectedReplies = answered.length + (firstBreak === -1 ? 1 : 0)
        const ok = await socket.until(() => socket.replies.length >= expectedReplies && firstBreak === -1, 20_000)
        if (!ok) {
          socket.close()
          return [
            { invariant: "answered", detail: `${socket.replies.length} of ${expectedReplies} replies within 20 s` }
          ]
        }
        const replies = socket.replies.splice(0)
        if (socket.badReplyHeader)
          violations.push({ invariant: "documented-answer", detail: "a reply frame with a bad header" })
        if (firstBreak !== -1 && replies.length !== answered.length)
          violations.push({
            invariant: "documented-answer",
            detail: `${replies.length} replies to ${answered.length} frames before a bad header (which gets none)`
          })
        if (firstBreak === -1 && socket.closed)
          violations.push({
            invariant: "documented-answer",
            detail: `closed after ${rendered.length} well-framed frame(s)`
          })
        replies.forEach((body, index) => {
          const judged = judgeReply(cipher, body, answered[index])
          violations.push(...judged.violations)
          if (index === answered.length && judged.reply?.random !== id)
            violations.push({
              invariant: "documented-answer",
              detail: "replies out of order: the sentinel's is not last"
            })
        })
        return violations
      },
      canary: async () => {
        if (!canary.isOpen) {
          canary = await AliyaSocket.open(port)
          token = await login(canary)
          throw new Error("the canary connection was closed")
        }
        const reply = await call(canary, "get_all_weapon", { token })
        if (reply.status !== 0)
          throw new Error(`canary: get_all_weapon answered ${JSON.stringify(reply).slice(0, 160)}`)
      },
      stop: async () => {
        for (const socket of lanes) socket?.close()
        canary.close()
        proc.child.kill("SIGTERM")
        await proc.child.exited
        // The stack's SQLite database lives here: a run leaves nothing behind in the temp directory.
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
}
