import { ConfigProvider, Effect, Exit, Layer, Scope, TestClock } from "effect"
import { MemoryFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { type MemoryClient, MemoryNetwork, MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import { type Incoming, NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import {
  type NeighbourhoodConfig,
  NeighbourhoodConfig as NeighbourhoodConfigSchema
} from "../../src/neighbourhood/Config.ts"
import {
  exportPrivatePem,
  exportPublicPem,
  fingerprintOf,
  generateKeyPair,
  spkiFromPem
} from "../../src/neighbourhood/Crypto.ts"
import { type NeighbourhoodServer, serveNeighbourhood, type ServerIdentity } from "../../src/neighbourhood/Server.ts"
import { brokerCallsAnswered } from "./brokerCalls.ts"

/** The in-memory world of a mesh test: transport, links and rooms doubles. */
export const MeshTestLayer = Layer.mergeAll(MemoryFederationLive, InProcessRoomsLive).pipe(
  Layer.provideMerge(MemoryTransportTest)
)

export interface ServerKeys {
  readonly identity: ServerIdentity
  readonly privatePem: string
}

export const makeServerKeys = async (): Promise<ServerKeys> => {
  const pair = await generateKeyPair()
  const publicPem = await exportPublicPem(pair.publicKey)
  return {
    identity: { signKey: pair.privateKey, publicPem, fingerprint: await fingerprintOf(spkiFromPem(publicPem)!) },
    privatePem: await exportPrivatePem(pair.privateKey)
  }
}

/** Keys are costly to make: every test of a file shares these. */
export const serverKeys = await Promise.all([makeServerKeys(), makeServerKeys(), makeServerKeys()])
export const clientPems = await Promise.all(
  Array.from({ length: 5 }, async () => exportPrivatePem((await generateKeyPair()).privateKey))
)

export const basePort = 9100
export const addressOf = (i: number) => `server${i}`
export const portOf = (i: number) => basePort + i

/** A server's config through the real config schema, as its JSON file would say it. */
export const configFor = (i: number, count: number, extra: Record<string, unknown> = {}): NeighbourhoodConfig => {
  const neighbours = Array.from({ length: count }, (_, j) => j)
    .filter((j) => j !== i)
    .map((j) => ({
      address: addressOf(j),
      url: `ws://memory:${portOf(j)}/`,
      publicKey: serverKeys[j]!.identity.publicPem
    }))
  const json = {
    neighbourhood: { port: portOf(i), address: addressOf(i), neighbours, files: { backend: "memory" }, ...extra }
  }
  return Effect.runSync(Effect.withConfigProvider(NeighbourhoodConfigSchema, ConfigProvider.fromJson(json)))
}

export interface RunningServer {
  readonly server: NeighbourhoodServer
  readonly scope: Scope.CloseableScope
  readonly stop: Effect.Effect<void>
}

export const startServer = (i: number, count: number, extra: Record<string, unknown> = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const config = configFor(i, count, extra)
    const neighbours = config.neighbours.map((n) => ({
      address: n.address,
      url: n.url,
      publicKeyPem: (n.publicKey as any).value as string
    }))
    const server = yield* serveNeighbourhood({
      config,
      identity: serverKeys[i]!.identity,
      neighbours,
      name: addressOf(i)
    }).pipe(Scope.extend(scope))
    return { server, scope, stop: Scope.close(scope, Exit.void) } satisfies RunningServer
  })

/**
 * 100 ms of the TestClock, then a turn of the event loop for the in-memory sockets (no time passes), then
 * the answers of the cluster nodes' broker calls (brokerCalls.ts; none without a broker).
 */
export const step = Effect.zipRight(
  TestClock.adjust("100 millis"),
  Effect.zipRight(
    Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))),
    brokerCallsAnswered
  )
)

/** Moves the TestClock in small steps until `done` holds (links re-dial on backoff timers). */
export const advanceUntil = (done: () => boolean, label: string, steps = 200) =>
  Effect.gen(function* () {
    for (let i = 0; i < steps; i++) {
      if (done()) return
      yield* step
    }
    if (!done()) return yield* Effect.dieMessage(`never happened: ${label}`)
  })

/** Every server's links to every other are up. */
export const meshUp = (servers: ReadonlyArray<RunningServer>) => () =>
  servers.every((s) =>
    [...s.server.mesh.neighbours.values()].every((n) => n.outbound !== undefined && n.inbound !== undefined)
  )

export interface TestClient {
  readonly client: NeighbourhoodClient
  readonly socket: MemoryClient
  readonly send: (frame: string | Promise<string>) => Effect.Effect<void>
  /** The next frame as the client library reads it. */
  readonly next: Effect.Effect<Incoming>
  readonly nextRaw: Effect.Effect<string>
  /** Asks for the client list and returns it (frames before it fail the test). */
  readonly clientList: Effect.Effect<Extract<Incoming, { kind: "client_list" }>>
  /** Proves nothing else is waiting: a client_list request must be answered next. */
  readonly expectNothingElse: Effect.Effect<void>
}

export const connectClient = (port: number, key: string | NeighbourhoodClient, hello = true) =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const client = typeof key === "string" ? yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(key)) : key
    const socket = yield* network.connect(port, "/")
    const send = (frame: string | Promise<string>) =>
      Effect.promise(async () => frame).pipe(Effect.flatMap((text) => socket.send(text)))
    const nextRaw = Effect.map(socket.next(), (frame) =>
      typeof frame === "string" ? frame : new TextDecoder().decode(frame)
    )
    const next = Effect.flatMap(nextRaw, (text) => Effect.promise(() => client.read(text)))
    const clientList = Effect.gen(function* () {
      yield* send(client.clientListRequest())
      const incoming = yield* next
      if (incoming.kind !== "client_list")
        return yield* Effect.dieMessage(`expected client_list, got ${JSON.stringify(incoming)}`)
      return incoming
    })
    const expectNothingElse = Effect.asVoid(clientList)
    if (hello) yield* send(client.hello())
    return { client, socket, send, next, nextRaw, clientList, expectNothingElse } satisfies TestClient
  })

/** Addresses → sorted fingerprints, from a client list. */
export const listing = (incoming: Extract<Incoming, { kind: "client_list" }>) =>
  Object.fromEntries(incoming.servers.map((s) => [s.address, s.clients.map((c) => c.fingerprint).sort()]))

/** Polls the client list (advancing the clock) until it equals `expected`. */
export const listConverges = (client: TestClient, expected: Record<string, ReadonlyArray<string>>, steps = 200) =>
  Effect.gen(function* () {
    const want = JSON.stringify(
      Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, [...v].sort()])).valueOf()
    )
    let last = ""
    for (let i = 0; i < steps; i++) {
      const got = listing(yield* client.clientList)
      last = JSON.stringify(
        Object.fromEntries(
          Object.keys(got)
            .sort()
            .map((k) => [k, got[k]])
        )
      )
      const wantSorted = JSON.stringify(
        Object.fromEntries(
          Object.keys(JSON.parse(want))
            .sort()
            .map((k) => [k, JSON.parse(want)[k]])
        )
      )
      if (last === wantSorted) return
      yield* step
    }
    return yield* Effect.dieMessage(`client list did not converge: ${last}`)
  })
