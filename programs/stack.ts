/**
 * Every Switchboard server in one process on embedded defaults: what `npm start` runs.
 * Made of: the DroneEngage authenticator and relay (sharing one generated S2S secret and one
 * account store), the tPacket chat server, the Hydrogen server (with a generated dev key), one
 * Neighbourhood server (its RSA key generated in ./data), and a banner that says where each one listens.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Config, Console, Effect, Layer, Option, Redacted } from "effect"
import { StackSecrets } from "../layers/Config/StackSecrets.ts"
import { runProgram } from "../layers/Program/runProgram.ts"
import { InProcessRoomsLive } from "../layers/Rooms/InProcessRooms.ts"
import { StreamStoreFromConfig } from "../layers/Storage/StorageFromConfig.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import { AuthenticatorConfig, RelayConfig } from "../src/droneengage/Config.ts"
import { HydrogenConfig } from "../src/hydrogen/Config.ts"
import { ChatConfig, chatHistoryStorage } from "../src/chat/Config.ts"
import { ChatServerLive } from "../src/chat/Server.ts"
import { ensureDevAccount } from "../src/droneengage/Authenticator.ts"
import { AliyaGatewayLive } from "./servers/aliya-gateway.ts"
import { AliyaManagersLive } from "./servers/aliya-managers.ts"
import { AliyaTokensLive } from "./servers/aliya-tokens.ts"
import { AuthenticatorFrom, AuthenticatorStorage } from "./servers/authenticator.ts"
import { HydrogenLive } from "./servers/hydrogen.ts"
import { NeighbourhoodLive } from "./servers/neighbourhood.ts"
import { NeighbourhoodConfig } from "../src/neighbourhood/Config.ts"
import { RelayFrom } from "./servers/relay.ts"

/** A listener's address as a client dials it: the secure scheme when that listener has TLS. */
const url = (scheme: "http" | "ws", port: number, tls: unknown = undefined) =>
  `${tls ? `${scheme}s` : scheme}://127.0.0.1:${port}`

/** On first start (empty account store): the "dev" admin account, its code kept for the banner. */
const DevAccount = Layer.effectDiscard(
  Effect.gen(function* () {
    const secrets = yield* StackSecrets
    const created = yield* ensureDevAccount
    if (Option.isSome(created)) yield* secrets.rememberDevAccount(created.value)
  })
)

/** Every listener's address and the dev account's credentials. */
const Banner = Layer.effectDiscard(
  Effect.gen(function* () {
    const secrets = yield* StackSecrets
    const authenticator = yield* AuthenticatorConfig
    const relay = yield* RelayConfig
    const chat = yield* ChatConfig
    const hydrogen = yield* HydrogenConfig
    const neighbourhood = yield* NeighbourhoodConfig
    const dev = yield* secrets.devAccount
    const aliyaPort = yield* Config.integer("port").pipe(
      Config.withDefault(8880),
      Config.nested("gateway"),
      Config.nested("aliya")
    )
    const lines = [
      "Switchboard is running:",
      `  DroneEngage authenticator  ${url("http", authenticator.port, authenticator.tls)}  (login: POST /w/wl, /agent/al; relays link on ${url("ws", authenticator.s2sPort, authenticator.s2sTls)})`,
      `  DroneEngage relay          ${url("ws", relay.port, relay.tls)}/?f=<key>&s=<unit>  (metrics ${url("http", relay.port, relay.tls)}/metrics)`,
      `  tPacket chat               ${url("ws", chat.port)}  (web page ${url("http", chat.port)}/)`,
      hydrogen.enabled
        ? `  Hydrogen                   ${url("ws", hydrogen.port, hydrogen.secureMode === "tls")}  (subprotocol ${hydrogen.protocol}; header "Authorization: Key ${Redacted.value(secrets.hydrogenKey)}")`
        : "  Hydrogen                   disabled (hydrogen.Enabled is false)",
      `  Neighbourhood (OLAF v1.2)  ${url("ws", neighbourhood.port)}  (address ${neighbourhood.address}; page ${url("http", neighbourhood.port)}/; key ${neighbourhood.keyPath})`,
      `  Aliya gateway              tcp://127.0.0.1:${aliyaPort}  (AES-256-GCM key: ${secrets.dataDir}/aliya-gateway-key; tokens ${url("http", 8080)}, managers on 127.0.0.1:8081-8087)`,
      Option.match(dev, {
        onNone: () => "  dev account: exists, but its access code was not kept here (regenerate it through /w/am)",
        onSome: ({ name, accessCode }) =>
          `  dev account: ${name} / ${accessCode}  (admin, all permissions; kept in ${secrets.devAccountFile}, mode 0600)`
      }),
      "Stop with Ctrl-C."
    ]
    yield* Console.log(lines.join("\n"))
  })
)

const Chat = ChatServerLive.pipe(
  Layer.provide(
    Layer.mergeAll(BunTransportLive, InProcessRoomsLive, StreamStoreFromConfig(chatHistoryStorage), BunFileSystem.layer)
  )
)

const DroneEngage = Layer.unwrapEffect(
  Effect.gen(function* () {
    const authenticator = yield* AuthenticatorConfig
    const relay = yield* RelayConfig
    return Layer.merge(AuthenticatorFrom(authenticator), RelayFrom(relay))
  })
)

/** Aliya's three parts, with their generated secrets (kept in the data directory). */
const Aliya = Layer.mergeAll(AliyaManagersLive, AliyaTokensLive, AliyaGatewayLive)

/** Servers first, then the banner; the secrets layer feeds the S2S secret into both programs' config. */
export const StackLive = Banner.pipe(
  Layer.provide(Layer.mergeAll(DroneEngage, Chat, HydrogenLive, NeighbourhoodLive, Aliya)),
  Layer.provide(DevAccount),
  Layer.provideMerge(AuthenticatorStorage),
  Layer.provide(StackSecrets.WithConfigFallback)
)

if (import.meta.main) runProgram(StackLive)
