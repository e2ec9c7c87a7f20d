import { Data, Duration, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { type PortChoice, Udp, type UdpSocket } from "../../layers/Udp/Udp.ts"
import { sweepEvery } from "../shared/Sweeps.ts"
import { fullBucket } from "../shared/TokenBucket.ts"
import { type Direction, makeForwarder, newSide, type Pair, proxyMetrics, type Side } from "./UdpPair.ts"

/**
 * The UDP proxy of system message 9008: per unit, a pair of UDP sockets on the relay. Each
 * datagram arriving on one socket goes, unchanged, to the last peer seen on the other (a drone
 * streams MAVLink to socket1, a ground tool talks to socket2). Beyond the original: limits on
 * pairs per server and per account, a packet and byte budget per pair, metrics, and an optional
 * peer lock.
 */

export interface UdpProxyOptions {
  /** Labels the metrics. */
  readonly serverName: string
  /** Address the sockets bind, e.g. 0.0.0.0. */
  readonly hostname: string
  /** Address units are told when the sockets bind every interface (the original's public_host). */
  readonly publicHost: string
  /** Ports to pick from; undefined lets the system choose (as the original). */
  readonly ports: { readonly min: number; readonly max: number } | undefined
  /** Honour the ports a unit asks for (the original's allow_udpproxy_fixed_port). */
  readonly allowFixedPorts: boolean
  /** A pair without traffic (and without a re-request) for this long is closed. */
  readonly idleTimeout: Duration.Duration
  /** A disconnected unit keeps its pair (and ports) this long, so a reconnect gets them back. */
  readonly stickyGrace: Duration.Duration
  readonly reapInterval: Duration.Duration
  readonly maxPairs: number
  readonly maxPairsPerAccount: number
  /** Budget per pair, both directions together. */
  readonly packetsPerSecond: number
  readonly bytesPerSecond: number
  /** Once a socket has a peer, drop datagrams from other addresses until the unit re-opens the pair. */
  readonly peerLock: boolean
}

/** The unit a pair belongs to: unit names are unique per account. */
export interface UnitKey {
  readonly accountId: string
  readonly unitName: string
}

export interface ProxyEndpoint {
  readonly address: string
  readonly port: number
}

/** What the unit is told, as the original's reply `ms`. */
export interface ProxyState {
  readonly socket1: ProxyEndpoint
  readonly socket2: ProxyEndpoint
  readonly en: boolean
}

export type RefusalReason = "server-limit" | "account-limit" | "bind-failed"

export class UdpProxyRefused extends Data.TaggedError("UdpProxyRefused")<{
  readonly reason: RefusalReason
  readonly message: string
}> {}

export interface UdpProxyService {
  /** Opens the unit's pair or reuses it when the requested ports (0 = any) match; re-opening lifts a peer lock. */
  readonly open: (
    unit: UnitKey,
    requested: { readonly port1: number; readonly port2: number }
  ) => Effect.Effect<ProxyState, UdpProxyRefused>
  /** Closes the unit's pair; the answer carries its last ports, or zeros when there was none. */
  readonly close: (unit: UnitKey) => Effect.Effect<ProxyState>
  /** A connection of the unit opened: a pair left behind by an earlier one is no longer due to close. */
  readonly unitEntered: (unit: UnitKey) => void
  /**
   * A connection of the unit closed. When it was the unit's last (a replaced connection closes
   * after its successor entered), the pair lives on for the grace period, then closes.
   */
  readonly unitLeft: (unit: UnitKey) => void
  readonly state: (unit: UnitKey) => ProxyState | undefined
  readonly pairCount: () => number
}

/** The reply to a closed or refused request: the original's all-zero sockets. */
export const closedState: ProxyState = {
  socket1: { address: "0.0.0.0", port: 0 },
  socket2: { address: "0.0.0.0", port: 0 },
  en: false
}

const keyOf = (unit: UnitKey) => JSON.stringify([unit.accountId, unit.unitName])
const wildcard = (hostname: string) => hostname === "0.0.0.0" || hostname === "::"

export const makeUdpProxy = (options: UdpProxyOptions) =>
  Effect.gen(function* () {
    const udp = yield* Udp
    const metrics = yield* Metrics
    const clock = yield* Effect.clock
    const serviceScope = yield* Effect.scope
    const server = options.serverName
    const cells = proxyMetrics(metrics, server)
    const { packetsPerSecond, bytesPerSecond } = options
    const idleMillis = Duration.toMillis(options.idleTimeout)
    const graceMillis = Duration.toMillis(options.stickyGrace)

    const pairs = new Map<string, Pair>()
    const live = new Set<Pair>()
    const perAccount = new Map<string, number>()
    /** Open connections per unit key (agents only; a replaced connection overlaps its successor). */
    const present = new Map<string, number>()
    const lock = yield* Effect.makeSemaphore(1)

    const forward = makeForwarder(options, clock, cells.dropped)

    const endpoint = (socket: UdpSocket | undefined): ProxyEndpoint => ({
      address: socket === undefined || wildcard(socket.hostname) ? options.publicHost : socket.hostname,
      port: socket?.port ?? 0
    })
    const stateOf = (pair: Pair): ProxyState => ({
      socket1: endpoint(pair.side1.socket),
      socket2: endpoint(pair.side2.socket),
      en: true
    })

    const closePair = (pair: Pair) =>
      Effect.suspend(() => {
        if (!live.delete(pair)) return Effect.void
        if (pairs.get(pair.key) === pair) pairs.delete(pair.key)
        const count = (perAccount.get(pair.accountId) ?? 1) - 1
        if (count > 0) perAccount.set(pair.accountId, count)
        else perAccount.delete(pair.accountId)
        cells.pairs.dec()
        return Scope.close(pair.scope, Exit.void)
      })

    const refuse = (reason: RefusalReason, message: string) =>
      Effect.zipRight(
        Effect.sync(() => cells.refusals.labels({ server, reason }).inc()),
        Effect.fail(new UdpProxyRefused({ reason, message }))
      )

    const portFor = (requested: number): PortChoice =>
      options.allowFixedPorts && requested > 0 ? requested : (options.ports ?? 0)

    const create = (unit: UnitKey, key: string, requested: { readonly port1: number; readonly port2: number }) =>
      Effect.gen(function* () {
        if (pairs.size >= options.maxPairs)
          return yield* refuse("server-limit", `the relay has its ${options.maxPairs} UDP proxy pairs open`)
        if ((perAccount.get(unit.accountId) ?? 0) >= options.maxPairsPerAccount) {
          return yield* refuse(
            "account-limit",
            `the account has its ${options.maxPairsPerAccount} UDP proxy pairs open`
          )
        }
        const now = clock.unsafeCurrentTimeMillis()
        const scope = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        const pair: Pair = {
          key,
          accountId: unit.accountId,
          scope,
          side1: newSide(),
          side2: newSide(),
          packets: fullBucket(packetsPerSecond, now),
          bytes: fullBucket(bytesPerSecond, now),
          lastActive: now,
          departedAt: undefined
        }
        const bind = (port: PortChoice, from: Side, to: Side, counted: Direction) =>
          Scope.extend(
            udp.bind({ hostname: options.hostname, port, onDatagram: forward(pair, from, to, counted) }),
            scope
          )
        const bound = yield* Effect.either(
          Effect.all([
            bind(portFor(requested.port1), pair.side1, pair.side2, cells.toSocket2),
            bind(portFor(requested.port2), pair.side2, pair.side1, cells.toSocket1)
          ])
        )
        if (bound._tag === "Left") {
          yield* Scope.close(scope, Exit.void)
          return yield* refuse("bind-failed", bound.left.message)
        }
        ;[pair.side1.socket, pair.side2.socket] = bound.right
        pairs.set(key, pair)
        live.add(pair)
        perAccount.set(unit.accountId, (perAccount.get(unit.accountId) ?? 0) + 1)
        cells.pairs.inc()
        return stateOf(pair)
      })

    const service: UdpProxyService = {
      open: (unit, requested) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            const key = keyOf(unit)
            const existing = pairs.get(key)
            if (existing) {
              const fits = (wanted: number, side: Side) =>
                !options.allowFixedPorts || wanted === 0 || wanted === side.socket?.port
              if (fits(requested.port1, existing.side1) && fits(requested.port2, existing.side2)) {
                existing.departedAt = undefined
                existing.lastActive = clock.unsafeCurrentTimeMillis()
                existing.side1.locked = false
                existing.side2.locked = false
                return stateOf(existing)
              }
              // Other fixed ports asked for: the old pair goes, a new one is bound (as the original).
              yield* closePair(existing)
            }
            return yield* create(unit, key, requested)
          })
        ),
      close: (unit) =>
        lock.withPermits(1)(
          Effect.suspend(() => {
            const pair = pairs.get(keyOf(unit))
            if (!pair) return Effect.succeed(closedState)
            const last = { ...stateOf(pair), en: false }
            return Effect.as(closePair(pair), last)
          })
        ),
      unitEntered: (unit) => {
        const key = keyOf(unit)
        present.set(key, (present.get(key) ?? 0) + 1)
        const pair = pairs.get(key)
        if (pair) pair.departedAt = undefined
      },
      unitLeft: (unit) => {
        const key = keyOf(unit)
        const remaining = (present.get(key) ?? 1) - 1
        if (remaining > 0) return void present.set(key, remaining)
        present.delete(key)
        const pair = pairs.get(key)
        if (pair) pair.departedAt = clock.unsafeCurrentTimeMillis()
      },
      state: (unit) => {
        const pair = pairs.get(keyOf(unit))
        return pair ? stateOf(pair) : undefined
      },
      pairCount: () => pairs.size
    }

    yield* sweepEvery("udp proxy", options.reapInterval, live, (pair, now) => {
      const departed = pair.departedAt !== undefined && now - pair.departedAt >= graceMillis
      if (departed || now - pair.lastActive >= idleMillis) return lock.withPermits(1)(closePair(pair))
    })
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const open = live.size
        return Effect.forEach([...live], closePair, { discard: true }).pipe(
          Effect.zipRight(open > 0 ? Effect.logInfo(`released ${open} UDP proxy pair(s)`) : Effect.void)
        )
      })
    )
    return service
  })
