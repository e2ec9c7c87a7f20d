/**
 * Ceiling for the Aliya gateway cases: a raw Bun TCP server doing the same framing and
 * AES-256-GCM body cipher, answering get_all_weapon, level_up_weapon and login from memory
 * (no token check, no HTTP hop, no SQL). Env: PORT, ALIYA_KEY (64 hex digits).
 */
import { aesGcmCipher } from "../../src/aliya/Cipher.ts"
import { encodeFrame, FrameDecoder } from "../../src/aliya/Frame.ts"
import { encodeReply } from "../../src/aliya/Wire.ts"

const cipher = aesGcmCipher(Buffer.from(process.env.ALIYA_KEY ?? "", "hex"))
const iron = new Map<string, number>()
const levels = new Map<string, number>()
const encoder = new TextEncoder()
const decoder = new TextDecoder()
let tokens = 0

const answer = (request: { function?: string; random?: string; data?: Record<string, unknown> }) => {
  const data = request.data ?? {}
  const player = String(data.token ?? data.value ?? "")
  switch (request.function) {
    case "login":
      return { status: 0, message: "success", data: { token: `${player}.${++tokens}` } }
    case "get_all_weapon":
      // The same reply as the stack's for a bench player (weapon1..weapon40 owned), so both encrypt and send as much.
      return {
        status: 0,
        message: "success",
        data: Object.fromEntries(
          Array.from({ length: 40 }, (_, i) => [
            `weapon_bag${i + 1}`,
            [`weapon${i + 1}`, 1, i === 0 ? (levels.get(player) ?? 0) : 0, 0, 0, 0, 0, 0, 0]
          ])
        )
      }
    case "level_up_weapon": {
      const have = iron.get(player) ?? 1_000_000_000
      if (have < 20) return { status: 2, message: "Insufficient materials, upgrade failed", data: {} }
      iron.set(player, have - 20)
      const level = (levels.get(player) ?? 0) + 1
      levels.set(player, level)
      return {
        status: 0,
        message: "success",
        data: { weapon_bag1: [player, level, 0, 0, 0, 0, level, 0], item1: ["iron", have - 20] }
      }
    }
    default:
      return { status: 10, message: "Invalid message format", data: {} }
  }
}

const server = Bun.listen<{ frames: FrameDecoder }>({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  socket: {
    open: (socket) => {
      socket.data = { frames: new FrameDecoder() }
    },
    data: (socket, bytes) => {
      const { frames, badHeader } = socket.data.frames.push(bytes)
      for (const frame of frames) {
        const plaintext = cipher.open(frame)
        let request: { function?: string; random?: string; data?: Record<string, unknown> } = {}
        try {
          request = plaintext ? JSON.parse(decoder.decode(plaintext)) : {}
        } catch {}
        const reply = { ...answer(request), random: request.random ?? "" }
        socket.write(encodeFrame(cipher.seal(encoder.encode(encodeReply(reply))))!)
      }
      if (badHeader) socket.end()
    }
  }
})
console.log(`aliya-raw listening on ${server.port}`)
