import { FastCheck as fc } from "effect"
import { answers, echoes, leaksInternals, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { requestFrom } from "../lib/http.ts"
import { anyString, applyMutation, type Json, mutation, type Mutation, nestingDepth } from "../lib/mutate.ts"
import { channelName, startHydrogen } from "./hydrogen-ws.ts"

/**
 * Hydrogen HTTP on the WebSocket's port (docs/hydrogen.md "HTTP on the same port"): the server API
 * (/api/publish, /api/batch, /api/tokens) with broken bodies and credentials, and the read-only
 * routes with wrong methods.
 */

type Credential = "key" | "bearer" | "wrong" | "none"

interface HydrogenHttpCase {
  readonly method: string
  readonly path: string
  readonly credential: Credential
  readonly contentType: string | null
  readonly body: { readonly [key: string]: Json }
  readonly mutation: Mutation
}

const publication = fc.record(
  {
    channel: channelName,
    action: fc.oneof(fc.constantFrom("created", "x"), anyString),
    data: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
    priority: fc.constantFrom("normal", "high", "low"),
    ack: fc.boolean(),
    idempotencyKey: fc.oneof(fc.constantFrom("k1", "k2"), anyString)
  },
  { requiredKeys: ["channel", "action"] }
)

const routes: ReadonlyArray<[string, fc.Arbitrary<{ readonly [key: string]: Json }>]> = [
  ["/api/publish", publication],
  ["/api/batch", fc.record({ publications: fc.array(publication, { maxLength: 5 }) })],
  [
    "/api/tokens",
    fc.record(
      {
        subject: anyString,
        permissions: fc.array(
          fc.oneof(fc.constantFrom("subscribe", "publish:chat", "api", "tokens", "*", "host"), anyString),
          { maxLength: 4 }
        ),
        ttlSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.integer())
      },
      { requiredKeys: ["subject"] }
    )
  ],
  ["/health", fc.constant({})],
  ["/status", fc.constant({})],
  ["/api/nope", fc.constant({})]
]

const arbitrary: fc.Arbitrary<HydrogenHttpCase> = fc.nat(routes.length - 1).chain((route) =>
  fc.record({
    method: fc.oneof(
      { weight: 8, arbitrary: fc.constant("POST") },
      { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE") }
    ),
    path: fc.constant(routes[route]![0]),
    credential: fc.oneof(
      { weight: 6, arbitrary: fc.constant<Credential>("key") },
      { weight: 1, arbitrary: fc.constantFrom<Credential>("bearer", "wrong", "none") }
    ),
    contentType: fc.constantFrom("application/json", "application/json", "text/plain", null),
    body: routes[route]![1],
    mutation
  })
)

const judge = (testCase: HydrogenHttpCase, sent: Uint8Array, status: number, reply: string): Array<Violation> => {
  const depth = nestingDepth(sent)
  if (status === 500) {
    return [
      {
        invariant: "no-internal-error",
        detail: `HTTP 500, ${reply.length} bytes (input depth ${depth})`,
        ...(depth > 500 ? { defect: "12.3" as const } : {})
      }
    ]
  }
  const violations: Array<Violation> = []
  if (!(answers.hydrogen.httpStatuses as ReadonlyArray<number>).includes(status)) {
    violations.push({
      invariant: "documented-answer",
      detail: `HTTP ${status} for ${testCase.method} ${testCase.path}`
    })
  }
  if (status < 400) return violations
  let parsed: any
  try {
    parsed = JSON.parse(reply)
  } catch {}
  const error = parsed?.error
  // 413 comes from the transport's body limit before Hydrogen sees the request: {"error": "<short reason>"}.
  const transportRefusal = status === 413 && typeof error === "string"
  const apiError = testCase.path.startsWith("/api/") && status !== 404 && status !== 405 && !transportRefusal
  if (apiError) {
    const codes = answers.hydrogen.errorCodes[String(error?.category)]
    if (!codes || !codes.includes(String(error?.code))) {
      violations.push({
        invariant: "documented-answer",
        detail: `HTTP ${status} without a documented {"error":{category, code}}: ${reply.slice(0, 120)}`
      })
    }
  } else if (error === undefined) {
    violations.push({
      invariant: "documented-answer",
      detail: `HTTP ${status} without a JSON reason: ${reply.slice(0, 120)}`
    })
  }
  if (reply.length > MAX_ERROR_REPLY_BYTES || echoes(reply, [Buffer.from(sent).toString()])) {
    violations.push({
      invariant: "no-echo",
      detail: `HTTP ${status} error body of ${reply.length} bytes for a ${sent.length}-byte body`,
      defect: "12.2"
    })
  }
  if (leaksInternals(JSON.stringify(error ?? ""))) {
    violations.push({
      invariant: "no-internals",
      detail: `error shows schema internals: ${JSON.stringify(error).slice(0, 120)}`,
      defect: "12.4"
    })
  }
  return violations
}

export const hydrogenHttp: FuzzProtocol<HydrogenHttpCase> = {
  name: "hydrogen-http",
  title: "Hydrogen HTTP API",
  arbitrary,
  start: async () => {
    const { server, target, port } = await startHydrogen()
    const base = `http://127.0.0.1:${port}`
    const authorization: Record<Credential, string | undefined> = {
      key: `Key ${target.key}`,
      bearer: `Bearer ${target.key}`,
      wrong: "Key not-the-key",
      none: undefined
    }
    let canaryRound = 0
    return {
      pids: server.pids,
      lanes: 32,
      execute: async (_lane, testCase) => {
        const { bytes } = applyMutation(testCase.body, testCase.mutation)
        const headers: Record<string, string> = {}
        const credential = authorization[testCase.credential]
        if (credential) headers.Authorization = credential
        if (testCase.contentType) headers["Content-Type"] = testCase.contentType
        const withBody = testCase.method !== "GET"
        const response = await fetch(`${base}${testCase.path}`, {
          method: testCase.method,
          headers,
          ...(withBody ? { body: Buffer.from(bytes) } : {})
        })
        return judge(testCase, withBody ? bytes : new Uint8Array(0), response.status, await response.text())
      },
      // From another address (a block earned by wrong keys on 127.0.0.1 must not touch it): publish, then health.
      canary: async () => {
        const publish = ++canaryRound % 2 === 0
        const { status, body } = await requestFrom({
          localAddress: "127.0.0.2",
          url: `${base}${publish ? "/api/publish" : "/health"}`,
          method: publish ? "POST" : "GET",
          headers: { Authorization: `Key ${target.key}`, "Content-Type": "application/json" },
          ...(publish
            ? { body: JSON.stringify({ channel: "canary", action: "ping", data: { round: canaryRound } }) }
            : {})
        })
        if (status !== 200)
          throw new Error(`canary ${publish ? "publish" : "health"}: HTTP ${status} ${body.slice(0, 100)}`)
      },
      stop: server.stop
    }
  }
}
