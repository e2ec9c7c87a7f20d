import { Effect, Either, Queue, Runtime, Schema } from "effect"
import type { FederationService } from "../../layers/Federation/Federation.ts"
import { repeatEvery } from "../shared/Sweeps.ts"
import type { NeighbourState } from "./Mesh.ts"
import type { NeighbourhoodContext } from "./NeighbourFrames.ts"
import { encodeError } from "./Wire.ts"

/** What a link's holder tells a node that handed it frames: which it sent on the link, which not (link down). */
const Receipt = Schema.parseJson(
  Schema.Struct({
    neighbour: Schema.String,
    sent: Schema.Array(Schema.Int),
    failed: Schema.Array(Schema.Int)
  })
)
const decodeReceipt = Schema.decodeUnknownEither(Receipt)
const encodeReceipt = Schema.encodeSync(Receipt)

/** A handed frame with no receipt after this many sweeps (one a second) may be lost: its sender hears so. */
const sweepsBeforeUnconfirmed = 5
/** Frames awaiting a receipt at most; beyond, the oldest counts as unconfirmed. */
const maxPending = 10_000
/** At most this many frames of the link's queue go out before their receipts do. */
const receiptBatch = 256

interface Pending {
  readonly neighbour: string
  readonly from: string
  readonly sweep: number
}

export interface HandedFramesOptions {
  readonly ctx: NeighbourhoodContext
  readonly federation: FederationService
  /** This node among the nodes of its server name. */
  readonly origin: string
  /** Reads the cluster's client list of this server again (a frame from a client this node does not list yet). */
  readonly refreshMembers: Effect.Effect<void>
}

/**
 * Frames of our clients for a neighbour whose link another node holds: handed to the holder over the
 * cluster's bus, which answers with a receipt. A frame the holder could not send (its link is down or
 * moving) or that no holder answered for (it died, the bus lost it) is reported to its sender (an
 * `error`, the `link_moved` / `link_unconfirmed` refusal counts, a warning); none is sent twice, so a
 * public chat never reaches the neighbour twice.
 */
export const handedFrames = (options: HandedFramesOptions) =>
  Effect.gen(function* () {
    const { ctx, federation, origin } = options
    const { mesh } = ctx
    const framesSubject = (n: NeighbourState) => `neighbourhood/${mesh.address}/to/${n.address}`
    const receiptsSubject = (node: string) => `neighbourhood/${mesh.address}/receipts/${node}`
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const pending = new Map<number, Pending>()
    let sequence = 0
    let sweep = 0

    const report = (entry: Pending, sent: "not" | "maybe") => {
      const reason = sent === "not" ? "link_moved" : "link_unconfirmed"
      ctx.refused(reason)
      const text =
        sent === "not"
          ? `message not delivered to ${entry.neighbour}: its link is moving between nodes of this server; send it again`
          : `message to ${entry.neighbour} unconfirmed: its link moved between nodes of this server; it may not have arrived`
      mesh.localClients.get(entry.from)?.connection.send(encodeError(text))
      ctx.warn(`neighbour ${entry.neighbour}: a message of ${entry.from} handed to the link's holder was ${reason}`)
    }

    /** Sends `frame` (of our client `from`) to the node holding the link to `n`. */
    const hand = (n: NeighbourState, frame: string, from: string | undefined) => {
      const seq = ++sequence
      if (from) {
        pending.set(seq, { neighbour: n.address, from, sweep })
        if (pending.size > maxPending) {
          const [oldest, entry] = pending.entries().next().value!
          pending.delete(oldest)
          report(entry, "maybe")
        }
      }
      runFork(federation.publish(framesSubject(n), `${origin} ${seq} ${from || "-"} ${frame}`))
    }

    const applyReceipt = (payload: string): void => {
      const decoded = decodeReceipt(payload)
      if (Either.isLeft(decoded)) {
        ctx.warn("neighbour links: a node of this server sent an invalid receipt")
        return
      }
      for (const seq of decoded.right.sent) pending.delete(seq)
      for (const seq of decoded.right.failed) {
        const entry = pending.get(seq)
        if (!entry) continue
        pending.delete(seq)
        report(entry, "not")
      }
    }
    const receipts = yield* federation.subscribe(receiptsSubject(origin))
    yield* Queue.take(receipts).pipe(Effect.map(applyReceipt), Effect.forever, Effect.forkScoped)
    yield* repeatEvery("handed neighbour frames", "1 second", () =>
      Effect.sync(() => {
        sweep++
        for (const [seq, entry] of pending) {
          if (sweep - entry.sweep < sweepsBeforeUnconfirmed) break
          pending.delete(seq)
          report(entry, "maybe")
        }
      })
    )

    /** The holder's side: frames other nodes handed over for `n` go out on our link, after our client_update. */
    const forward = (n: NeighbourState, frames: Queue.Dequeue<string>) =>
      Effect.gen(function* () {
        const batch = yield* Queue.takeBetween(frames, 1, receiptBatch)
        const answers = new Map<string, { sent: Array<number>; failed: Array<number> }>()
        for (const payload of batch) {
          const [node, seqText, from] = payload.split(" ", 3) as [string, string | undefined, string | undefined]
          const seq = Number(seqText)
          if (from === undefined || !Number.isSafeInteger(seq)) continue
          const frame = payload.slice(node.length + seqText!.length + from.length + 3)
          // A client that joined on another node a moment ago: the neighbour must hear of it before its message.
          if (from !== "-" && !mesh.hasOwnClient(from)) yield* options.refreshMembers
          ctx.flushClientUpdate()
          const channel = mesh.channelTo(n)
          const up = channel !== undefined && channel.direction !== "cluster"
          if (up) channel.send(frame)
          let answer = answers.get(node)
          if (!answer) answers.set(node, (answer = { sent: [], failed: [] }))
          ;(up ? answer.sent : answer.failed).push(seq)
        }
        for (const [node, answer] of answers)
          yield* federation.publish(receiptsSubject(node), encodeReceipt({ neighbour: n.address, ...answer }))
      }).pipe(Effect.forever)

    return { hand, forward, framesSubject }
  })
