import type { NatsConnection } from "@nats-io/transport-node"

/**
 * Whether an error says the server has no such JetStream stream (a KV bucket is one): a server
 * restarted without its JetStream storage answers a publish with "no responders" and a lookup with
 * "stream not found".
 */
export const resourceMissing = (error: unknown) =>
  /stream not found|no responders|jetstream is not enabled/i.test(
    `${error instanceof Error ? error.message : error} ${error instanceof Error ? error.cause : ""}`
  )

/** A JetStream resource opened on first use and made again, with the same settings, when the server lost it. */
export interface NatsResource<A> {
  readonly get: () => Promise<A>
  /** Runs `use`; if the resource is missing, makes it again and runs `use` once more. */
  readonly use: <B>(use: (resource: A) => Promise<B>) => Promise<B>
  /** Makes it again if it was ever opened (after a reconnect: the server may be a new one without storage). */
  readonly renew: () => Promise<void>
}

/** `make` must be idempotent (an existing bucket or stream with the same settings is just opened). */
export const natsResource = <A>(make: () => Promise<A>): NatsResource<A> => {
  let opened: Promise<A> | undefined
  let wanted = false
  const get = () => {
    wanted = true
    if (opened === undefined) {
      const made = make()
      opened = made
      made.catch(() => opened === made && (opened = undefined))
    }
    return opened
  }
  return {
    get,
    use: async (use) => {
      try {
        return await use(await get())
      } catch (error) {
        if (!resourceMissing(error)) throw error
        opened = undefined
        return use(await get())
      }
    },
    // Started at once, so what runs after the reconnect waits for it rather than finding nothing.
    renew: () => {
      if (!wanted) return Promise.resolve()
      opened = undefined
      return get().then(
        () => {},
        () => {}
      )
    }
  }
}

/** Why a gated call failed: the connection was down when it was made, or went down before it finished. */
export class NotConnected extends Error {
  /** true: the call was in flight when the connection dropped (what it asked for may have been done). */
  constructor(readonly inFlight: boolean) {
    super(inFlight ? "connection lost" : "not connected")
  }
}

/** Fails calls at once while a connection is down, and those in flight when it goes down: none waits for its return. */
export interface ConnectionGate {
  readonly whileUp: <A>(run: () => Promise<A>) => Promise<A>
  readonly isUp: () => boolean
  /** The connection went down: calls in flight fail now, new ones at once until `up`. */
  readonly down: () => void
  readonly up: () => void
}

export const connectionGate = (connection: NatsConnection): ConnectionGate => {
  let up = true
  const pending = new Set<(cause: unknown) => void>()
  return {
    whileUp: <A>(run: () => Promise<A>) =>
      !up || connection.isClosed()
        ? Promise.reject(new NotConnected(false))
        : new Promise<A>((resolve, reject) => {
            pending.add(reject)
            run()
              .then(resolve, reject)
              .finally(() => pending.delete(reject))
          }),
    isUp: () => up && !connection.isClosed(),
    down: () => {
      up = false
      for (const reject of pending) reject(new NotConnected(true))
      pending.clear()
    },
    up: () => {
      up = true
    }
  }
}

/** A gate on `connection` that follows its status by itself, calling `back` (not awaited) at each reconnect. */
export const followedGate = (connection: NatsConnection, back: () => Promise<void>): ConnectionGate => {
  const gate = connectionGate(connection)
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === "disconnect") gate.down()
      else if (status.type === "reconnect") {
        gate.up()
        void back()
      }
    }
  })()
  return gate
}
