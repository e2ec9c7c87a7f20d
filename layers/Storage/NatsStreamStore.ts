import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StoredMsg
} from "@nats-io/jetstream"
import { headers, type NatsConnection, nanos } from "@nats-io/transport-node"
import { Clock, Effect, Layer } from "effect"
import { StorageError } from "../../src/storage/Account.ts"
import { PartialAppend, payloadBytes, type StreamBounds, type StreamEntry, trimStep } from "../../src/storage/Stream.ts"
import { natsConnection } from "../Cluster/NatsBroker.ts"
import { followedGate, NotConnected, natsResource, resourceMissing } from "../Cluster/NatsResources.ts"
import { StreamStore } from "./StreamStore.ts"

export interface NatsStreamStoreOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one NATS: the JetStream stream and its subjects are named from it. */
  readonly prefix: string
  /** Tests only: wraps the JetStream client, to make a publish fail. */
  readonly wrapClient?: (client: JetStreamClient) => JetStreamClient
}

/** A batch stopped partway: `stored` went in; `unsure`: the next one's outcome could not be learnt. */
class Stopped extends Error {
  constructor(
    readonly stored: ReadonlyArray<StreamEntry>,
    readonly unsure: boolean,
    override readonly cause: unknown
  ) {
    super(cause instanceof Error ? cause.message : String(cause))
  }
}
/** What an append has stored so far, whether a publish of it is waiting for its answer, and whether its caller left. */
interface Progress {
  readonly entries: Array<StreamEntry>
  publishing: boolean
  abandoned: boolean
}
/** The publish's outcome is unknown (no answer): it may have been stored. */
class NoAnswer extends Error {}

/**
 * Where a stream stands, carried in the headers of its newest message, so one direct get reads it
 * and the next append's "expected last subject sequence" makes it a compare-and-set.
 */
interface Head {
  readonly epoch: string
  readonly last: number
  readonly first: number
  readonly count: number
  readonly bytes: number
  /** A JetStream sequence at or below the oldest kept entry's: reading forward starts here. */
  readonly from: number
  /** JetStream sequence of this newest message (0: none yet). */
  readonly at: number
}

const wrongLastSequence = 10071
const safeName = (prefix: string) => prefix.replace(/[^A-Za-z0-9_-]/g, "_")
/** The JetStream stream holding every history of a prefix. */
export const natsHistoryStream = (prefix: string) => `${safeName(prefix)}_history`

const headOf = (message: StoredMsg): Head => {
  const number = (name: string) => Number(message.header.get(name))
  return {
    epoch: message.header.get("Sb-Epoch"),
    last: number("Sb-Last"),
    first: number("Sb-First"),
    count: number("Sb-Count"),
    bytes: number("Sb-Bytes"),
    from: number("Sb-From"),
    at: message.seq
  }
}
const entrySeq = (message: StoredMsg) => Number(message.header.get("Sb-Seq") || 0)
const toEntry = (message: StoredMsg): StreamEntry => ({
  seq: entrySeq(message),
  payload: message.string(),
  at: Number(message.header.get("Sb-At"))
})

/**
 * StreamStore shared by every node of a cluster, on NATS JetStream: one JetStream stream per prefix
 * (`<prefix>_history`), one subject per stored stream (`<prefix>.history.<base64url name>`). The
 * stored seq and the stream's head (epoch, last, first, count, bytes) travel in each message's
 * headers; an append reads the newest message of its subject and publishes with "expected last
 * subject sequence" = that message, so of two nodes appending at once one wins and the other
 * retries with the next seq: seqs are cluster-wide, without gaps or duplicates. Trimming purges the
 * subject below the oldest kept entry. A new stream starts with an epoch marker (no seq).
 */
export const makeNatsStreamStore = (options: NatsStreamStoreOptions) =>
  Effect.gen(function* () {
    const failure = (what: string) => (cause: unknown) =>
      new StorageError({ message: `${what} failed: ${cause instanceof Error ? cause.message : cause}`, cause })
    const connection: NatsConnection = yield* natsConnection(options.url, "switchboard-streams").pipe(
      Effect.mapError(failure("connecting to NATS"))
    )
    const manager: JetStreamManager = yield* Effect.tryPromise({
      try: () => jetstreamManager(connection),
      catch: failure("opening JetStream")
    })
    const client: JetStreamClient = (options.wrapClient ?? ((plain) => plain))(jetstream(connection))
    const name = natsHistoryStream(options.prefix)
    const history = natsResource(() =>
      manager.streams
        // A resent publish comes within seconds: the server need not remember msgIDs for its default 2 minutes.
        .add({ name, subjects: [`${options.prefix}.history.>`], allow_direct: true, duplicate_window: nanos(30_000) })
        .catch(() => manager.streams.info(name))
    )
    yield* Effect.tryPromise({ try: history.get, catch: failure(`creating the JetStream stream ${name}`) })
    // A server restarted without JetStream storage has lost the stream: it is made again (empty) at each
    // reconnect, before the operations that come after it, and when an operation finds it missing (that one fails).
    // While the connection is down every call fails at once, and one in flight fails when it drops (see NatsResources).
    const gate = followedGate(connection, history.renew)
    const failed = (what: string) => (error: unknown) => {
      if (resourceMissing(error)) void history.renew()
      return failure(what)(error)
    }
    const subjectOf = (stream: string) => `${options.prefix}.history.${Buffer.from(stream).toString("base64url")}`
    const get = (query: Parameters<JetStreamManager["direct"]["getMessage"]>[1]) =>
      manager.direct.getMessage(name, query)

    const readHead = async (subject: string): Promise<Head | undefined> => {
      const newest = await get({ last_by_subj: subject })
      return newest ? headOf(newest) : undefined
    }
    const publish = async (
      subject: string,
      payload: string,
      head: Omit<Head, "at">,
      after: number,
      extra = {},
      msgID?: string
    ) => {
      const h = headers()
      for (const [key, value] of Object.entries({
        "Sb-Epoch": head.epoch,
        "Sb-Last": head.last,
        "Sb-First": head.first,
        "Sb-Count": head.count,
        "Sb-Bytes": head.bytes,
        "Sb-From": head.from,
        ...extra
      }))
        h.set(key, String(value))
      const send = async () => {
        try {
          const options = { headers: h, expect: { lastSubjectSequence: after } }
          return await client.publish(subject, payload, msgID === undefined ? options : { ...options, msgID })
        } catch (error) {
          if (error instanceof JetStreamApiError && error.code === wrongLastSequence) return undefined
          throw error
        }
      }
      try {
        return await send()
      } catch (error) {
        // Refused by the server (a limit): not stored. Anything else (no answer) may have been stored: the same
        // message again under its msgID answers for sure, since JetStream dedupes it before checking the expected sequence.
        if (error instanceof JetStreamApiError || msgID === undefined) throw error
        try {
          return await send()
        } catch (again) {
          throw again instanceof JetStreamApiError ? again : new NoAnswer(String(again), { cause: again })
        }
      }
    }
    /** The head, writing the epoch marker of a new stream first (of two nodes doing so, one wins). */
    const ensureHead = async (subject: string): Promise<Head> => {
      for (;;) {
        const head = await readHead(subject)
        if (head) return head
        const fresh = { epoch: crypto.randomUUID(), last: 0, first: 1, count: 0, bytes: 0, from: 0 }
        await publish(subject, "", fresh, 0)
      }
    }

    /** The head after appending `seq` of `size` bytes and dropping the oldest entries that no longer fit. */
    /** A read of the subject's next message from `seq`, started early (while the entry before was published). */
    interface Prefetch {
      readonly seq: number
      readonly message: Promise<StoredMsg | null>
    }
    const prefetch = (subject: string, seq: number): Prefetch => ({
      seq,
      message: get({ next_by_subj: subject, seq }).catch(() => null)
    })
    // Only a message found is trusted: one published after the read started may be the one looked for.
    const nextFrom = async (subject: string, seq: number, early: Prefetch | undefined) =>
      (early?.seq === seq ? await early.message : null) ?? (await get({ next_by_subj: subject, seq }))

    const trimmed = async (subject: string, head: Head, size: number, bounds: StreamBounds, early?: Prefetch) => {
      const seq = head.last + 1
      let { first, count, bytes, from } = head.count === 0 ? { ...head, first: seq, from: head.at + 1 } : head
      count++
      bytes += size
      while (trimStep(count, bytes, bounds)) {
        const oldest = first === seq ? null : await nextFrom(subject, from, early)
        if (oldest === null) {
          // Only the new entry is left and it does not fit: it is stored and dropped at once.
          ;[first, count, bytes, from] = [seq + 1, 0, 0, head.at + 1]
          break
        }
        from = oldest.seq + 1
        if (entrySeq(oldest) < first) continue
        first++
        count--
        bytes -= oldest.data.length
      }
      return { epoch: head.epoch, last: seq, first, count, bytes, from }
    }

    /**
     * Appends in order, each publish a compare-and-set on the one before (JetStream 2.9 has no atomic batch, and the
     * next message's expected subject sequence is only known from the previous ack), but with one head read and one
     * purge per call rather than per entry. Losing a race re-reads the head and goes on with the entries left.
     */
    const appendMany = async (
      stream: string,
      payloads: ReadonlyArray<string>,
      bounds: StreamBounds,
      at: number,
      batch: string = crypto.randomUUID()
    ) => {
      const progress: Progress = { entries: [], publishing: false, abandoned: false }
      try {
        return await gate.whileUp(() => appendEach(stream, payloads, bounds, at, batch, progress))
      } catch (error) {
        // What went in stays (the head names it); the purge below it waits for the next append that trims.
        // A publish the dropped connection left unanswered may have been stored: unsure, as with no answer.
        progress.abandoned = true
        const dropped = error instanceof NotConnected && error.inFlight && progress.publishing
        throw new Stopped([...progress.entries], error instanceof NoAnswer || dropped, error)
      }
    }
    const appendEach = async (
      stream: string,
      payloads: ReadonlyArray<string>,
      bounds: StreamBounds,
      at: number,
      batch: string,
      progress: Progress
    ) => {
      const { entries } = progress
      const subject = subjectOf(stream)
      // Each entry's msgID (batch id and index): a publish whose answer was lost is sent again under it and stored once.
      let purgeBelow = 0
      while (entries.length < payloads.length) {
        let head = await ensureHead(subject)
        let early: Prefetch | undefined
        while (entries.length < payloads.length) {
          const payload = payloads[entries.length]!
          const next = await trimmed(subject, head, payloadBytes(payload), bounds, early)
          // A full stream drops its oldest entry for the next one too: read it while this one is published.
          early =
            next.first > head.first && entries.length + 1 < payloads.length ? prefetch(subject, next.from) : undefined
          // The client may send what it buffered once it reconnects: an append its caller was told failed stops here.
          if (progress.abandoned) throw new NotConnected(true)
          progress.publishing = true
          const ack = await publish(
            subject,
            payload,
            next,
            head.at,
            { "Sb-Seq": next.last, "Sb-At": at, "Sb-Prev": head.at },
            `${batch}.${entries.length}`
          )
          progress.publishing = false
          if (!ack) break
          // Stored by an earlier call with this batch id: its own seq and head come from the stored message.
          const earlier = ack.duplicate ? await get({ seq: ack.seq }) : null
          if (earlier) {
            entries.push(toEntry(earlier))
            head = headOf(earlier)
            continue
          }
          if (next.first > head.first || head.count === 0) purgeBelow = Math.min(next.from, ack.seq)
          entries.push({ seq: next.last, payload, at })
          head = { ...next, at: ack.seq }
        }
      }
      if (purgeBelow > 0) await manager.streams.purge(name, { filter: subject, seq: purgeBelow })
      return entries
    }

    const readAfter = async (stream: string, afterSeq: number, limit: number) => {
      const subject = subjectOf(stream)
      const head = await readHead(subject)
      if (!head || head.count === 0 || limit <= 0) return []
      const start = Math.max(afterSeq + 1, head.first)
      const end = Math.min(head.last, start + limit - 1)
      // Near the end (a node catching up on a few events) walk back from the newest message; otherwise read forward.
      if (head.last - start < start - head.first) return walkBack(head, start, end)
      const entries: Array<StreamEntry> = []
      let cursor = head.from
      while (start <= end) {
        const message = await get({ next_by_subj: subject, seq: cursor })
        if (message === null) break
        cursor = message.seq + 1
        const seq = entrySeq(message)
        if (seq > end) break
        if (seq >= start) entries.push(toEntry(message))
      }
      return entries
    }

    /** Entries start..end, read newest first through each entry's link to the message before it. */
    const walkBack = async (head: Head, start: number, end: number) => {
      const entries: Array<StreamEntry> = []
      let at = head.at
      while (at > 0) {
        const message = await get({ seq: at })
        if (message === null) break
        const seq = entrySeq(message)
        if (seq < start || seq === 0) break
        if (seq <= end) entries.push(toEntry(message))
        at = Number(message.header.get("Sb-Prev"))
      }
      return entries.reverse()
    }

    const run = <A>(what: string, stream: string, work: () => Promise<A>) =>
      Effect.tryPromise({
        try: () => gate.whileUp(() => history.get().then(work)),
        catch: failed(`${what} stream ${JSON.stringify(stream)}`)
      })

    const store: StreamStore["Type"] = {
      append: (stream, payload, bounds) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          run("appending to", stream, async () => (await appendMany(stream, [payload], bounds, at))[0]!)
        ),
      appendMany: (stream, payloads, bounds, batch) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Effect.tryPromise({
            try: () => gate.whileUp(history.get).then(() => appendMany(stream, payloads, bounds, at, batch)),
            catch: (error) => {
              const { message } = failed(`appending to stream ${JSON.stringify(stream)}`)(error)
              return error instanceof Stopped
                ? new PartialAppend({ message, stored: error.stored, unsure: error.unsure ? 1 : 0, cause: error.cause })
                : new StorageError({ message, cause: error })
            }
          })
        ),
      readAfter: (stream, afterSeq, limit = Number.MAX_SAFE_INTEGER) =>
        run("reading", stream, () => readAfter(stream, afterSeq, limit)),
      position: (stream) =>
        run("reading the position of", stream, async () => {
          const head = await ensureHead(subjectOf(stream))
          return { epoch: head.epoch, first: head.count === 0 ? 0 : head.first, last: head.last }
        }),
      remove: (stream) =>
        run("removing", stream, () => manager.streams.purge(name, { filter: subjectOf(stream) })).pipe(Effect.asVoid)
    }
    return store
  })

/** Needs a reachable NATS with JetStream (the program stops at start with one line otherwise). */
export const NatsStreamStore = (options: NatsStreamStoreOptions) =>
  Layer.scoped(StreamStore, makeNatsStreamStore(options))
