import { Kvm, type KV } from "@nats-io/kv"
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node"
import { Clock, Effect } from "effect"
import {
  type Broker,
  BrokerUnavailable,
  type ClaimStore,
  type CounterStore,
  closedRecordText,
  heldRecordText,
  holderLiveness,
  maxCounterWindowMillis,
  type PresenceStore,
  parseHeldRecord,
  type RecordStore,
  recordWritable,
  redactUrl
} from "./Broker.ts"
import { connectionGate, natsResource, resourceMissing } from "./NatsResources.ts"

export interface NatsBrokerOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one NATS: subjects start with it, bucket names are made from it. */
  readonly prefix: string
  readonly nodeId: string
}

type Deliver = (bytes: Uint8Array) => void

/** Subject tokens and KV keys allow only some characters: names are carried in base64url. */
const token = (name: string) => Buffer.from(name).toString("base64url")
const fromToken = (encoded: string) => Buffer.from(encoded, "base64url").toString()
const safeName = (prefix: string) => prefix.replace(/[^A-Za-z0-9_-]/g, "_")

/**
 * A NATS connection that retries for ever after the first success, closed with its Scope. With
 * `noEcho` the server does not send the connection's own publishes back to it.
 */
export const natsConnection = (url: string, name: string, noEcho = false) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noEcho }),
      catch: (cause) => new BrokerUnavailable(`nats at ${redactUrl(url)}`, cause)
    }),
    (connection) => Effect.promise(() => connection.close().catch(() => {}))
  )

/**
 * The cluster broker on NATS: core subjects for messages (the client resubscribes by itself after a
 * reconnect), JetStream KV for presence: a bucket of member entries (key = room.member) and a bucket
 * of node liveness keys whose max age is the node TTL, so a silent node's key disappears by itself.
 * The connection is made with `noEcho`: the server does not send a node's publishes back over its
 * socket (a third of the server's deliveries on three nodes); the node hears them locally instead.
 */
export const makeNatsBroker = (options: NatsBrokerOptions) =>
  Effect.gen(function* () {
    const connection: NatsConnection = yield* natsConnection(options.url, `switchboard-${options.nodeId}`, true)
    const kvm = new Kvm(connection)
    const unavailable = (cause: unknown) => new BrokerUnavailable("nats", cause)
    // No caller waits for the broker's return: calls fail at once while the connection is down, and when it goes down.
    const gate = connectionGate(connection)
    const call = <A>(run: () => Promise<A>) => Effect.tryPromise({ try: () => gate.whileUp(run), catch: unavailable })
    const bucket = safeName(options.prefix)
    // Every bucket is made again, with its settings, when a restarted server has lost it (see NatsResources).
    const members = natsResource(() => kvm.create(`${bucket}_presence`, { history: 1 }))
    yield* call(members.get)
    let nodesTtl: number | undefined
    const nodes = natsResource(() => kvm.create(`${bucket}_nodes`, { history: 1, ttl: nodesTtl }))
    // Claims and counters get their buckets on first use: a node that never claims creates none.
    const lazyBucket = (name: string, ttl?: number) =>
      natsResource(() => kvm.create(`${bucket}_${name}`, ttl === undefined ? { history: 1 } : { history: 1, ttl }))
    const claimsBucket = lazyBucket("claims")
    const countersBucket = lazyBucket("counters")
    const windowsBucket = lazyBucket("windows", maxCounterWindowMillis)
    let recordsTtl: number | undefined
    // Opened only to read until this node writes a record: then made, with the TTL of its writes.
    const recordsBucket = natsResource(() =>
      recordsTtl === undefined
        ? kvm.open(`${bucket}_records`)
        : kvm.create(`${bucket}_records`, { history: 1, ttl: recordsTtl })
    )
    const subjectOf = (channel: string) => `${options.prefix}.${token(channel)}`
    const subscriptions = new Map<string, { readonly subscription: Subscription; readonly deliver: Deliver }>()
    const reconnectCallbacks: Array<() => void> = []
    const disconnectCallbacks: Array<() => void> = []

    // Status events tell whether publishes can leave now; the client itself replays subscriptions on reconnect.
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === "disconnect") {
          gate.down()
          for (const callback of disconnectCallbacks) callback()
        } else if (status.type === "reconnect") {
          gate.up()
          // The server may be a new one without JetStream storage: what this node opened is made again, first.
          const renewed = [members, nodes, claimsBucket, countersBucket, windowsBucket, recordsBucket].map((kv) =>
            kv.renew()
          )
          // The client has re-sent its subscriptions; a PING round trip proves the server holds them.
          await connection.flush().catch(() => {})
          await Promise.all(renewed)
          for (const callback of reconnectCallbacks) callback()
        }
      }
    })()

    const liveNodes = async (ids: ReadonlyArray<string>) => {
      if (ids.length === 0 || nodesTtl === undefined) return new Set<string>()
      const entries = await nodes.use((kv) => Promise.all(ids.map((id) => kv.get(token(id)))))
      return new Set(ids.filter((_, i) => entries[i]?.operation === "PUT"))
    }
    const putIfUnchanged = (kv: KV, key: string, value: string, revision: number | undefined) =>
      (revision === undefined ? kv.create(key, value) : kv.update(key, value, revision)).then(
        () => true,
        () => false
      )
    /** Compare-and-set until it holds: another node's write in between makes it read again. */
    const compareAndSet = async <A>(
      kv: KV,
      key: string,
      decide: (current: string | undefined) => { readonly write?: string; readonly result: A }
    ): Promise<A> => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const entry = await kv.get(key)
        const { write, result } = decide(entry?.operation === "PUT" ? entry.string() : undefined)
        if (write === undefined || (await putIfUnchanged(kv, key, write, entry?.revision))) return result
      }
      throw new Error(`too much contention on ${key}`)
    }
    const claimKey = (scope: string, name: string) => `${token(scope)}.${token(name)}`
    /**
     * A limited scope's seats: one entry (no dot, so no scope listing sees it) mapping name → holder,
     * compare-and-set as a whole, so a count and the take it allows are one step.
     */
    const seatsKey = (scope: string) => token(scope)
    const takeSeat = async (kv: KV, scope: string, name: string, holder: string, within: number) => {
      const key = seatsKey(scope)
      for (let attempt = 0; attempt < 50; attempt++) {
        const entry = await kv.get(key)
        const seats: Record<string, string> = entry?.operation === "PUT" ? JSON.parse(entry.string()) : {}
        const others = Object.entries(seats).filter(([other]) => other !== name)
        const alive = await liveNodes([...new Set(others.map(([, held]) => holderLiveness(held)))])
        const live = others.filter(([, held]) => alive.has(holderLiveness(held)))
        if (live.length >= within) return false
        // Dead nodes' seats are dropped on the way.
        const next = JSON.stringify(Object.fromEntries([...live, [name, holder]]))
        if (await putIfUnchanged(kv, key, next, entry?.revision)) return true
      }
      throw new Error(`too much contention on the seats of ${scope}`)
    }
    const releaseSeat = async (kv: KV, scope: string, name: string, holder: string) => {
      await compareAndSet(kv, seatsKey(scope), (current) => {
        const seats: Record<string, string> | undefined = current === undefined ? undefined : JSON.parse(current)
        if (seats?.[name] !== holder) return { result: undefined }
        delete seats[name]
        return { write: JSON.stringify(seats), result: undefined }
      })
    }
    const claims: ClaimStore = {
      take: (scope, name, holder, mode) =>
        call(() =>
          claimsBucket.use(async (kv) => {
            const key = claimKey(scope, name)
            if (typeof mode === "object" && !(await takeSeat(kv, scope, name, holder, mode.within))) {
              const entry = await kv.get(key)
              return { taken: false, previous: entry?.operation === "PUT" ? entry.string() : undefined }
            }
            for (let attempt = 0; attempt < 50; attempt++) {
              const entry = await kv.get(key)
              const previous = entry?.operation === "PUT" ? entry.string() : undefined
              if (mode === "ifFree" && previous !== undefined && (await liveNodes([holderLiveness(previous)])).size > 0)
                return { taken: false, previous }
              if (await putIfUnchanged(kv, key, holder, entry?.revision)) return { taken: true, previous }
            }
            throw new Error(`too much contention on claim ${name}`)
          })
        ),
      release: (scope, name, holder) =>
        call(() =>
          claimsBucket.use(async (kv) => {
            const entry = await kv.get(claimKey(scope, name))
            if (entry?.operation === "PUT" && entry.string() === holder)
              await kv.delete(claimKey(scope, name), { previousSeq: entry.revision }).catch(() => {})
            await releaseSeat(kv, scope, name, holder)
          })
        ),
      get: (scope, name) =>
        call(() =>
          claimsBucket.use(async (kv) => {
            const entry = await kv.get(claimKey(scope, name))
            return entry?.operation === "PUT" ? entry.string() : undefined
          })
        ),
      list: (scope) => call(() => claimsBucket.use((kv) => listUnder(kv, token(scope))))
    }
    // NATS 2.9 has no per-key expiry: a windowed count carries its end, and the windows bucket's max age clears old keys.
    const counters: CounterStore = {
      add: (key, by, windowMillis) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          call(() =>
            (windowMillis === undefined ? countersBucket : windowsBucket).use((kv) =>
              compareAndSet(kv, token(key), (current) => {
                const held = current === undefined ? undefined : (JSON.parse(current) as { n: number; u: number })
                const fresh = held === undefined || (held.u !== 0 && held.u <= now)
                const next = fresh
                  ? { n: by, u: windowMillis === undefined ? 0 : now + windowMillis }
                  : { n: held.n + by, u: held.u }
                return { write: JSON.stringify(next), result: next.n }
              })
            )
          )
        ),
      // Maxima live beside the lasting counts, under "m." (a count's key is one token, without a dot).
      raise: (key, value, lastingMillis) =>
        // What lasts a while goes where old keys vanish (longer values are then kept 10 minutes).
        call(() =>
          (lastingMillis !== undefined ? windowsBucket : countersBucket).use((kv) =>
            compareAndSet(kv, `m.${token(key)}`, (current) => {
              const previous = current === undefined ? -1 : Number(current)
              return value > previous ? { write: String(value), result: previous } : { result: previous }
            })
          )
        )
    }
    // A record's expiry is the bucket's max age: a put again starts it over.
    /** Reads or removes through the bucket some node created: nothing to find while none has. */
    const inRecords = async <A>(use: (kv: KV) => Promise<A>): Promise<A | undefined> => {
      try {
        return await recordsBucket.use(use)
      } catch (error) {
        if (!resourceMissing(error)) throw error
        return undefined
      }
    }
    /** A compare-and-set on the entry's revision: the holder rule and the write are one step. */
    const writeRecord = (
      key: string,
      holder: string,
      text: string,
      ttlMillis: number,
      mode: "take" | "keep" | "close"
    ) =>
      call(() => {
        recordsTtl ??= ttlMillis
        return recordsBucket.use((kv) =>
          compareAndSet(kv, token(key), (current) =>
            recordWritable(parseHeldRecord(current), holder, mode) ? { write: text, result: true } : { result: false }
          )
        )
      })
    const records: RecordStore = {
      get: (key) =>
        call(async () => {
          const entry = await inRecords((kv) => kv.get(token(key)))
          const record = parseHeldRecord(entry?.operation === "PUT" ? entry.string() : undefined)
          return record === "closed" ? undefined : record
        }),
      put: (key, holder, value, ttlMillis, mode) =>
        writeRecord(key, holder, heldRecordText(holder, value), ttlMillis, mode),
      close: (key, holder, ttlMillis) => writeRecord(key, holder, closedRecordText, ttlMillis, "close")
    }
    const presence: PresenceStore = {
      put: (room, key, entry) =>
        call(() => members.use((kv) => kv.put(`${token(room)}.${token(key)}`, entry))).pipe(Effect.asVoid),
      remove: (room, keys) =>
        call(() => members.use((kv) => Promise.all(keys.map((key) => kv.purge(`${token(room)}.${token(key)}`))))).pipe(
          Effect.asVoid
        ),
      list: (room) => call(() => members.use((kv) => listUnder(kv, token(room)))),
      heartbeat: (nodeId, ttlMillis) =>
        call(() => {
          nodesTtl ??= ttlMillis
          return nodes.use(async (kv) => {
            const previous = await kv.get(token(nodeId))
            await kv.put(token(nodeId), "1")
            return previous?.operation === "PUT"
          })
        }),
      alive: (nodeIds) => call(() => liveNodes(nodeIds))
    }

    const broker: Broker = {
      kind: "nats",
      nodeId: options.nodeId,
      publish: (channel, bytes) => {
        if (!gate.isUp()) return false
        const subject = subjectOf(channel)
        connection.publish(subject, bytes)
        // The server does not echo (noEcho): this node's subscriber hears it here, once publish returned, as from the socket.
        const own = subscriptions.get(subject)
        if (own !== undefined) queueMicrotask(() => subscriptions.get(subject) === own && own.deliver(bytes))
        return true
      },
      subscribe: (channel, deliver) =>
        Effect.suspend(() => {
          const subject = subjectOf(channel)
          subscriptions.get(subject)?.subscription.unsubscribe()
          const subscription = connection.subscribe(subject, {
            callback: (error, message) => {
              if (error === null) deliver(message.data)
            }
          })
          subscriptions.set(subject, { subscription, deliver })
          // The flush round trip proves the server has the subscription before the caller goes on.
          return gate.isUp() ? Effect.promise(() => connection.flush().catch(() => {})) : Effect.void
        }),
      unsubscribe: (channel) =>
        Effect.sync(() => {
          const subject = subjectOf(channel)
          subscriptions.get(subject)?.subscription.unsubscribe()
          subscriptions.delete(subject)
        }),
      isUp: gate.isUp,
      onReconnect: (callback) => void reconnectCallbacks.push(callback),
      onDisconnect: (callback) => void disconnectCallbacks.push(callback),
      presence,
      claims,
      counters,
      records,
      sever: Effect.promise(() => connection.close().catch(() => {}))
    }
    return broker
  })

/** The entries under `first.` of a bucket, by the name in their second token. */
const listUnder = async (kv: KV, first: string) => {
  const keys: Array<string> = []
  for await (const key of await kv.keys(`${first}.*`)) keys.push(key)
  const entries = await Promise.all(keys.map((key) => kv.get(key)))
  return entries.flatMap((entry, i) =>
    entry?.operation === "PUT" ? [[fromToken(keys[i]!.slice(keys[i]!.indexOf(".") + 1)), entry.string()] as const] : []
  )
}

/** Removes the KV buckets of a prefix (tests clean up with it). */
export const destroyNatsBuckets = (connection: NatsConnection, prefix: string) =>
  Effect.promise(async () => {
    const { jetstreamManager } = await import("@nats-io/jetstream")
    const manager = await jetstreamManager(connection)
    for (const name of ["presence", "nodes", "claims", "counters", "windows", "records"])
      await manager.streams.delete(`KV_${safeName(prefix)}_${name}`).catch(() => false)
  })
