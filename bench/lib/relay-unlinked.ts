/**
 * The relay's client side as programs/relay.ts builds it (Bun transport, in-process rooms, memory
 * login keys, the real RelayProtocol) without the authenticator link: POST /w/wl issues a login key
 * here, answering as the authenticator would. For bench/instructions.ts only: valgrind cannot run
 * Bun's HTTP client (its header parser uses an SSE4.2 form valgrind 3.19 lacks), which the link dials with.
 * Env: PORT. Prints nothing; the caller waits for the port.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { runProgram } from "../../layers/Program/runProgram.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { makeLoginKeys } from "../../src/droneengage/LoginKeys.ts"
import { loginKeyKind } from "../../src/droneengage/Relay.ts"
import { makeRelayProtocol } from "../../src/droneengage/RelayProtocol.ts"
import { LoginRequestData } from "../../src/droneengage/S2S.ts"
import { encodeLoginRequest } from "../../src/droneengage/S2SFast.ts"
import { UnitRooms, UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"

const port = Number(process.env.PORT ?? 0)
const LoginBody = Schema.Struct({ gr: Schema.String })

const relay = Effect.gen(function* () {
  const transport = yield* Transport
  const rooms = yield* UnitRooms
  const keys = yield* makeLoginKeys(LoginRequestData, {
    kind: loginKeyKind,
    ttl: "60 seconds",
    encode: encodeLoginRequest
  })
  const protocol = yield* makeRelayProtocol({ serverName: "relay", keys, rooms, onLeft: () => {} })
  let logins = 0
  const login = Effect.gen(function* () {
    const body = yield* HttpServerRequest.schemaBodyJson(LoginBody)
    const grant = { r: String(++logins), a: "bench", b: body.gr, at: "g" as const, il: 0, prm: 0xffffffff }
    const key = yield* keys.issue(grant)
    return HttpServerResponse.unsafeJson({ e: 0, cs: { f: key, g: "127.0.0.1", h: port } })
  })
  const http = HttpRouter.empty.pipe(
    HttpRouter.post("/w/wl", Effect.orDie(login)),
    Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
  )
  yield* transport.serve({
    name: "relay",
    port,
    hostname: "127.0.0.1",
    limits: defaultSocketLimits,
    http,
    websocket: protocol
  })
})

runProgram(
  Layer.scopedDiscard(relay).pipe(
    Layer.provide(Layer.mergeAll(BunTransportLive, UnitRoomsLive("relay"), MemoryTokensLive)),
    Layer.provide(InProcessRoomsLive)
  )
)
