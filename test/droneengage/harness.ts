import { FileSystem } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { Duration, Effect, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import { MemoryFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { HardwareStore, MemoryHardwareStore } from "../../layers/Storage/HardwareStore.ts"
import { MemoryAccountStoreTest } from "../../layers/Storage/MemoryAccountStore.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { type MemoryClient, MemoryNetwork, MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import { MemoryDatagramNetwork, MemoryUdp } from "../../layers/Udp/MemoryUdp.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import {
  type AuthenticatorConfig,
  defaultTasksConfig,
  defaultUdpProxyConfig,
  type RelayConfig
} from "../../src/droneengage/Config.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import { Permission } from "../../src/storage/Account.ts"

/**
 * The DroneEngage protocol suites' harness: authenticator and relay on the in-memory doubles
 * (MemoryTransport, in-process Rooms, memory Tokens, MemoryFederation, memory stores, a file
 * system of named strings) under TestClock. Nothing here waits for time: every wait is for an
 * event (a frame, a close, a registry event). realSockets.ts has the real-socket variant.
 */
export const secret = Redacted.make("test shared secret 0123456789")

export const authenticatorConfig = (overrides: Partial<AuthenticatorConfig> = {}): AuthenticatorConfig => ({
  port: 0,
  hostname: "127.0.0.1",
  serverId: "auth-test",
  tls: undefined,
  s2sTls: undefined,
  s2sPort: 0,
  s2sHostname: "127.0.0.1",
  s2sSecret: Option.some(secret),
  s2sTrustedKeys: new Map(),
  allowUnauthenticatedServers: false,
  s2sHandshakeTimeout: Duration.seconds(8),
  loginReplyTimeout: Duration.seconds(15),
  sessionTtl: Duration.hours(1),
  sessionSliding: true,
  loginRateLimit: 1000,
  loginRateWindow: Duration.minutes(1),
  loginFailureLimit: 1000,
  loginFailureWindow: Duration.minutes(10),
  loginFailureBlock: Duration.minutes(5),
  s2sLimits: defaultSocketLimits,
  apiLimits: { ...defaultSocketLimits, maxRequestBodyBytes: 64 * 1024 },
  ...overrides
})

export const relayConfig = (authenticatorS2sPort: number, overrides: Partial<RelayConfig> = {}): RelayConfig => ({
  port: 0,
  hostname: "127.0.0.1",
  serverId: "relay-test",
  publicHost: "127.0.0.1",
  publicPort: 0,
  tls: undefined,
  authenticatorUrl: `ws://memory:${authenticatorS2sPort}`,
  s2sSecret: Option.some(secret),
  s2sPrivateKeyPath: Option.none(),
  loginKeyTtl: Duration.seconds(10),
  redialMax: Duration.seconds(2),
  // Every join and leave sends INFO at once (TestClock completes a zero sleep without an adjust).
  infoInterval: Duration.zero,
  limits: defaultSocketLimits,
  udpProxy: defaultUdpProxyConfig,
  tasks: defaultTasksConfig,
  ...overrides
})

/** A file system holding only `files` (path → text), for key files. */
export const memoryFiles = (files: ReadonlyMap<string, string> = new Map()) =>
  FileSystem.layerNoop({
    readFileString: (path) => {
      const text = files.get(path)
      return text === undefined
        ? Effect.fail(
            new SystemError({
              reason: "NotFound",
              module: "FileSystem",
              method: "readFileString",
              pathOrDescriptor: path
            })
          )
        : Effect.succeed(text)
    }
  })

/** Everything both servers need, in memory; the relay's rooms come per relay (relayLayer). */
export const TestServices = Layer.mergeAll(
  MemoryAccountStoreTest,
  MemoryHardwareStore,
  MemoryTokensLive,
  MemoryFederationLive,
  memoryFiles()
).pipe(Layer.provideMerge(MemoryTransportTest))

/** The datagram network of the relays' UDP proxies; tests bind their UDP peers on it too. */
export const datagrams = new MemoryDatagramNetwork()

/** One relay's unit rooms (each relay of a test gets its own), UDP on the memory datagram network, tasks in memory. */
export const relayLayer = Layer.mergeAll(
  UnitRoomsLive("relay").pipe(Layer.provide(InProcessRoomsLive)),
  MemoryUdp(datagrams),
  MemoryTaskStore
)

export interface Stack {
  readonly authUrl: string
  readonly authenticator: Effect.Effect.Success<ReturnType<typeof startAuthenticator>>
  readonly relay: Effect.Effect.Success<ReturnType<typeof startRelay>>
}

/** Completes once some authenticated relay has reported INFO. */
export const relayOnline = (authenticator: Stack["authenticator"], serverId?: string) =>
  authenticator.commServers.awaitStatus((status) =>
    status.some((s) => s.online && (serverId === undefined || s.serverId === serverId))
  )

/** Authenticator and relay on the memory network, linked over the S2S link, INFO received. */
export const startStack = (options: { auth?: Partial<AuthenticatorConfig>; relay?: Partial<RelayConfig> } = {}) =>
  Effect.gen(function* () {
    const authenticator = yield* startAuthenticator(authenticatorConfig(options.auth))
    const relay = yield* startRelay(relayConfig(authenticator.s2s.port, options.relay)).pipe(Effect.provide(relayLayer))
    yield* relayOnline(authenticator)
    return { authUrl: authenticator.http.url, authenticator, relay } satisfies Stack
  })

export const seedAccounts = Effect.gen(function* () {
  const accounts = yield* AccountStore
  const make = (name: string, permission: number, extra: { isAdmin?: boolean; instanceLimit?: number } = {}) =>
    accounts.create({ name, permission, accessCode: `${name}-code`, ...extra })
  yield* make("alpha", Permission.all)
  yield* make("beta", Permission.all)
  yield* make("gcs-only", Permission.gcs)
  yield* make("agent-only", Permission.agent)
  yield* make("admin", Permission.all, { isAdmin: true })
  yield* make("limited", Permission.all, { instanceLimit: 2 })
  const hardware = yield* HardwareStore
  const alpha = yield* accounts.findByName("alpha")
  if (Option.isSome(alpha))
    yield* hardware.register({ accountId: alpha.value.id, hardwareId: "hw-1", hardwareType: "px4" })
})

/** An HTTP request to a memory server, by its URL (http://memory:<port>/path). */
export const request = (url: string, init: RequestInit = {}, remoteAddress = "127.0.0.1") =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    return yield* network.fetch(Number(new URL(url).port), new Request(url, init), remoteAddress)
  })

export const post = (url: string, body: unknown, contentType = "application/json", remoteAddress = "127.0.0.1") =>
  Effect.gen(function* () {
    const response = yield* request(
      url,
      {
        method: "POST",
        headers: { "content-type": contentType },
        body: typeof body === "string" ? body : JSON.stringify(body)
      },
      remoteAddress
    )
    const text = yield* Effect.promise(() => response.text())
    return { status: response.status, headers: response.headers, body: JSON.parse(text) as any }
  })

export const getJson = (url: string) =>
  Effect.flatMap(request(url), (response) => Effect.promise(() => response.json() as Promise<any>))

export const login = (stack: Stack, account: string, actor: "g" | "d", group = "1") =>
  post(`${stack.authUrl}${actor === "g" ? "/w/wl" : "/agent/al"}`, {
    acc: account,
    pwd: `${account}-code`,
    gr: group,
    app: "test",
    ver: "1",
    ex: "x"
  })

/** A connection to a memory server (a WebSocket without sockets). */
export const connect = (port: number, path: string) =>
  Effect.flatMap(MemoryNetwork, (network) =>
    network.connect(port, path).pipe(
      Effect.mapError((closed) => new Error(`connect refused: ${closed.code} ${closed.reason}`)),
      Effect.orDie
    )
  )

export interface Unit extends MemoryClient {
  readonly name: string
  readonly sid: string
}

/** 9005 ping, then the next frame must be its pong: everything sent to `unit` before the ping has been read by then. */
export const pingPong = (unit: MemoryClient) =>
  Effect.gen(function* () {
    yield* unit.send(JSON.stringify({ ty: "s", mt: 9005, ms: { probe: true } }))
    const frame = yield* unit.nextJson()
    if (frame.mt !== 9005 || frame.ms?.s !== "OK:pong")
      return yield* Effect.dieMessage(`expected the pong, got ${JSON.stringify(frame)}`)
  })

/**
 * A negative check that waits for an event, not for time: nothing reached `unit` before the pong
 * of a ping sent now. Frames are delivered in order, so anything routed to it earlier would be first.
 */
export const expectNothing = pingPong

/** Logs in over HTTP, connects with the returned key and unit name, reads the welcome, and is seated (one ping round trip). */
export const connectUnit = (stack: Stack, account: string, actor: "g" | "d", name: string, group = "1") =>
  Effect.gen(function* () {
    const { body } = yield* login(stack, account, actor, group)
    if (body.e !== 0) return yield* Effect.dieMessage(`login failed: ${JSON.stringify(body)}`)
    const client = yield* connect(body.cs.h, `/?f=${body.cs.f}&s=${encodeURIComponent(name)}`)
    const welcome = yield* client.nextJson()
    if (welcome.mt !== 9007) return yield* Effect.dieMessage(`expected welcome, got ${JSON.stringify(welcome)}`)
    yield* pingPong(client)
    return Object.assign(client, { name, sid: body.sid as string }) satisfies Unit
  })

/** Attempts an upgrade, to read a refusal's HTTP status and reason (101 when accepted). */
export const upgradeAttempt = (port: number, query: string) =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const outcome = yield* Effect.either(network.connect(port, `/?${query}`))
    if (outcome._tag === "Right") return { status: 101, body: undefined }
    return { status: outcome.left.code, body: JSON.parse(outcome.left.reason) as { error: string } }
  })

/** The URL query a login reply tells a client to connect with. */
export const connectQuery = (reply: { cs: { f: string } }, unitName: string) =>
  `f=${reply.cs.f}&s=${encodeURIComponent(unitName)}`

/**
 * Moves TestClock forward in `step`s until `done` completes (at most `steps` times): for waits
 * that end on an event but need clock time first (a re-dial after backoff).
 */
export const advanceUntil = <A, E, R>(
  done: Effect.Effect<A, E, R>,
  step: Duration.DurationInput = "100 millis",
  steps = 100
) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(done)
    for (let i = 0; i < steps; i++) {
      const result = yield* Fiber.poll(fiber)
      if (result._tag === "Some") return yield* Fiber.join(fiber)
      yield* TestClock.adjust(step)
      // Let frames already under way (microtasks) arrive before the next step.
      yield* Effect.promise(() => Promise.resolve())
    }
    yield* Fiber.interrupt(fiber)
    return yield* Effect.dieMessage(`nothing happened within ${steps} clock steps`)
  })
