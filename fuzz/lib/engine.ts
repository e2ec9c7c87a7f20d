import { FastCheck as fc } from "effect"
import { rssBytes } from "../../bench/lib/proc.ts"
import { type DefectId, KNOWN_DEFECTS } from "../answers.ts"

/**
 * Runs one protocol's generated cases against its server (a child process) over several
 * connections at once, checks the invariants after every case and every batch, and minimizes
 * the first failing case of each kind with fast-check's shrinking (replaying seed + path).
 */

export type Invariant =
  | "documented-answer" // the reply is a documented error reply, status or close code
  | "no-internal-error" // no HTTP 500 without a documented body, no close 1011
  | "no-abrupt-close" // no 1006 (TCP gone without a close frame)
  | "no-echo" // an error reply repeats at most a short prefix of the input
  | "no-internals" // error texts name the field and the rule, not the schema's type
  | "answered" // the server answers (or closes) within the timeout
  | "canary" // a separate connection keeps exchanging messages
  | "process-up" // the server process stays up
  | "rss-bounded" // resident memory stays under the limit

export interface Violation {
  readonly invariant: Invariant
  readonly detail: string
  /** The issue-12 defect this is an instance of, when it is one. */
  readonly defect?: DefectId
}

/** A protocol's server, started for one run, and how to put one case to it. */
export interface Session<Case> {
  readonly pids: ReadonlyArray<number>
  /** Connections (or HTTP requests) in flight at once. */
  readonly lanes: number
  /** Sends one case on `lane` and returns what was wrong with the answer (empty: all invariants hold). */
  readonly execute: (lane: number, testCase: Case) => Promise<ReadonlyArray<Violation>>
  /** One round trip on the canary connection; rejects when it fails. */
  readonly canary: () => Promise<void>
  readonly stop: () => Promise<void>
}

/** One protocol of the suite: adding a protocol is one file exporting one of these (fuzz/protocols/). */
export interface FuzzProtocol<Case> {
  readonly name: string
  readonly title: string
  readonly arbitrary: fc.Arbitrary<Case>
  readonly start: () => Promise<Session<Case>>
  /** A JSON-able repro: the case as generated (placeholders `$huge`/`$deep` stand for long values). */
  readonly describe?: (testCase: Case) => unknown
}

export interface RunSettings {
  readonly cases: number
  readonly seed: number
  readonly batchSize: number
  /** Resident memory above the first sample plus this is a violation. */
  readonly rssHeadroomBytes: number
  /** Time fast-check may spend shrinking one failure (0: no shrinking). */
  readonly shrinkMs: number
  /** Also shrink violations of known defects (their repros go in the report). */
  readonly shrinkKnown: boolean
  /** Stop starting batches after this long (the CI version's bound; the full run has none). */
  readonly timeBudgetMs?: number
  readonly log: (line: string) => void
}

export interface Finding {
  readonly invariant: Invariant
  readonly defect?: DefectId
  readonly known: boolean
  readonly count: number
  readonly detail: string
  readonly repro?: unknown
  readonly minimized?: unknown
  readonly minimizedDetail?: string
  /** fast-check replay: FC_SEED=<seed> with this path reproduces the case. */
  readonly replay?: { readonly seed: number; readonly path: string }
}

export interface ProtocolResult {
  readonly protocol: string
  readonly title: string
  readonly cases: number
  readonly seconds: number
  readonly casesPerSecond: number
  readonly canaryRoundTrips: number
  readonly rssStartBytes: number
  readonly rssPeakBytes: number
  readonly rssEndBytes: number
  readonly restarts: number
  readonly findings: ReadonlyArray<Finding>
  /** Violations not explained by a known defect: the run fails when this is not 0. */
  readonly unknownViolations: number
  readonly knownViolations: number
}

/** Defects whose cases keep the server busy for seconds. */
const STALLING_DEFECTS: ReadonlyArray<DefectId> = ["12.3"]

const keyOf = (violation: Violation) => `${violation.invariant}|${violation.defect ?? ""}`
const isKnown = (violation: Violation) => violation.defect !== undefined && KNOWN_DEFECTS.includes(violation.defect)

const withTimeout = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const rssOf = (pids: ReadonlyArray<number>) => pids.reduce((sum, pid) => sum + (rssBytes(pid) || 0), 0)

/** A case in a repro, with long strings cut (the placeholders already keep huge values short). */
const short = (value: unknown): unknown =>
  JSON.parse(
    JSON.stringify(value, (_key, field) =>
      typeof field === "string" && field.length > 200 ? `${field.slice(0, 200)}…(${field.length})` : field
    ) ?? "null"
  )

interface Recorded {
  violation: Violation
  count: number
  testCase: unknown
  seed: number
  path: string
}

export const runProtocol = async <Case>(
  protocol: FuzzProtocol<Case>,
  settings: RunSettings
): Promise<ProtocolResult> => {
  const describe = protocol.describe ?? ((testCase: Case) => testCase)
  let session = await protocol.start()
  let restarts = 0
  const recorded = new Map<string, Recorded>()
  // A known defect that stalls the server (deep JSON takes seconds to fail) also delays the canary and
  // other lanes: such delays, in the batch of the stall or the next, count as that defect.
  let stallDefects = new Set<DefectId>()
  let previousStallDefects = new Set<DefectId>()
  const stallDefect = (): DefectId | undefined => [...stallDefects, ...previousStallDefects][0]
  const record = (found: Violation, testCase: unknown, seed: number, path: string) => {
    if (found.defect && STALLING_DEFECTS.includes(found.defect)) stallDefects.add(found.defect)
    const delayed =
      (found.invariant === "canary" || found.invariant === "answered") && !found.defect ? stallDefect() : undefined
    const violation = delayed
      ? { ...found, defect: delayed, detail: `${found.detail} (while defect ${delayed} stalled the server)` }
      : found
    const key = keyOf(violation)
    const entry = recorded.get(key)
    if (entry) entry.count++
    else {
      recorded.set(key, { violation, count: 1, testCase, seed, path })
      settings.log(
        `  ${protocol.name}: ${isKnown(violation) ? "known defect " + violation.defect : "VIOLATION"} ${violation.invariant}: ${violation.detail}`
      )
    }
  }
  const rssStart = rssOf(session.pids)
  let rssPeak = rssStart
  let canaryTrips = 0
  let done = 0
  let executing = 0

  // The canary exchanges messages all the time the cases run, not only between batches.
  let canaryFailure: string | undefined
  let canaryStop = false
  const canaryLoop = async () => {
    while (!canaryStop) {
      try {
        await withTimeout(session.canary(), 10_000, "canary round trip")
        canaryTrips++
      } catch (error) {
        canaryFailure ??= (error as Error).message
      }
      await Bun.sleep(20)
    }
  }
  const canaryDone = canaryLoop()

  const started = performance.now()
  const overBudget = () => settings.timeBudgetMs !== undefined && performance.now() - started > settings.timeBudgetMs
  for (let batch = 0; done < settings.cases; batch++) {
    if (overBudget()) {
      settings.log(`  ${protocol.name}: time budget of ${settings.timeBudgetMs} ms spent after ${done} cases`)
      break
    }
    const size = Math.min(settings.batchSize, settings.cases - done)
    const seed = settings.seed + batch
    const cases = fc.sample(protocol.arbitrary, { seed, numRuns: size })
    let next = 0
    const laneWork = async (lane: number) => {
      while (next < cases.length && !overBudget()) {
        const index = next++
        const testCase = cases[index]!
        let violations: ReadonlyArray<Violation>
        try {
          violations = await withTimeout(session.execute(lane, testCase), 30_000, "case")
        } catch (error) {
          violations = [{ invariant: "answered", detail: (error as Error).message }]
        }
        for (const violation of violations) record(violation, testCase, seed, String(index))
      }
    }
    previousStallDefects = stallDefects
    stallDefects = new Set()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: session.lanes }, (_, lane) => laneWork(lane)))
    executing += performance.now() - t0
    done += Math.min(size, next)
    const dead = session.pids.filter((pid) => !alive(pid))
    if (dead.length > 0) {
      record(
        { invariant: "process-up", detail: `server process ${dead.join(", ")} exited during batch ${batch}` },
        cases[0],
        seed,
        "0"
      )
      canaryStop = true
      await canaryDone.catch(() => {})
      await session.stop().catch(() => {})
      session = await protocol.start()
      restarts++
      canaryStop = false
      void canaryLoop()
      continue
    }
    const rss = rssOf(session.pids)
    rssPeak = Math.max(rssPeak, rss)
    if (rss > rssStart + settings.rssHeadroomBytes) {
      record(
        {
          invariant: "rss-bounded",
          detail: `RSS ${(rss / 2 ** 20).toFixed(0)} MiB after ${done} cases (start ${(rssStart / 2 ** 20).toFixed(0)} MiB)`
        },
        cases[0],
        seed,
        "0"
      )
    }
    if (canaryFailure) {
      record({ invariant: "canary", detail: `${canaryFailure} (during batch ${batch})` }, cases[0], seed, "0")
      canaryFailure = undefined
    }
    if (batch % 20 === 19) {
      const rate = done / (executing / 1000)
      settings.log(
        `  ${protocol.name}: ${done}/${settings.cases} cases, ${rate.toFixed(0)} cases/s, RSS ${(rss / 2 ** 20).toFixed(0)} MiB`
      )
    }
  }
  canaryStop = true
  await canaryDone
  const rssEnd = rssOf(session.pids)

  const findings: Array<Finding> = []
  for (const entry of recorded.values()) {
    const { violation } = entry
    let minimized: { value: unknown; detail: string } | undefined
    const perCase =
      violation.invariant !== "canary" && violation.invariant !== "rss-bounded" && violation.invariant !== "process-up"
    if (settings.shrinkMs > 0 && perCase && (settings.shrinkKnown || !isKnown(violation)))
      minimized = await shrink(protocol, session, entry, settings).catch(() => undefined)
    findings.push({
      invariant: violation.invariant,
      ...(violation.defect ? { defect: violation.defect } : {}),
      known: isKnown(violation),
      count: entry.count,
      detail: violation.detail,
      repro: short(describe(entry.testCase as Case)),
      ...(minimized ? { minimized: short(describe(minimized.value as Case)), minimizedDetail: minimized.detail } : {}),
      replay: { seed: entry.seed, path: entry.path }
    })
  }
  await session.stop()
  const seconds = executing / 1000
  const count = (known: boolean) =>
    findings.filter((finding) => finding.known === known).reduce((sum, finding) => sum + finding.count, 0)
  return {
    protocol: protocol.name,
    title: protocol.title,
    cases: done,
    seconds: Math.round(seconds * 10) / 10,
    casesPerSecond: Math.round(done / seconds),
    canaryRoundTrips: canaryTrips,
    rssStartBytes: rssStart,
    rssPeakBytes: rssPeak,
    rssEndBytes: rssEnd,
    restarts,
    findings,
    unknownViolations: count(false),
    knownViolations: count(true)
  }
}

/** Replays the failing case (seed + path) and lets fast-check shrink it while the same kind of violation persists. */
const shrink = async <Case>(
  protocol: FuzzProtocol<Case>,
  session: Session<Case>,
  entry: Recorded,
  settings: RunSettings
) => {
  const key = keyOf(entry.violation)
  let lastDetail = entry.violation.detail
  const property = fc.asyncProperty(protocol.arbitrary, async (testCase) => {
    const violations = await withTimeout(session.execute(0, testCase), 30_000, "case").catch((error: Error) => [
      { invariant: "answered" as const, detail: error.message }
    ])
    const same = violations.find((violation) => keyOf(violation) === key)
    if (same) lastDetail = same.detail
    return same === undefined
  })
  const result = await fc.check(property, {
    seed: entry.seed,
    path: entry.path,
    numRuns: settings.batchSize,
    interruptAfterTimeLimit: settings.shrinkMs,
    markInterruptAsFailure: false
  })
  if (!result.failed || !result.counterexample) return undefined
  return { value: result.counterexample[0], detail: lastDetail }
}
