import { createHmac, randomBytes } from "node:crypto"
import type { ServerWebSocket } from "bun"
import { freePort } from "../../bench/lib/servers.ts"

/**
 * A stand-in for the DroneEngage authenticator on the S2S side (docs/droneengage.md "Server-to-server
 * link"): it challenges the relay, checks its HMAC answer, and asks it for login keys (LOGIN) as
 * fast as the fuzzer needs them. The real authenticator verifies an argon2id access code per login
 * (~0.3 s of a core), which would make reconnecting lanes the bottleneck of the relay fuzz.
 */
export interface KeyIssuer {
  readonly url: string
  readonly secret: string
  /** A fresh single-use key for `group` of account `account`. */
  readonly key: (group: string, account?: string) => Promise<{ f: string; g: string; h: number }>
  readonly stop: () => void
}

export const startKeyIssuer = (): KeyIssuer => {
  const secret = randomBytes(24).toString("hex")
  const port = freePort()
  let relay: ServerWebSocket<{ nonce: string }> | undefined
  let linked: (() => void) | undefined
  const ready = new Promise<void>((resolve) => (linked = resolve))
  const waiting = new Map<
    string,
    { resolve: (key: { f: string; g: string; h: number }) => void; reject: (error: Error) => void }
  >()
  let request = 0
  const server = Bun.serve<{ nonce: string }, never>({
    hostname: "127.0.0.1",
    port,
    fetch: (req, srv) =>
      srv.upgrade(req, { data: { nonce: randomBytes(32).toString("hex") } })
        ? undefined
        : new Response("s2s only", { status: 400 }),
    websocket: {
      open: (ws) => void ws.send(JSON.stringify({ s2s_auth: "challenge", nonce: ws.data.nonce })),
      message: (ws, message) => {
        const frame = JSON.parse(String(message)) as {
          s2s_auth?: string
          id?: string
          sig?: string
          c?: string
          d?: any
        }
        if (frame.s2s_auth === "response") {
          const expected = createHmac("sha256", secret)
            .update(`switchboard-s2s:${frame.id}:${ws.data.nonce}`)
            .digest("base64")
          if (frame.sig !== expected) return ws.close(4401, "bad signature")
          relay = ws
          ws.send(JSON.stringify({ s2s_auth: "ok" }))
          linked?.()
          return
        }
        if (frame.c === "b" && frame.d) {
          const pending = waiting.get(String(frame.d.r))
          waiting.delete(String(frame.d.r))
          if (frame.d.e === 0) pending?.resolve({ f: frame.d.f, g: frame.d.g, h: frame.d.h })
          else pending?.reject(new Error(`relay refused LOGIN: ${JSON.stringify(frame.d)}`))
        }
      }
    }
  })
  return {
    url: `ws://127.0.0.1:${port}`,
    secret,
    key: async (group, account = "fuzz-account") => {
      await ready
      const r = `k${++request}`
      const key = new Promise<{ f: string; g: string; h: number }>((resolve, reject) => {
        waiting.set(r, { resolve, reject })
        setTimeout(() => {
          if (waiting.delete(r)) reject(new Error("relay did not answer LOGIN within 10 s"))
        }, 10_000)
      })
      relay!.send(JSON.stringify({ c: "b", d: { r, a: account, b: group, at: "g", il: 0, prm: 4294967295 } }))
      return key
    },
    stop: () => void server.stop(true)
  }
}
