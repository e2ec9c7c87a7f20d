import { Clock, Duration, Effect, Either } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import type { HydrogenError } from "./Errors.ts"
import { anonymous, type Identity, mayConnect } from "./Permissions.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { credentialOf, redactUrl } from "./Auth.ts"
import { accept, reject, type WebSocketProtocol } from "../../layers/Transport/Transport.ts"
import type { ConnectionStatesTracker } from "./ConnectionStates.ts"
import type { HydrogenConnectionData } from "./Session.ts"
import { type RateLimits, tooManyFailures } from "./RateLimits.ts"

/**
 * The upgrade of a hydrogen-protocol WebSocket: the address's connection rate, the subprotocol,
 * the credential (API key or session token, with failed-credential blocking) and the right to
 * connect. A refusal is a plain HTTP response with a JSON reason, counted by status.
 */
export const makeUpgrade = (deps: {
  readonly settings: HydrogenSettings
  readonly authenticate: (credential: string) => Effect.Effect<Identity, HydrogenError>
  readonly rateLimits: RateLimits
  readonly states: ConnectionStatesTracker
  readonly metrics: typeof Metrics.Service
}): WebSocketProtocol<HydrogenConnectionData>["upgrade"] => {
  const { settings, rateLimits, states } = deps
  const refused = deps.metrics.counter(
    "switchboard_hydrogen_upgrades_refused_total",
    "Refused upgrades by HTTP status",
    ["status"]
  )
  const blockSeconds = String(Math.ceil(Duration.toSeconds(settings.blockDuration)))

  const refuse = (
    label: Record<string, unknown>,
    last: "Failed" | "Rejected",
    statusCode: number,
    reason: string,
    headers?: Record<string, string>
  ) => {
    refused.inc({ status: String(statusCode) })
    const path =
      last === "Failed" ? (["Connecting", "Failed"] as const) : (["Connecting", "Verifying", "Rejected"] as const)
    return states
      .upgradePath(label, path)
      .pipe(
        Effect.zipRight(Effect.logDebug(`upgrade refused: ${statusCode} ${reason}`).pipe(Effect.annotateLogs(label))),
        Effect.as(reject(statusCode, reason, headers))
      )
  }

  return (request, info) =>
    Effect.gen(function* () {
      // The URL may carry ?key=: logs get it masked.
      const label = { remote: info.remoteAddress, path: redactUrl(info.url) }
      const now = yield* Clock.currentTimeMillis
      const admission = rateLimits.admitConnection(info.remoteAddress, now)
      if (admission !== "ok") {
        return yield* refuse(
          label,
          "Failed",
          429,
          admission === "blocked"
            ? "this address is temporarily blocked"
            : "too many connections from this address; blocked for a while",
          { "retry-after": blockSeconds }
        )
      }
      const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
      if (!offered.includes(settings.protocol)) {
        return yield* refuse(label, "Failed", 400, `the WebSocket subprotocol must be "${settings.protocol}"`)
      }
      const credential = credentialOf(request.headers, info.url)
      let identity: Identity = anonymous
      if (credential === undefined) {
        if (settings.authRequired)
          return yield* refuse(
            label,
            "Rejected",
            401,
            "credentials required: Authorization: Key <token> or ?key=<token>"
          )
      } else {
        const blockedFor = rateLimits.credentialsBlocked(info.remoteAddress, now)
        if (blockedFor > 0)
          return yield* refuse(label, "Rejected", 429, tooManyFailures, { "retry-after": String(blockedFor) })
        const result = yield* Effect.either(deps.authenticate(credential))
        if (Either.isLeft(result)) {
          const wait = rateLimits.credentialFailed(info.remoteAddress, now)
          if (wait > 0) return yield* refuse(label, "Rejected", 429, tooManyFailures, { "retry-after": String(wait) })
          return yield* refuse(label, "Rejected", 401, result.left.message)
        }
        identity = result.right
      }
      if (!mayConnect(identity))
        return yield* refuse(label, "Rejected", 403, "this credential may not open WebSocket connections")
      yield* states.upgradePath(label, ["Connecting", "Verifying", "Established"])
      return accept({ identity, remoteAddress: info.remoteAddress }, { "Sec-WebSocket-Protocol": settings.protocol })
    })
}
