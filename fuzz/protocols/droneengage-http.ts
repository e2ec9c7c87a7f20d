import { FastCheck as fc } from "effect"
import { startServer } from "../../bench/lib/servers.ts"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { requestFrom } from "../lib/http.ts"
import { anyString, applyMutation, type Json, mutation, type Mutation, nestingDepth } from "../lib/mutate.ts"

/**
 * DroneEngage authenticator HTTP API (docs/droneengage.md "Client HTTP API"): logins, logout,
 * hardware, account management, health; JSON and form bodies, wrong methods and paths.
 */

type Encoding = "json" | "form" | "text" | "none"

interface DeHttpCase {
  readonly method: string
  readonly path: string
  readonly encoding: Encoding
  readonly body: { readonly [key: string]: Json }
  readonly mutation: Mutation
}

/** Placeholder for a live admin session id, filled in when the case is sent. */
const SID = "$sid"

/** Most login bodies are refused before the argon2id check, which costs ~0.3 s of a core by design. */
const notAString = fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }), fc.boolean())
const login = fc.record({
  acc: fc.oneof(
    { weight: 1, arbitrary: fc.constant("bench") },
    { weight: 1, arbitrary: anyString },
    { weight: 4, arbitrary: notAString }
  ),
  pwd: fc.oneof(fc.constant("bench-access-code-0001"), anyString),
  gr: fc.oneof(fc.constant("1"), anyString),
  app: fc.constant("fuzz"),
  ver: fc.constant("1"),
  ex: fc.constant(""),
  at: fc.constantFrom("g", "d")
})
const sid = fc.oneof(fc.constant(SID), anyString)
/** With the admin sid, c/r/g hash or verify access codes (argon2id): a small share again. */
const management = fc.record({
  scm: fc.constantFrom("c", "r", "g", "x", ""),
  sid: fc.oneof({ weight: 1, arbitrary: fc.constant(SID) }, { weight: 5, arbitrary: anyString }),
  acc: anyString,
  prm: fc.oneof(fc.integer(), fc.constant("0xff")),
  il: fc.nat(10),
  pwd: anyString
})

/**
 * Routes and their weights. A well-formed login costs an argon2id verification (tens of ms, on
 * purpose), so logins are a small share of the cases and the fast paths get the volume.
 */
const routes: ReadonlyArray<[string, fc.Arbitrary<{ readonly [key: string]: Json }>, number]> = [
  ["/w/wl", login, 1],
  ["/agent/al", login, 1],
  ["/w/wo", fc.record({ sid }), 6],
  ["/agent/ah", fc.record({ scm: fc.constantFrom("vh", "x"), sid, hi: anyString, ht: anyString }), 6],
  ["/w/am", management, 6],
  ["/agent/aam", management, 4],
  ["/w/zz", fc.constant({}), 3],
  ["/h/health", fc.constant({}), 3],
  ["/nope", fc.constant({}), 3]
]

const arbitrary: fc.Arbitrary<DeHttpCase> = fc
  .tuple(fc.oneof(...routes.map(([, , weight], index) => ({ weight, arbitrary: fc.constant(index) }))), fc.boolean())
  .chain(([route, slash]) =>
    fc.record({
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant("POST") },
        { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "PATCH") }
      ),
      path: fc.constant(routes[route]![0] + (slash ? "/" : "")),
      encoding: fc.oneof(
        { weight: 6, arbitrary: fc.constant<Encoding>("json") },
        { weight: 1, arbitrary: fc.constantFrom<Encoding>("form", "text", "none") }
      ),
      body: routes[route]![1],
      mutation
    })
  )

const formOf = (bytes: Uint8Array): string => {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString()) as unknown
    if (value === null || typeof value !== "object" || Array.isArray(value)) return Buffer.from(bytes).toString()
    return new URLSearchParams(
      Object.entries(value).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])
    ).toString()
  } catch {
    return Buffer.from(bytes).toString()
  }
}

const contentType: Record<Encoding, string | undefined> = {
  json: "application/json",
  form: "application/x-www-form-urlencoded",
  text: "text/plain",
  none: undefined
}

const judge = (testCase: DeHttpCase, sent: Uint8Array, status: number, reply: string): Array<Violation> => {
  const violations: Array<Violation> = []
  const table = answers.droneengageHttp
  const depth = nestingDepth(sent)
  let parsed: any
  try {
    parsed = JSON.parse(reply)
  } catch {}
  if (status === 500 && parsed?.e !== 3) {
    violations.push({
      invariant: "no-internal-error",
      detail: `HTTP 500 with ${reply.length} bytes "${reply.slice(0, 80)}" (input depth ${depth})`,
      ...(depth > 500 ? { defect: "12.3" as const } : {})
    })
    return violations
  }
  const ok = status === 200 && (parsed?.e === 0 || testCase.path.startsWith("/h/health"))
  const documentedStatus =
    (table.statuses as ReadonlyArray<number>).includes(status) ||
    status === table.databaseErrorStatus ||
    (testCase.method === "OPTIONS" && status === 204)
  if (!documentedStatus)
    violations.push({
      invariant: "documented-answer",
      detail: `HTTP ${status} for ${testCase.method} ${testCase.path}`
    })
  const apiPath = testCase.path.startsWith("/w/") || testCase.path.startsWith("/agent/")
  if (apiPath && status !== 413) {
    if (typeof parsed?.e !== "number" || !(table.errorCodes as ReadonlyArray<number>).includes(parsed.e)) {
      violations.push({
        invariant: "documented-answer",
        detail: `HTTP ${status} body is not {"e": <documented code>}: ${reply.slice(0, 120)}`
      })
    }
  } else if (!ok && status !== 413 && (parsed === undefined || typeof parsed !== "object")) {
    violations.push({
      invariant: "documented-answer",
      detail: `HTTP ${status} body is not a JSON reason: ${reply.slice(0, 120)}`
    })
  }
  if (!ok) {
    const input = Buffer.from(sent).toString()
    if (reply.length > MAX_ERROR_REPLY_BYTES || echoes(reply, [input])) {
      violations.push({
        invariant: "no-echo",
        detail: `HTTP ${status} error body of ${reply.length} bytes for a ${sent.length}-byte body`,
        defect: "12.2"
      })
    }
    const text = typeof parsed?.em === "string" ? parsed.em : ""
    if (leaksInternals(text))
      violations.push({
        invariant: "no-internals",
        detail: `em shows schema internals: ${text.slice(0, 120)}`,
        defect: "12.4"
      })
  }
  return violations
}

export const droneEngageHttp: FuzzProtocol<DeHttpCase> = {
  name: "droneengage-http",
  title: "DroneEngage authenticator HTTP API",
  arbitrary,
  start: async () => {
    const server = await startServer("relay", {
      env: { AUTHENTICATOR_SESSION_TTL_MS: "60000", AUTHENTICATOR_STORAGE_SINGLE_IS_ADMIN: "true" }
    })
    const target = server.target as Extract<typeof server.target, { protocol: "droneengage" }>
    const credentials = JSON.stringify({ acc: target.account, pwd: target.accessCode, gr: "canary" })
    const adminLogin = (await (
      await fetch(`${target.authUrl}/w/wl`, { method: "POST", body: credentials })
    ).json()) as { sid: string }
    let canaryRounds = 0
    return {
      pids: server.allPids,
      lanes: 32,
      execute: async (_lane, testCase) => {
        const message = JSON.parse(JSON.stringify(testCase.body).replaceAll(`"${SID}"`, JSON.stringify(adminLogin.sid)))
        const { bytes } = applyMutation(message, testCase.mutation)
        const sent = testCase.encoding === "form" ? Buffer.from(formOf(bytes)) : bytes
        const type = contentType[testCase.encoding]
        const withBody = testCase.method !== "GET"
        const response = await fetch(`${target.authUrl}${testCase.path}`, {
          method: testCase.method,
          headers: type ? { "content-type": type } : {},
          ...(withBody ? { body: Buffer.from(sent) } : {})
        })
        const reply = await response.text()
        return judge(testCase, withBody ? sent : new Uint8Array(0), response.status, reply)
      },
      // From another address: health every time, and every 25th round a login (the authenticator asks the relay for a key).
      canary: async () => {
        if (++canaryRounds % 25 !== 0) {
          const health = await requestFrom({
            localAddress: "127.0.0.2",
            url: `${target.authUrl}/h/health`,
            method: "GET"
          })
          if (health.status !== 200 || (JSON.parse(health.body) as { status?: string }).status !== "OK")
            throw new Error(`canary health: HTTP ${health.status}`)
          return
        }
        const { status, body } = await requestFrom({
          localAddress: "127.0.0.2",
          url: `${target.authUrl}/w/wl`,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: credentials
        })
        if (status !== 200 || (JSON.parse(body) as { e?: number }).e !== 0)
          throw new Error(`canary login: HTTP ${status} ${body.slice(0, 100)}`)
      },
      stop: server.stop
    }
  }
}
