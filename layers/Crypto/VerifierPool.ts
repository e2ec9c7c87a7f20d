import { Effect, Layer, Runtime } from "effect"
import {
  InlineSignatureVerifier,
  makeInlineVerifier,
  type PssScheme,
  SignatureVerifier,
  type SignatureVerifierService
} from "./SignatureVerifier.ts"

/** The messages between the pool and its workers (`VerifierWorker.ts`). */
export interface WorkerInit {
  readonly scheme: PssScheme
}
export interface WorkerBatch {
  readonly seq: number
  /** Base64 SPKI of the keys the items use, each once. */
  readonly keys: ReadonlyArray<string>
  /** Per item: "keyIndex textLength signatureLength\n", the text, the signature (lengths in UTF-16 units). */
  readonly items: string
  readonly count: number
}
export interface WorkerResult {
  readonly seq: number
  readonly results: Uint8Array
}

export interface VerifierPoolOptions {
  readonly scheme: PssScheme
  readonly threads: number
  /** Checks queued or on a worker at most; beyond, `verify` checks inline (the event loop slows, so reading does). */
  readonly maxInFlight: number
  /** Items per batch at most: a turn with more sends several, so several workers share them. */
  readonly maxBatch?: number
  /** Workers that may die on one batch before its items are answered false (a poison input must not loop). */
  readonly maxAttempts?: number
  /** The worker script (tests swap in one that crashes). */
  readonly workerUrl?: URL
  /** A worker died and was replaced: a line to report. */
  readonly onCrash: (message: string) => void
}

export interface VerifierPool extends SignatureVerifierService {
  /** Checks handed to workers and not answered yet. */
  readonly inFlight: () => number
  /** Workers replaced after dying. */
  readonly restarts: () => number
  /** Stops the workers; what is still in flight is answered false. */
  readonly close: () => void
}

/** Bun's worker error text carries the source around the throw: keep its "error: ..." line. */
const errorLine = (message: string) => /^error: .*$/m.exec(message)?.[0] ?? `error: ${message.split("\n")[0]}`

interface Batch {
  readonly message: WorkerBatch
  readonly resolvers: ReadonlyArray<(valid: boolean) => void>
  attempts: number
}

interface Slot {
  worker: Worker
  /** Batches posted to `worker`, answered in this order (a worker handles its messages one by one). */
  readonly queue: Array<Batch>
  items: number
}

/**
 * RSA-PSS checks on `threads` Bun Workers. The checks asked for in one event-loop turn go to the
 * least busy worker as one message (one structured clone of a string, keys sent once per batch), so
 * the event loop pays ~1 µs per check instead of the check itself (~14-20 µs). Each check's promise
 * resolves when its worker answers; callers keep their own order (the Neighbourhood's OrderedWork).
 * A worker that dies (error or exit) is reported and replaced, and its unanswered batches are sent to
 * the new one, so every check is answered exactly once.
 */
export const makeVerifierPool = (options: VerifierPoolOptions): VerifierPool => {
  const inline = makeInlineVerifier(options.scheme)
  const url = options.workerUrl ?? new URL("./VerifierWorker.ts", import.meta.url)
  const maxBatch = options.maxBatch ?? 64
  const maxAttempts = options.maxAttempts ?? 3
  const base64Keys = new WeakMap<Uint8Array, string>()
  let seq = 0
  let inFlight = 0
  let restarts = 0
  let closed = false

  // The batch being filled in this turn.
  let keyIndex = new Map<Uint8Array, number>()
  let keys: Array<string> = []
  let parts: Array<string> = []
  let resolvers: Array<(valid: boolean) => void> = []

  const answer = (batch: Batch, results?: Uint8Array) => {
    inFlight -= batch.resolvers.length
    for (let i = 0; i < batch.resolvers.length; i++) batch.resolvers[i]!(results?.[i] === 1)
  }

  const settle = (slot: Slot, result: WorkerResult) => {
    const batch = slot.queue.shift()
    if (!batch) return
    slot.items -= batch.message.count
    // A worker answers in order; a mismatch would be a bug here, and answering false is the safe reading.
    answer(batch, batch.message.seq === result.seq ? result.results : undefined)
  }

  const spawn = (slot: Slot | undefined): Worker => {
    const worker = new Worker(url)
    worker.postMessage({ scheme: options.scheme } satisfies WorkerInit)
    const current = () => (slot ? slot.worker === worker : false)
    worker.onmessage = (event: MessageEvent<WorkerResult>) => {
      if (slot && current()) settle(slot, event.data)
    }
    const died = (reason: string) => {
      if (slot && current() && !closed) replace(slot, reason)
    }
    worker.addEventListener("error", (event) => died(errorLine((event as ErrorEvent).message)))
    worker.addEventListener("close", () => died("exited"))
    return worker
  }

  const replace = (slot: Slot, reason: string) => {
    restarts++
    const dead = slot.worker
    slot.worker = spawn(slot)
    dead.terminate()
    // The dead worker's unanswered batches go to its successor in order; one that killed too many is refused.
    const resent = slot.queue.splice(0)
    slot.items = 0
    let refused = 0
    for (const batch of resent) {
      batch.attempts++
      if (batch.attempts >= maxAttempts) {
        refused += batch.message.count
        answer(batch)
        continue
      }
      slot.queue.push(batch)
      slot.items += batch.message.count
      slot.worker.postMessage(batch.message)
    }
    options.onCrash(
      `signature worker died (${reason}); replaced it and sent ${slot.items} unanswered check(s) again` +
        (refused > 0 ? `, ${refused} refused after ${maxAttempts} workers died on them` : "")
    )
  }

  const slots: Array<Slot> = []
  for (let i = 0; i < options.threads; i++) {
    const slot: Slot = { worker: undefined as unknown as Worker, queue: [], items: 0 }
    slot.worker = spawn(slot)
    slots.push(slot)
  }

  const flush = () => {
    if (resolvers.length === 0) return
    const batch: Batch = {
      message: { seq: seq++, keys, items: parts.join(""), count: resolvers.length },
      resolvers,
      attempts: 0
    }
    keyIndex = new Map()
    keys = []
    parts = []
    resolvers = []
    let slot = slots[0]!
    for (const other of slots) if (other.items < slot.items) slot = other
    slot.queue.push(batch)
    slot.items += batch.message.count
    slot.worker.postMessage(batch.message)
  }

  const verify = (spki: Uint8Array, text: string, signature: string): boolean | Promise<boolean> => {
    if (closed || inFlight >= options.maxInFlight) return inline.verify(spki, text, signature)
    // One flush per event-loop turn (not a timer): everything read in this turn goes in one message.
    if (resolvers.length === 0) setImmediate(flush)
    let index = keyIndex.get(spki)
    if (index === undefined) {
      let base64 = base64Keys.get(spki)
      if (base64 === undefined) {
        base64 = Buffer.from(spki).toString("base64")
        base64Keys.set(spki, base64)
      }
      index = keys.length
      keys.push(base64)
      keyIndex.set(spki, index)
    }
    parts.push(`${index} ${text.length} ${signature.length}\n`, text, signature)
    inFlight++
    const result = new Promise<boolean>((resolve) => resolvers.push(resolve))
    if (resolvers.length >= maxBatch) flush()
    return result
  }

  const close = () => {
    if (closed) return
    closed = true
    for (const slot of slots) {
      slot.worker.terminate()
      for (const batch of slot.queue.splice(0)) answer(batch)
    }
    const unsent = resolvers
    resolvers = []
    inFlight -= unsent.length
    for (const resolve of unsent) resolve(false)
  }

  return { threads: options.threads, verify, inFlight: () => inFlight, restarts: () => restarts, close }
}

/** The pool as the SignatureVerifier for the layer's lifetime; a dead worker is logged as an error. */
export const VerifierPoolLive = (options: Omit<VerifierPoolOptions, "onCrash">) =>
  Layer.scoped(
    SignatureVerifier,
    Effect.gen(function* () {
      const runFork = Runtime.runFork(yield* Effect.runtime<never>())
      return yield* Effect.acquireRelease(
        Effect.sync(() =>
          makeVerifierPool({ ...options, onCrash: (message) => void runFork(Effect.logError(message)) })
        ),
        (pool) => Effect.sync(pool.close)
      )
    })
  )

/** Checks in flight at most by default: ~60 ms of one worker's work; past it the event loop checks inline. */
export const defaultMaxInFlight = 4096

/** `threads` 0: inline on the event loop; else a pool of that many workers. */
export const SignatureVerifierFor = (scheme: PssScheme, threads: number, maxInFlight = defaultMaxInFlight) =>
  threads === 0 ? InlineSignatureVerifier(scheme) : VerifierPoolLive({ scheme, threads, maxInFlight })
