import { describe, expect } from "bun:test"
import { mkdtempSync } from "node:fs"
import https from "node:https"
import http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import WebSocket from "ws"
import { it } from "../support/effect.ts"
import { seedAccounts, startStack, TestServices } from "./realSockets.ts"

/** A throwaway self-signed certificate (the original is TLS-only); plain sockets when openssl is missing. */
const selfSignedCertificate = () => {
  if (!Bun.which("openssl")) return undefined
  const dir = mkdtempSync(join(tmpdir(), "de-tls-"))
  const tls = { certPath: join(dir, "cert.pem"), keyPath: join(dir, "key.pem") }
  const made = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      tls.keyPath,
      "-out",
      tls.certPath,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1"
    ],
    { stderr: "ignore", stdout: "ignore" }
  )
  return made.exitCode === 0 ? tls : undefined
}

/**
 * Does exactly what the original server repo's test/test_fully_connect_to_comm_server.js does:
 * an HTTPS POST to /agent/al with a JSON body, then wss://<cs.g>:<cs.h>?f=<cs.f>&s=<party id>
 * with the `ws` package, then a JSON message (which is no envelope: we answer with an error).
 */
const originalClient = (authPort: number, secure: boolean) =>
  new Promise<{ reply: any; messages: Array<any>; ws?: WebSocket }>((resolve, reject) => {
    const partyID = "122111"
    const postData = JSON.stringify({
      acc: "alpha",
      pwd: "alpha-code",
      gr: "1",
      app: "andruav",
      ver: "5.0.0.1",
      ex: "Andruav",
      at: "g"
    })
    const options = {
      hostname: "127.0.0.1",
      port: authPort,
      path: "/agent/al",
      method: "POST",
      headers: { "Content-Type": "application/json" },
      rejectUnauthorized: false
    }
    const req = (secure ? https : http).request(options, (res) => {
      let data = ""
      res.on("data", (chunk) => (data += chunk))
      res.on("end", () => {
        const reply = JSON.parse(data)
        if (reply.e !== 0) return resolve({ reply, messages: [] })
        const wsUrl = `${secure ? "wss" : "ws"}://${reply.cs.g}:${reply.cs.h}?f=${reply.cs.f}&s=${partyID}`
        const ws = new WebSocket(wsUrl, { rejectUnauthorized: false })
        const messages: Array<any> = []
        ws.on("open", () => ws.send(JSON.stringify({ message: "Data from client", timestamp: Date.now() })))
        ws.on("message", (data) => {
          messages.push(JSON.parse(data.toString()))
          if (messages.length === 2) resolve({ reply, messages, ws })
        })
        ws.on("error", reject)
      })
    })
    req.on("error", reject)
    req.write(postData)
    req.end()
  })

describe("a client written for the original DroneEngage servers", () => {
  it.live("logs in over HTTPS, connects with f and s, and gets the welcome and an answer", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const tls = selfSignedCertificate()
      const stack = yield* startStack({ auth: { tls }, relay: { tls } })
      const { reply, messages, ws } = yield* Effect.acquireRelease(
        Effect.promise(() => originalClient(stack.authenticator.http.port, tls !== undefined)),
        ({ ws }) => Effect.sync(() => ws?.close())
      )
      expect(ws).toBeDefined()
      expect(reply).toMatchObject({
        e: 0,
        per: "D1G1T3R4V5C6",
        cm: "/al",
        cs: { g: "127.0.0.1", h: stack.relay.server.port }
      })
      expect(messages[0]).toEqual({ ty: "s", mt: 9007, ms: { s: "OK:connected:tcp:127.0.0.1" } })
      expect(messages[1]).toMatchObject({ ty: "s", mt: 9100, ms: { s: "ERR:malformed" } })
      const presence = yield* stack.relay.rooms.presence({ accountId: "1", group: "1" })
      // /agent/al admits an agent whatever the body's "at" says.
      expect(presence).toEqual([{ unitName: "122111", actorType: "d" }])
    }).pipe(Effect.provide(TestServices))
  )
})
