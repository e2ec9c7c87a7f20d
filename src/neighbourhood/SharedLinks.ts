import { Clock, Deferred, Effect, Either, ExecutionStrategy, Exit, Option, Queue, Runtime, Schema, Scope } from "effect"
import type { Claim, ClaimsService } from "../../layers/Cluster/Claims.ts"
import type { FederationService } from "../../layers/Federation/Federation.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { repeatEvery } from "../shared/Sweeps.ts"
import type { Channel, NeighbourState } from "./Mesh.ts"
import type { NeighbourhoodContext } from "./NeighbourFrames.ts"
import { OrderedWork } from "./Ordered.ts"

/** What the node holding a link tells the other nodes about it (every `stateInterval`, and when its list changes). */
const LinkState = Schema.parseJson(
  Schema.Struct({
    /** The announcing server instance (a node hears its own announcements on the bus too). */
    origin: Schema.String,
    neighbour: Schema.String,
    up: Schema.Boolean,
    /** The neighbour's client list, once it sent one. */
    clients: Schema.optional(Schema.Array(Schema.String)),
    /** The holder gave the link up (it stops): another node may take it at once. */
    released: Schema.optional(Schema.Boolean)
  })
)
const decodeLinkState = Schema.decodeUnknownEither(LinkState)
const encodeLinkState = Schema.encodeSync(LinkState)

/** How often a node that holds no link to a neighbour, and heard no holder lately, tries to take it. */
const claimRetry = "1 second"
/** How often the holder announces each link it holds. */
const stateInterval = "2 seconds"
/** A holder not heard for this long (two announcements) is taken for gone: its view is dropped, the claim tried. */
const staleAfterMillis = 4_000

/** One neighbour's link as this node sees it: held here (a claim), or held elsewhere (a view), or neither. */
interface Seat {
  readonly neighbour: NeighbourState
  claim: Claim | undefined
  /** The claim attempt under way, which a neighbour's server_hello arriving meanwhile waits for. */
  taking: Deferred.Deferred<boolean> | undefined
  /** The link's resources on this node while it holds it: the outbound link and the forwarding subscription. */
  held: Scope.CloseableScope | undefined
  /** The holder's link, as it last announced it. */
  view: Channel | undefined
  viewClients: string
  /** When another node last announced this link (any state). */
  heardAt: number
}

export interface SharedLinks {
  /**
   * Whether this node holds the link to `n`, taking it when no live node does; a neighbour's server_hello
   * on a node that does not is refused (the neighbour re-dials, and lands on the holder or a free node).
   */
  readonly holds: (n: NeighbourState) => Effect.Effect<boolean>
  /** A neighbour's client list or link changed here: the holder announces its links (coalesced). */
  readonly listsChanged: () => void
}

export interface SharedLinksOptions {
  readonly ctx: NeighbourhoodContext
  readonly claims: ClaimsService
  readonly federation: FederationService
  /** Our outbound link to `n`, kept up in the caller's Scope. */
  readonly link: (n: NeighbourState) => Effect.Effect<unknown, never, Metrics | Scope.Scope>
  /** Reads the cluster's client list of this server again (a frame from a client this node does not list yet). */
  readonly refreshMembers: Effect.Effect<void>
}

/**
 * Neighbour links of a server name on several nodes: per neighbour exactly one node holds the link (a
 * Claim `nbh-link:<address>` / neighbour, free again once its node stops heartbeating), dials it and
 * takes its inbound connection. The other nodes hand it the frames of their clients for that neighbour
 * over the cluster's bus, and show its client list from the holder's announcements. Frames received on
 * the link reach every node's clients through the room, as before; nothing from a neighbour goes back out.
 */
export const shareLinks = (options: SharedLinksOptions) =>
  Effect.gen(function* () {
    const { ctx, claims, federation } = options
    const { mesh } = ctx
    const origin = crypto.randomUUID()
    const claimScope = `nbh-link:${mesh.address}`
    const statesSubject = `neighbourhood/${mesh.address}/links`
    const framesSubject = (n: NeighbourState) => `neighbourhood/${mesh.address}/to/${n.address}`
    const serverScope = yield* Effect.scope
    const runtime = yield* Effect.runtime<Metrics>()
    const runFork = Runtime.runFork(runtime)
    const seats = new Map<string, Seat>()
    for (const neighbour of mesh.neighbours.values()) {
      seats.set(neighbour.address, {
        neighbour,
        claim: undefined,
        taking: undefined,
        held: undefined,
        view: undefined,
        viewClients: "",
        heardAt: Number.NEGATIVE_INFINITY
      })
    }

    const announce = (seat: Seat, released = false) => {
      const n = seat.neighbour
      const clients = n.listed ? [...n.clients.keys()] : undefined
      const state = { origin, neighbour: n.address, up: !released && mesh.isUp(n), clients, released }
      return federation.publish(statesSubject, encodeLinkState(state))
    }
    const announceHeld = Effect.suspend(() =>
      Effect.forEach(seats.values(), (seat) => (seat.claim ? announce(seat) : Effect.void), { discard: true })
    )

    const dropView = (seat: Seat) => {
      const view = seat.view
      if (!view) return
      seat.view = undefined
      seat.viewClients = ""
      mesh.channelDown(seat.neighbour, view)
      ctx.clientListsChanged()
    }

    /** Frames of our clients for `n`, handed to the node that holds its link. */
    const viewChannel = (n: NeighbourState): Channel => ({
      send: (frame, from) => void runFork(federation.publish(framesSubject(n), `${from ?? ""} ${frame}`)),
      close: () => {},
      direction: "cluster",
      work: new OrderedWork(ctx.defect)
    })

    /** The holder's side: other nodes' frames for `n` go out on this node's link, after our client_update. */
    const forward = (n: NeighbourState, frames: Queue.Dequeue<string>) =>
      Effect.gen(function* () {
        const payload = yield* Queue.take(frames)
        const space = payload.indexOf(" ")
        if (space < 0) return
        const from = payload.slice(0, space)
        // A client that joined on another node a moment ago: the neighbour must hear of it before its message.
        if (from !== "" && !mesh.hasOwnClient(from)) yield* options.refreshMembers
        ctx.flushClientUpdate()
        const channel = mesh.channelTo(n)
        if (channel && channel.direction !== "cluster") channel.send(payload.slice(space + 1))
      }).pipe(Effect.forever)

    const lose = (seat: Seat) =>
      Effect.suspend(() => {
        const n = seat.neighbour
        const held = seat.held
        seat.claim = undefined
        seat.held = undefined
        n.inbound?.close(CloseCodes.tryAgainLater, "the link moved to another node of this server")
        return Effect.zipRight(
          held ? Scope.close(held, Exit.void) : Effect.void,
          Effect.logWarning(`neighbour ${n.address}: another node of this server holds the link now`)
        )
      })

    const hold = (seat: Seat, claim: Claim) =>
      Effect.gen(function* () {
        const n = seat.neighbour
        seat.claim = claim
        dropView(seat)
        const held = yield* Scope.fork(serverScope, ExecutionStrategy.sequential)
        seat.held = held
        const frames = yield* federation.subscribe(framesSubject(n)).pipe(Scope.extend(held))
        yield* forward(n, frames).pipe(Effect.forkIn(held))
        yield* options.link(n).pipe(Scope.extend(held))
        yield* Effect.logInfo(`this node holds the link to neighbour ${n.address}`)
      })

    const take = (seat: Seat): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        if (seat.claim) return Effect.succeed(true)
        if (seat.taking) return Deferred.await(seat.taking)
        return Effect.gen(function* () {
          const taking = yield* Deferred.make<boolean>()
          seat.taking = taking
          const claimed = yield* claims.claimIfFree(claimScope, seat.neighbour.address, lose(seat))
          if (Option.isSome(claimed)) yield* Effect.provide(hold(seat, claimed.value), runtime.context)
          return Option.isSome(claimed)
        }).pipe(
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              const taking = seat.taking
              seat.taking = undefined
              return taking ? Deferred.done(taking, Exit.isSuccess(exit) ? exit : Exit.succeed(false)) : Effect.void
            })
          )
        )
      })

    const applyState = (payload: string) =>
      Effect.gen(function* () {
        const decoded = decodeLinkState(payload)
        if (Either.isLeft(decoded)) return ctx.warn("neighbour links: a node of this server sent an invalid state")
        const state = decoded.right
        const seat = seats.get(state.neighbour)
        if (state.origin === origin || !seat || seat.claim) return
        const n = seat.neighbour
        seat.heardAt = state.released ? Number.NEGATIVE_INFINITY : yield* Clock.currentTimeMillis
        if (!state.up) return dropView(seat)
        if (!seat.view) mesh.channelUp(n, (seat.view = viewChannel(n)))
        const clients = state.clients
        if (!clients || clients.join("\n") === seat.viewClients) return
        const imported = yield* Effect.promise(() => mesh.importClients(n, clients))
        if (!seat.view || seat.claim) return
        mesh.setClients(n, imported)
        seat.viewClients = clients.join("\n")
        ctx.clientListsChanged()
      })

    // Released last (after the links closed): another node may take them at once.
    yield* Effect.addFinalizer(() =>
      Effect.forEach(
        seats.values(),
        (seat) => {
          const claim = seat.claim
          if (!claim) return Effect.void
          seat.claim = undefined
          return Effect.zipRight(claims.release(claim), announce(seat, true))
        },
        { discard: true }
      )
    )

    const states = yield* federation.subscribe(statesSubject)
    yield* Queue.take(states).pipe(Effect.flatMap(applyState), Effect.forever, Effect.forkScoped)

    const stateChanges = yield* Queue.sliding<void>(1)
    yield* Queue.take(stateChanges).pipe(
      Effect.zipRight(announceHeld),
      Effect.zipRight(Effect.sleep(ctx.config.limits.clientUpdateInterval)),
      Effect.forever,
      Effect.forkScoped
    )
    yield* repeatEvery("neighbour link announcements", stateInterval, () => announceHeld)

    /** Seats with no live holder heard of: this node tries to take them. */
    const tryUnheld = (now: number) =>
      Effect.forEach(
        seats.values(),
        (seat) => {
          if (seat.claim || seat.taking || now - seat.heardAt < staleAfterMillis) return Effect.void
          dropView(seat)
          return take(seat)
        },
        { discard: true }
      )
    yield* Effect.flatMap(Clock.currentTimeMillis, tryUnheld)
    yield* repeatEvery("neighbour link claims", claimRetry, tryUnheld)

    const shared: SharedLinks = {
      holds: (n) => {
        const seat = seats.get(n.address)
        return seat ? take(seat) : Effect.succeed(false)
      },
      listsChanged: () => void Queue.unsafeOffer(stateChanges, undefined)
    }
    return shared
  })
