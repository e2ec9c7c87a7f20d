import { Effect, Either, Schema } from "effect"
import { describeParseError } from "./SchemaErrors.ts"
import { closedState, type UdpProxyService, type UnitKey } from "./UdpProxy.ts"
import { type Envelope, type SystemOutcome, Target } from "./Wire.ts"

/** System message 9008 on the wire: the request schema and the reply the original sends. */

const ProxySocket = Schema.Struct({
  address: Schema.optional(Schema.String.pipe(Schema.maxLength(255))),
  port: Schema.optional(Schema.Int.pipe(Schema.between(0, 65535)))
})

/** The 9008 request body: en true opens (socket ports are wishes, honoured only with fixed ports allowed), false closes. */
export const UdpProxyRequest = Schema.Struct({
  en: Schema.Boolean,
  socket1: Schema.optional(ProxySocket),
  socket2: Schema.optional(ProxySocket)
})
const decodeProxyRequest = Schema.decodeUnknownEither(UdpProxyRequest)

/**
 * Answers one 9008 from an agent as the original does: the request turned around (ty "i", tg the
 * unit, sd "_SYS_") with ms {socket1, socket2, en}. A refused open answers en false with the
 * reason in ms.em, so the agent turns its proxy off; a malformed body is an error reply.
 */
export const answerUdpProxy = (
  proxy: UdpProxyService,
  unit: UnitKey,
  envelope: Envelope
): Effect.Effect<SystemOutcome> => {
  const decoded = decodeProxyRequest(envelope.ms)
  if (Either.isLeft(decoded)) {
    return Effect.succeed({
      _tag: "Refused",
      reason: "udp-proxy-invalid",
      text: `${describeParseError(decoded.left, "ms")} (ms is {en, socket1?: {address, port}, socket2?: {address, port}})`
    })
  }
  const { p: _permission, ...request } = envelope
  const reply = (ms: unknown): SystemOutcome => ({
    _tag: "Replies",
    frames: [JSON.stringify({ ...request, ty: "i", tg: unit.unitName, sd: Target.system, ms })]
  })
  const { en, socket1, socket2 } = decoded.right
  if (!en) return Effect.map(proxy.close(unit), reply)
  return proxy.open(unit, { port1: socket1?.port ?? 0, port2: socket2?.port ?? 0 }).pipe(
    Effect.map(reply),
    Effect.catchTag("UdpProxyRefused", (refused) => Effect.succeed(reply({ ...closedState, em: refused.message })))
  )
}
