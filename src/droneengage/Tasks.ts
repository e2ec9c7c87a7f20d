import { Effect, Either, Schema } from "effect"
import { TaskStore } from "../../layers/Storage/TaskStore.ts"
import type { TaskQuery } from "../storage/Task.ts"
import { exceedsJsonDepth, maxJsonDepth } from "../shared/JsonDepth.ts"
import { describeParseError } from "./SchemaErrors.ts"
import { type Envelope, type RelayErrorReason, SystemMessage, type SystemOutcome, Target } from "./Wire.ts"

/**
 * Stored tasks, system messages 9001 load, 9002 save, 9003 delete, 9004 disable, with the
 * original's fields (ms: ai account, ps party, gn group, s sender, r receiver, mt stored message
 * type, ip permanent, t body, lts larger-than id) and replies. Unlike the original, which trusts
 * `ai`, a unit only ever reaches its own account's tasks: a foreign `ai` is refused.
 */

export interface TasksOptions {
  /** Largest task body (`t` as JSON, UTF-8 bytes). */
  readonly maxBodyBytes: number
  /** Tasks an account may keep (enabled or not); a load replays at most this many. */
  readonly maxTasksPerAccount: number
  /**
   * Most bytes one load replays (at least one task): below the transport's slow-consumer limit,
   * so a large load never closes the unit. The rest comes with another load, lts = the last sid.
   */
  readonly maxLoadBytes: number
}

/** Who asks: the account comes from the unit's login, never from the message. */
export interface TaskCaller {
  readonly accountId: string
  /** The account's name when the authenticator sent it (clients write the name in `ai`). */
  readonly accountName?: string | undefined
  readonly unitName: string
}

export type TaskOutcome = SystemOutcome

const Field = Schema.String.pipe(Schema.maxLength(255))
const DigitString = Schema.String.pipe(Schema.pattern(/^\d{1,15}$/))

/** The request body (ms, or ms as JSON text for older clients); other keys (e.g. `ac`) are ignored. */
export const TaskRequest = Schema.Struct({
  ai: Schema.optional(Field),
  ps: Schema.optional(Field),
  gn: Schema.optional(Field),
  s: Schema.optional(Field),
  r: Schema.optional(Field),
  mt: Schema.optional(Schema.Int.pipe(Schema.between(0, 2_147_483_647))),
  ip: Schema.optional(Schema.Union(Schema.Boolean, Schema.Literal(0, 1))),
  lts: Schema.optional(Schema.Union(Schema.NonNegativeInt, DigitString)),
  t: Schema.optional(Schema.Unknown)
})
export type TaskRequest = typeof TaskRequest.Type

const decodeRequest = Schema.decodeUnknownEither(TaskRequest)
const maxDepth = 32

/** Whether a parsed JSON value nests at most `limit` arrays/objects deep (checked without recursion). */
export const depthWithin = (value: unknown, limit: number): boolean => {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!
    if (current === null || typeof current !== "object") continue
    if (depth >= limit) return false
    for (const child of Object.values(current)) stack.push([child, depth + 1])
  }
  return true
}

const refused = (reason: RelayErrorReason, text: string): TaskOutcome => ({ _tag: "Refused", reason, text })
const byteLength = (text: string) => Buffer.byteLength(text, "utf8")

/** The request fields as a store query for the caller's own account. */
const queryOf = (accountId: string, request: TaskRequest, withLts: boolean): TaskQuery => ({
  accountId,
  afterId: withLts && request.lts !== undefined ? Number(request.lts) : undefined,
  party: request.ps,
  group: request.gn,
  sender: request.s,
  receiver: request.r,
  messageType: request.mt,
  permanent: request.ip === undefined ? undefined : request.ip === true || request.ip === 1
})

export const makeTasks = (options: TasksOptions) =>
  Effect.gen(function* () {
    const store = yield* TaskStore
    // Saves are rare: one at a time keeps the count-then-insert quota check exact on this relay.
    const saving = yield* Effect.makeSemaphore(1)

    /** Replies are the request turned around, as the original does: individual, to the unit, from _SYS_. */
    const replyBase = (caller: TaskCaller, envelope: Envelope) => {
      const { p: _permission, ...rest } = envelope
      return { ...rest, ty: "i", tg: caller.unitName, sd: Target.system }
    }
    const done = (caller: TaskCaller, envelope: Envelope, type: number): TaskOutcome => ({
      _tag: "Replies",
      frames: [JSON.stringify({ ...replyBase(caller, envelope), mt: type, ms: "Done" })]
    })

    const parse = (caller: TaskCaller, envelope: Envelope): Either.Either<TaskRequest, TaskOutcome> => {
      let body = envelope.ms
      if (typeof body === "string") {
        if (exceedsJsonDepth(body))
          return Either.left(refused("task-invalid", `ms nests deeper than ${maxJsonDepth} levels`))
        try {
          body = JSON.parse(body)
        } catch {
          return Either.left(refused("task-invalid", "ms is text but not JSON"))
        }
      }
      if (body === null || typeof body !== "object" || Array.isArray(body))
        return Either.left(refused("task-invalid", "ms must be an object"))
      const decoded = decodeRequest(body)
      if (Either.isLeft(decoded)) {
        return Either.left(refused("task-invalid", describeParseError(decoded.left, "ms")))
      }
      const { ai } = decoded.right
      if (ai !== undefined && ai.length > 0 && ai !== caller.accountId && ai !== caller.accountName) {
        return Either.left(
          refused("foreign-account", "ai names another account: a unit can only use its own account's tasks")
        )
      }
      return Either.right(decoded.right)
    }

    const save = (caller: TaskCaller, envelope: Envelope, request: TaskRequest) =>
      Effect.gen(function* () {
        if (request.mt === undefined || request.t === undefined)
          return refused("task-invalid", "a save needs mt (the task's message type) and t (its body)")
        if (!depthWithin(request.t, maxDepth)) return refused("task-invalid", `t nests deeper than ${maxDepth} levels`)
        const body = JSON.stringify(request.t)
        if (byteLength(body) > options.maxBodyBytes)
          return refused("task-too-large", `t is over ${options.maxBodyBytes} bytes`)
        const query = queryOf(caller.accountId, request, false)
        const messageType = request.mt
        return yield* saving.withPermits(1)(
          Effect.gen(function* () {
            if ((yield* store.count(caller.accountId)) >= options.maxTasksPerAccount) {
              return refused(
                "task-quota",
                `the account already keeps ${options.maxTasksPerAccount} tasks; delete some first`
              )
            }
            yield* store.save({ ...query, messageType, permanent: query.permanent ?? false, body })
            return done(caller, envelope, SystemMessage.saveTasks)
          })
        )
      })

    const load = (caller: TaskCaller, envelope: Envelope, request: TaskRequest) =>
      Effect.map(
        store.load(queryOf(caller.accountId, request, true), options.maxTasksPerAccount),
        (tasks): TaskOutcome => {
          const base = replyBase(caller, envelope)
          const frames: Array<string> = []
          let bytes = 0
          for (const task of tasks) {
            const frame = JSON.stringify({ ...base, sid: task.id, ms: JSON.parse(task.body), mt: task.messageType })
            bytes += byteLength(frame)
            if (frames.length > 0 && bytes > options.maxLoadBytes) break
            frames.push(frame)
          }
          return { _tag: "Replies", frames }
        }
      )

    /** Delete and disable select like a load, plus `t` as the exact stored body. */
    const selection = (caller: TaskCaller, request: TaskRequest): TaskQuery => ({
      ...queryOf(caller.accountId, request, false),
      body: request.t === undefined ? undefined : JSON.stringify(request.t)
    })

    /** Answers one task message; storage failures are refusals too (the unit is told, the relay goes on). */
    const handle = (caller: TaskCaller, envelope: Envelope): Effect.Effect<TaskOutcome> => {
      const parsed = parse(caller, envelope)
      if (Either.isLeft(parsed)) return Effect.succeed(parsed.left)
      const request = parsed.right
      const work: Effect.Effect<TaskOutcome, { readonly message: string }> =
        envelope.mt === SystemMessage.loadTasks
          ? load(caller, envelope, request)
          : envelope.mt === SystemMessage.saveTasks
            ? save(caller, envelope, request)
            : envelope.mt === SystemMessage.deleteTasks
              ? Effect.as(store.remove(selection(caller, request)), done(caller, envelope, SystemMessage.deleteTasks))
              : Effect.as(store.disable(selection(caller, request)), done(caller, envelope, SystemMessage.disableTasks))
      return work.pipe(
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logError("task storage failed", error.message),
            refused("task-storage", "the task storage failed; try again later")
          )
        )
      )
    }

    return { handle } as const
  })

export type Tasks = Effect.Effect.Success<ReturnType<typeof makeTasks>>
