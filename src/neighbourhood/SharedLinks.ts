import { Clock, Deferred, Effect, Either, ExecutionStrategy, Exit, Option, Queue, Scope } from "effect"
import type { Claim, ClaimsService } from "../../layers/Cluster/Claims.ts"
import type { FederationService } from "../../layers/Federation/Federation.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { repeatEvery } from "../shared/Sweeps.ts"
import type { Channel, NeighbourState } from "./Mesh.ts"
import type { NeighbourhoodContext } from "./NeighbourFrames.ts"
import { handedFrames } from "./HandedFrames.ts"
import {
  decodeHandoverRequest,
  decodeLinkState,
  encodeHandoverRequest,
  encodeLinkState,
  newSeat,
  type Seat
} from "./LinkSeats.ts"
import { OrderedWork } from "./Ordered.ts"

/** How often a node that holds no link to a neighbour, and heard no holder lately, tries to take it. */
const claimRetry = "1 second"
/** How often the holder announces each link it holds. */
const stateInterval = "2 seconds"
/** A holder not heard for this long (two announcements) is taken for gone: its view is dropped, the claim tried. */
const staleAfterMillis = 4_000
/** How often a node checks that the claims of its links are still surely its own (the fence). */
const fenceInterval = "250 millis"
/** A link closes this long before its claim may pass to another node (more than one fence interval). */
const fenceMarginMillis = 500
/** How long a node that got the neighbour's dial waits for the holder to give the link up. */
const handoverWait = "2 seconds"

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
 * Neighbour links of a server name on several nodes: per neighbour at most one node holds the link (a
 * Claim `nbh-link:<address>` / neighbour, free again once its node stops heartbeating), dials it and
 * takes its inbound connection, and only while the broker confirmed the claim and this node's last
 * heartbeat cannot have run out (else another node may take it: the link closes first). The other
 * nodes hand it the frames of their clients for that neighbour over the cluster's bus (HandedFrames),
 * and show its client list from the holder's announcements. Frames received on the link reach every
 * node's clients through the room, as before; nothing from a neighbour goes back out.
 */
export const shareLinks = (options: SharedLinksOptions) =>
  Effect.gen(function* () {
    const { ctx, claims, federation } = options
    const { mesh } = ctx
    const origin = crypto.randomUUID()
    const claimScope = `nbh-link:${mesh.address}`
    const statesSubject = `neighbourhood/${mesh.address}/links`
    const handoverSubject = `neighbourhood/${mesh.address}/handover`
    const serverScope = yield* Effect.scope
    const runtime = yield* Effect.runtime<Metrics>()
    const handed = yield* handedFrames({ ctx, federation, origin, refreshMembers: options.refreshMembers })
    const seats = new Map<string, Seat>()
    for (const neighbour of mesh.neighbours.values()) seats.set(neighbour.address, newSeat(neighbour))

    const announce = (seat: Seat, released = false) => {
      const n = seat.neighbour
      const clients = n.listed ? [...n.clients.keys()] : undefined
      const state = { origin, neighbour: n.address, up: !released && mesh.isUp(n), clients, released }
      return federation.publish(statesSubject, encodeLinkState(state))
    }
    const announceHeld = Effect.suspend(() =>
      Effect.forEach(seats.values(), (seat) => (seat.held ? announce(seat) : Effect.void), { discard: true })
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
      send: (frame, from) => handed.hand(n, frame, from),
      close: () => {},
      direction: "cluster",
      work: new OrderedWork(ctx.defect)
    })

    /** Opens the link's resources here: the forwarding of other nodes' frames, and our outbound link. */
    const open = (seat: Seat) =>
      Effect.gen(function* () {
        const n = seat.neighbour
        dropView(seat)
        const held = yield* Scope.fork(serverScope, ExecutionStrategy.sequential)
        seat.held = held
        const frames = yield* federation.subscribe(handed.framesSubject(n)).pipe(Scope.extend(held))
        yield* handed.forward(n, frames).pipe(Effect.forkIn(held))
        yield* options.link(n).pipe(Scope.extend(held))
        yield* Effect.logInfo(`this node holds the link to neighbour ${n.address}`)
      }).pipe(Effect.provide(runtime.context))

    /** Closes the link's resources here (the neighbour's inbound connection too: it re-dials). */
    const close = (seat: Seat, why: string) =>
      Effect.suspend(() => {
        const n = seat.neighbour
        const held = seat.held
        if (!held) return Effect.void
        seat.held = undefined
        n.inbound?.close(CloseCodes.tryAgainLater, why)
        return Effect.zipRight(Scope.close(held, Exit.void), Effect.logWarning(`neighbour ${n.address}: ${why}`))
      })

    /** Whether the claim is surely ours for a while yet: a node that cannot tell must not keep a link. */
    const confirmed = (claim: Claim, now: number) => now + fenceMarginMillis < (claims.heldUntil?.(claim) ?? Infinity)

    /** Keeps the link open exactly while the claim is confirmed; whether it is open. */
    const fence = (seat: Seat, now: number) =>
      seat.lock.withPermits(1)(
        Effect.suspend(() => {
          const claim = seat.claim
          const sure = claim !== undefined && confirmed(claim, now)
          if (sure && !seat.held) return Effect.as(open(seat), true)
          if (!sure && seat.held)
            return Effect.as(close(seat, "this node cannot confirm its claim of the link: it closes the link"), false)
          return Effect.succeed(seat.held !== undefined)
        })
      )

    const lose = (seat: Seat, claim: Claim) =>
      Effect.suspend(() => {
        if (seat.claim?.holder !== claim.holder) return Effect.void
        seat.claim = undefined
        return seat.lock.withPermits(1)(close(seat, "another node of this server holds the link now"))
      })

    const take = (seat: Seat): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        if (seat.claim) return Effect.flatMap(Clock.currentTimeMillis, (now) => fence(seat, now))
        if (seat.taking) return Deferred.await(seat.taking)
        return Effect.gen(function* () {
          const taking = yield* Deferred.make<boolean>()
          seat.taking = taking
          let claim: Claim | undefined
          const claimed = yield* claims.claimIfFree(
            claimScope,
            seat.neighbour.address,
            Effect.suspend(() => (claim ? lose(seat, claim) : Effect.void))
          )
          if (Option.isNone(claimed)) return false
          claim = seat.claim = claimed.value
          dropView(seat)
          return yield* fence(seat, yield* Clock.currentTimeMillis)
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

    /** Gives the claim up: the link closes first, then another node may take it at once. */
    const giveUp = (seat: Seat, why: string) =>
      Effect.gen(function* () {
        const claim = seat.claim
        if (!claim) return
        seat.claim = undefined
        yield* seat.lock.withPermits(1)(close(seat, why))
        yield* claims.release(claim)
        yield* announce(seat, true)
        // Not at once again ourselves: the node that asked takes it.
        seat.heardAt = yield* Clock.currentTimeMillis
      })

    const applyState = (payload: string) =>
      Effect.gen(function* () {
        const decoded = decodeLinkState(payload)
        if (Either.isLeft(decoded)) return ctx.warn("neighbour links: a node of this server sent an invalid state")
        const state = decoded.right
        const seat = seats.get(state.neighbour)
        if (state.origin === origin || !seat) return
        if (state.released && seat.released) yield* Deferred.succeed(seat.released, undefined)
        if (seat.claim) return
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

    /**
     * The holder was asked for the link by the node the neighbour's dial reached: it gives it up unless
     * the neighbour's own dial is up here. Only where that dial is the link's preferred connection
     * (the neighbour's address sorts first), so between two clustered servers the link settles on the
     * node that the lower address's holder dials.
     */
    const applyHandover = (payload: string) =>
      Effect.gen(function* () {
        const decoded = decodeHandoverRequest(payload)
        if (Either.isLeft(decoded)) return ctx.warn("neighbour links: a node of this server sent an invalid request")
        const seat = seats.get(decoded.right.neighbour)
        if (decoded.right.origin === origin || !seat?.claim || seat.neighbour.inbound) return
        yield* giveUp(seat, "the neighbour dialled another node of this server: the link moves there")
      })

    /** The neighbour dialled us but another node holds the link: ask for it, and take it once given up. */
    const askHandover = (seat: Seat) =>
      Effect.gen(function* () {
        if (!(mesh.address > seat.neighbour.address)) return false
        const released = seat.released ?? (seat.released = yield* Deferred.make<void>())
        yield* federation.publish(handoverSubject, encodeHandoverRequest({ origin, neighbour: seat.neighbour.address }))
        yield* Deferred.await(released).pipe(Effect.timeout(handoverWait), Effect.ignore)
        if (seat.released === released) seat.released = undefined
        return yield* take(seat)
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
    const handovers = yield* federation.subscribe(handoverSubject)
    yield* Queue.take(handovers).pipe(Effect.flatMap(applyHandover), Effect.forever, Effect.forkScoped)

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
    yield* repeatEvery("neighbour link fence", fenceInterval, (now) =>
      Effect.forEach(seats.values(), (seat) => (seat.taking ? Effect.void : fence(seat, now)), { discard: true })
    )

    const shared: SharedLinks = {
      holds: (n) => {
        const seat = seats.get(n.address)
        if (!seat) return Effect.succeed(false)
        return Effect.flatMap(take(seat), (held) => (held || seat.claim ? Effect.succeed(held) : askHandover(seat)))
      },
      listsChanged: () => void Queue.unsafeOffer(stateChanges, undefined)
    }
    return shared
  })
