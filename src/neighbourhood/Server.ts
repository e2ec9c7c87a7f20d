import type { HttpApp } from "@effect/platform"
import { Data, Effect, Option, Queue, Runtime, Schedule, type Scope } from "effect"
import { Claims } from "../../layers/Cluster/Claims.ts"
import { Federation } from "../../layers/Federation/Federation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { ReplayCounters } from "../../layers/Cluster/ReplayCounters.ts"
import { type ServeError, type ServerHandle, Transport } from "../../layers/Transport/Transport.ts"
import { makeKeyedLimiter } from "../shared/RateLimiter.ts"
import type { Neighbour, NeighbourhoodConfig } from "./Config.ts"
import { Counters, RecentSet } from "./Counters.ts"
import { importPublicPem, signData } from "./Crypto.ts"
import { linkTo } from "./Links.ts"
import { Mesh } from "./Mesh.ts"
import type { NeighbourhoodContext } from "./NeighbourFrames.ts"
import { makeNeighbourhoodProtocol } from "./Protocol.ts"
import { type SharedLinks, shareLinks } from "./SharedLinks.ts"
import { encodeSignedData, serverHelloContent } from "./Wire.ts"

/** This server's RSA key: signs its server_hello. */
export interface ServerIdentity {
  readonly signKey: CryptoKey
  readonly publicPem: string
  readonly fingerprint: string
}

export class NeighbourhoodStartError extends Data.TaggedError("NeighbourhoodStartError")<{
  readonly message: string
}> {}

export interface NeighbourhoodServerOptions {
  readonly config: NeighbourhoodConfig
  readonly identity: ServerIdentity
  /** The configured neighbours with their keys as PEM text. */
  readonly neighbours: ReadonlyArray<Neighbour>
  /** Plain HTTP on the same port (the page, the file API, /metrics). */
  readonly http?: HttpApp.Default<never, Metrics | Scope.Scope>
  readonly name?: string
}

export interface NeighbourhoodServer {
  readonly handle: ServerHandle
  readonly mesh: Mesh
}

/** The cluster's replay counters of this server address, when a ReplayCounters service is there. */
const sharedCountersOf = (address: string) =>
  Effect.gen(function* () {
    const shared = yield* Effect.serviceOption(ReplayCounters)
    if (shared._tag === "None") return undefined
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
    return (key: string, counter: number) => runPromise(shared.value.advance(`${address}/${key}`, counter))
  })

/**
 * One Neighbourhood server for the lifetime of the Scope: clients and neighbours on one WebSocket
 * port, an outbound link to every neighbour kept up for ever (Federation.link: jittered re-dial),
 * each opening with a signed server_hello, a client_update_request and our client_update. On nodes
 * sharing one server name (Rooms, Claims and the Federation bus spanning them) each link is held by
 * one node (SharedLinks).
 */
export const serveNeighbourhood = (
  options: NeighbourhoodServerOptions
): Effect.Effect<
  NeighbourhoodServer,
  ServeError | NeighbourhoodStartError,
  Transport | Rooms | Federation | Metrics | Scope.Scope
> =>
  Effect.gen(function* () {
    const { config, identity } = options
    const name = options.name ?? "neighbourhood"
    const transport = yield* Transport
    const rooms = yield* Rooms
    const federation = yield* Federation
    const metrics = yield* Metrics
    const claims = rooms.spansNodes ? Option.getOrUndefined(yield* Effect.serviceOption(Claims)) : undefined
    const linksShared = claims !== undefined && federation.spansNodes === true
    if (rooms.spansNodes && !linksShared && options.neighbours.length > 0) {
      yield* Effect.logWarning(
        "neighbourhood: the clients span nodes but neighbour links cannot be shared (no Claims or cluster bus): each node links to every neighbour"
      )
    }
    let sharedLinks: SharedLinks | undefined

    const neighbours = yield* Effect.forEach(options.neighbours, (n) =>
      Effect.promise(() => importPublicPem(n.publicKeyPem)).pipe(
        Effect.flatMap((key) =>
          typeof key === "string"
            ? Effect.fail(
                new NeighbourhoodStartError({
                  message: `neighbourhood.neighbours: the key of ${n.address} is invalid (${key})`
                })
              )
            : Effect.succeed({ address: n.address, url: n.url, key })
        )
      )
    )
    if (config.compat.unsignedServerHello) {
      yield* Effect.logWarning(
        "INSECURE: neighbourhood.compat.unsignedServerHello is on: listed addresses may connect as servers without proving their key"
      )
    }
    if (config.compat.perConnectionCounters) {
      yield* Effect.logWarning(
        "INSECURE: neighbourhood.compat.perConnectionCounters is on: a captured hello and its messages can be replayed on a new connection"
      )
    }

    const refusals = metrics.counter(
      "switchboard_neighbourhood_refused_total",
      "Client messages refused and connections closed, by reason",
      ["server", "reason"]
    )
    const routedMessages = metrics.counter(
      "switchboard_neighbourhood_routed_total",
      "Client chats and public chats accepted and routed",
      ["server", "kind"]
    )
    const linkOpenings = metrics.counter(
      "switchboard_neighbourhood_links_opened_total",
      "Links to neighbours opened: dialled by us (outbound), or a neighbour's server_hello accepted (inbound)",
      ["server", "neighbour", "direction"]
    )
    // Cells kept once: routing counts every message, and a label lookup costs more than the count.
    const routedCells = {
      chat: routedMessages.labels({ server: name, kind: "chat" }),
      public_chat: routedMessages.labels({ server: name, kind: "public_chat" })
    }
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // Every client_update carries the whole list, so a burst of joins and leaves needs one, not one each:
    // the first change after a quiet spell goes out at once, then at most one per interval (the last state always).
    const clientChanges = yield* Queue.sliding<void>(1)
    // compat.pushClientList: the latest client_list to every client, at most one per interval (coalesced).
    const listChanges = yield* Queue.sliding<void>(1)
    let updatePending = false
    /** Sends a pending client_update now: a new client's first chat must not reach a neighbour before the client does. */
    const flushClientUpdate = () => {
      if (!updatePending) return
      updatePending = false
      mesh.broadcastOnEveryChannel(mesh.clientUpdateFrame())
    }
    const connectionLimiter = yield* makeKeyedLimiter(`${name} connections`, {
      ratePerSecond: config.limits.connectionsPerSecond,
      burst: config.limits.connectionBurst
    })
    const mesh = new Mesh(config.address, config.aliases, neighbours, config.limits.maxClientsPerNeighbour)
    // Our server_hello counter keeps rising across restarts (it starts at the clock), as peers remember the last one.
    let lastCounter = 0
    const signedServerHello = Effect.promise(async () => {
      const counter = (lastCounter = Math.max(lastCounter + 1, Date.now()))
      const data = serverHelloContent(config.address)
      return encodeSignedData(data, counter, await signData(identity.signKey, data, counter))
    })
    const ctx: NeighbourhoodContext = {
      config,
      mesh,
      counters: new Counters(config.limits.counterMemory),
      sharedCounters: rooms.spansNodes ? yield* sharedCountersOf(config.address) : undefined,
      relayed: new RecentSet(config.limits.duplicateWindow),
      rooms,
      room: `neighbourhood/${config.address}/clients`,
      refused: (reason) => refusals.labels({ server: name, reason }).inc(),
      routed: (kind) => routedCells[kind].inc(),
      linkOpened: (n, direction) => linkOpenings.labels({ server: name, neighbour: n.address, direction }).inc(),
      clientsChanged: () => {
        updatePending = true
        Queue.unsafeOffer(clientChanges, undefined)
        Queue.unsafeOffer(listChanges, undefined)
      },
      clientListsChanged: () => {
        Queue.unsafeOffer(listChanges, undefined)
        sharedLinks?.listsChanged()
      },
      flushClientUpdate,
      signedServerHello,
      admitConnection: connectionLimiter.admit,
      holdsLink: linksShared ? (n) => Effect.suspend(() => sharedLinks?.holds(n) ?? Effect.succeed(false)) : undefined,
      warn: (message) => void runFork(Effect.logWarning(message)),
      defect: (error) => void runFork(Effect.logError("neighbourhood: ordered work failed", error))
    }

    const refreshMembers = rooms.members(ctx.room).pipe(
      Effect.flatMap((members) =>
        Effect.sync(() => {
          if (mesh.setClusterMembers(members)) ctx.clientsChanged()
        })
      )
    )
    if (rooms.spansNodes) {
      // Nodes of one server name share its room: every join or leave anywhere refreshes our client list,
      // and a periodic refresh drops the clients of a node that died (its presence expires).
      const roomChanges = yield* rooms.changes
      yield* Queue.take(roomChanges).pipe(
        Effect.flatMap((change) => (change.room === ctx.room ? refreshMembers : Effect.void)),
        Effect.forever,
        Effect.forkScoped
      )
      yield* refreshMembers.pipe(Effect.repeat(Schedule.spaced("2 seconds")), Effect.forkScoped)
    }

    yield* Queue.take(clientChanges).pipe(
      Effect.zipRight(Effect.sync(flushClientUpdate)),
      Effect.zipRight(Effect.sleep(config.limits.clientUpdateInterval)),
      Effect.forever,
      Effect.forkScoped
    )

    if (config.compat.pushClientList) {
      yield* Queue.take(listChanges).pipe(
        Effect.zipRight(Effect.sync(() => rooms.publish(ctx.room, mesh.clientListFrame()))),
        Effect.zipRight(Effect.sleep(config.limits.clientUpdateInterval)),
        Effect.forever,
        Effect.forkScoped
      )
    }

    const handle = yield* transport.serve({
      name,
      port: config.port,
      hostname: config.hostname,
      limits: config.socket,
      ...(options.http ? { http: options.http } : {}),
      websocket: makeNeighbourhoodProtocol(ctx)
    })

    if (linksShared) {
      sharedLinks = yield* shareLinks({
        ctx,
        claims,
        federation,
        link: (n) => linkTo(ctx, federation, n),
        refreshMembers
      })
    } else yield* Effect.forEach(mesh.neighbours.values(), (n) => linkTo(ctx, federation, n), { discard: true })
    yield* Effect.logInfo(
      `neighbourhood server ${config.address} listening on ${handle.url} with ${neighbours.length} neighbour(s)`
    )
    return { handle, mesh }
  })
