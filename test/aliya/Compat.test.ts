import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { MemoryTcpNetwork } from "../../layers/Transport/TcpTransport.ts"
import { desCompatCipher } from "../../src/aliya/Cipher.ts"
import { makeClient, requestFrame } from "../../src/aliya/Client.ts"
import { FrameDecoder } from "../../src/aliya/Frame.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, startStack } from "./support.ts"

/**
 * Frames as the original Python client sends them, recorded from its documented algorithm with
 * independent tools: openssl enc -des-cbc (key = IV = "67891234") and Python's base64.encodebytes.
 */
const recorded = [
  {
    json: '{"function": "login_unique", "random": "253", "data": {"unique_id": "device-from-python"}}',
    frame:
      "e3cb970693574ea75d091a6049f8a3ff013040DEMkKPfLyMbsVe8xq1V9L9b1dRS0nQ1Wm2btWZjbIJY5j+yjwGshdbOivU5zO95A/PQMbiG0eV\nhUqYXbzEVVzGCFtuGmJv2jThak3dLF1XsMGMCgU+zM94jEElTElL\n"
  },
  {
    json: '{"function": "level_up_weapon", "random": "744", "data": {"token": "TOKEN", "weapon": "weapon1", "iron": "100"}}',
    frame:
      "e3cb970693574ea75d091a6049f8a3ff016340DEMkKPfLypo0B4rrg0faLmKo3KHj2WXpFd4N+f/ZHXiQKWOzEpUQIgrZoUjRk0V/WKWhTz4SJB\nWgGCyPAbgKtzYhXtM7rLzEnNHnH7GUQMRmsfzUYLa0etp3mMpjmwlos279VhA0seF/R2gpt0hITp\nfwEz132E\n"
  }
]

const des = desCompatCipher(Buffer.from("67891234"), Buffer.from("67891234"))

describe("aliya DES compat: the original client's bytes", () => {
  it.effect("our client builds the recorded frames byte for byte", () =>
    Effect.sync(() => {
      for (const { json, frame } of recorded) expect(new TextDecoder().decode(requestFrame(des, json))).toBe(frame)
    })
  )

  it.effect("the gateway answers the recorded frames, one request per connection like the original client", () =>
    Effect.gen(function* () {
      const stack = yield* startStack({ cipher: "des-compat" })
      const network = yield* MemoryTcpNetwork
      const answers = []
      for (const { frame } of recorded) {
        const tcp = yield* network.connect(stack.gatewayPort)
        yield* tcp.write(new TextEncoder().encode(frame))
        const client = makeClient({ write: tcp.write, read: tcp.read, close: tcp.close }, des)
        const text = yield* client.nextText
        // The reply is what Python's eval() reads: no true/false/null, random echoed.
        expect(text).not.toMatch(/\b(true|false|null)\b/)
        answers.push(JSON.parse(text))
        yield* tcp.close
      }
      expect(answers[0]).toMatchObject({ status: 1, message: "new account created", random: "253" })
      expect(answers[1]).toEqual({
        status: 11,
        message: "Authorization required",
        random: "744",
        data: { bad_token: "TOKEN" }
      })
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("reply frames have the original's shape: header, then base64 lines of 76 with a final newline", () =>
    Effect.gen(function* () {
      const stack = yield* startStack({ cipher: "des-compat" })
      const network = yield* MemoryTcpNetwork
      const tcp = yield* network.connect(stack.gatewayPort)
      yield* tcp.write(new TextEncoder().encode(recorded[0]!.frame))
      const decoder = new FrameDecoder()
      let frames: ReadonlyArray<Uint8Array> = []
      while (frames.length === 0) frames = decoder.push(yield* tcp.read).frames
      const body = new TextDecoder().decode(frames[0])
      expect(body.endsWith("\n")).toBe(true)
      for (const line of body.slice(0, -1).split("\n")) expect(line.length).toBeLessThanOrEqual(76)
      expect(body).toMatch(/^[A-Za-z0-9+/=\n]+$/)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
