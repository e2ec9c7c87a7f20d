import { Effect, Queue, Schedule } from "effect"
import { Cluster, type Redis } from "ioredis"

/**
 * The subscribing half of the Redis broker: one handler per channel, and outages told to the
 * callers. One Redis: the subscriber connection closing is the outage; when it is ready again every
 * wanted channel is subscribed in one command, then `onReconnect` runs. Redis Cluster: a node
 * connection dropping (a master killed, the whole cluster down) is the outage; a fiber then
 * subscribes every wanted channel again, each on its shard as the client now sees the slots, until
 * the cluster says ok and every shard confirmed, and only then runs `onReconnect`.
 * `reopen` opens a new subscriber client (a cluster one that lost every node is replaced, see below).
 */
export const makeRedisSubscriptions = (
  commands: Redis,
  first: Redis,
  sharded: boolean,
  reopen: () => Promise<Redis>,
  subscribeTimeoutMs: number
) =>
  Effect.gen(function* () {
    let subscriber = first
    const handlers = new Map<string, (bytes: Uint8Array) => void>()
    const reconnectCallbacks: Array<() => void> = []
    const disconnectCallbacks: Array<() => void> = []
    const onMessage = (channel: Buffer, message: Buffer) => handlers.get(channel.toString())?.(message)
    const subscribeNow = (channels: ReadonlyArray<string>) =>
      sharded ? subscriber.ssubscribe(...channels) : subscriber.subscribe(...channels)
    const unsubscribeNow = (channel: string) =>
      sharded ? subscriber.sunsubscribe(channel) : subscriber.unsubscribe(channel)
    const reconnected = () => {
      for (const callback of reconnectCallbacks) callback()
    }
    const disconnected = () => {
      for (const callback of disconnectCallbacks) callback()
    }
    // redisConnection types a Cluster client as a Redis (same commands); the outage events differ.
    const cluster = (first as unknown) instanceof Cluster

    /** Called when a subscribe could not be confirmed: on a cluster that starts a restore round. */
    let subscribeFailed = () => {}
    if (!cluster) {
      subscriber.on(sharded ? "smessageBuffer" : "messageBuffer", onMessage)
      // After an outage the subscriber connection is new: subscribe every channel still wanted, then tell the callers.
      let lost = false
      subscriber.on("close", () => void (lost = true))
      // Lost = publishes cannot leave: the commands connection closed.
      commands.on("close", disconnected)
      subscriber.on("ready", () => {
        if (!lost) return
        lost = false
        const channels = [...handlers.keys()]
        const resubscribed = channels.length > 0 ? subscribeNow(channels) : Promise.resolve()
        // Back means publishes leave too: the commands connection may come back after the subscriber.
        const commandsReady = () =>
          commands.status === "ready" ? undefined : new Promise<void>((resolve) => commands.once("ready", resolve))
        resubscribed.then(commandsReady).then(reconnected, () => {})
      })
    } else {
      let lost = false
      let subscriberClosed = false
      const restore = yield* Queue.sliding<void>(1)
      const lose = () => {
        if (!lost) {
          lost = true
          disconnected()
        }
        Queue.unsafeOffer(restore, undefined)
      }
      subscribeFailed = lose
      // "-node": a node connection ended (its shard's messages stop until resubscribed); "close": all of them.
      for (const event of ["-node", "close"]) commands.on(event, lose)
      const watch = (client: Redis) => {
        client.on(sharded ? "smessageBuffer" : "messageBuffer", onMessage)
        client.on("close", () => void (subscriberClosed = true))
        for (const event of ["-node", "close"]) client.on(event, lose)
      }
      watch(subscriber)
      yield* Effect.addFinalizer(() => Effect.sync(() => subscriber.disconnect()))
      /**
       * ioredis 5.9's sharded subscribers do not come back after the client lost every node (it
       * forgets which node serves which slots but not the slots, so it sees nothing to do): such a
       * subscriber client is replaced by a new one.
       */
      const replaceClosedSubscriber = async () => {
        if (!subscriberClosed) return
        const fresh = await reopen()
        const old = subscriber
        old.removeAllListeners()
        old.on("error", () => {})
        old.disconnect()
        subscriber = fresh
        subscriberClosed = false
        watch(fresh)
      }
      /** ioredis appends to its own per-slot channel lists on every SSUBSCRIBE: the repeats ours added go (best effort). */
      const dropRepeatedChannels = () => {
        const lists = (subscriber as unknown as { shardedSubscribers?: { channels?: unknown } }).shardedSubscribers
          ?.channels
        if (lists instanceof Map)
          for (const [slot, list] of lists) if (Array.isArray(list)) lists.set(slot, [...new Set(list)])
      }
      // Each channel on its own: channels of one command must share a slot. Subscribing twice is harmless to Redis.
      const resubscribeAll = Effect.tryPromise(async () => {
        const info = String(await commands.cluster("INFO"))
        if (!info.includes("cluster_state:ok")) throw new Error("the cluster is not ok yet")
        await replaceClosedSubscriber()
        await Promise.all([...handlers.keys()].map((channel) => subscribeNow([channel])))
        dropRepeatedChannels()
      }).pipe(Effect.timeout("2 seconds"))
      const retry = Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("1 second")))
      yield* Queue.take(restore).pipe(
        Effect.zipRight(Effect.retry(resubscribeAll, retry)),
        Effect.tap(() =>
          Effect.sync(() => {
            if (!lost) return
            lost = false
            reconnected()
          })
        ),
        Effect.forever,
        Effect.forkScoped
      )
    }

    return {
      /** Delivers `channel`'s messages to `deliver`; subscribes on the server the first time. */
      subscribe: (channel: string, deliver: (bytes: Uint8Array) => void) =>
        Effect.suspend(() => {
          const known = handlers.has(channel)
          handlers.set(channel, deliver)
          if (known || subscriber.status !== "ready") return Effect.void
          // A failure or no answer (a silent master) here means a restore round: it subscribes again.
          return Effect.promise(() => subscribeNow([channel]).catch(() => subscribeFailed())).pipe(
            Effect.timeout(subscribeTimeoutMs),
            Effect.catchAll(() => Effect.sync(subscribeFailed))
          )
        }),
      unsubscribe: (channel: string) =>
        Effect.suspend(() => {
          if (!handlers.delete(channel) || subscriber.status !== "ready") return Effect.void
          return Effect.promise(() => unsubscribeNow(channel).catch(() => {}))
        }),
      isUp: () => subscriber.status === "ready",
      disconnect: () => subscriber.disconnect(),
      onReconnect: (callback: () => void) => void reconnectCallbacks.push(callback),
      onDisconnect: (callback: () => void) => void disconnectCallbacks.push(callback)
    }
  })
