/**
 * Stored tasks (DroneEngage system messages 9001-9004): saved commands such as missions or
 * geofences that units replay across sessions. Always scoped to one account.
 */

/** The fields a task is saved with; the optional ones are the original's ps, gn, s, r. */
export interface NewTask {
  readonly accountId: string
  readonly party?: string | undefined
  readonly group?: string | undefined
  readonly sender?: string | undefined
  readonly receiver?: string | undefined
  readonly messageType: number
  readonly permanent: boolean
  /** The task body as JSON text. */
  readonly body: string
}

export interface StoredTask extends NewTask {
  /** Increasing, never reused; what a load replays as `sid` and what `lts` compares with. */
  readonly id: number
  readonly enabled: boolean
  /** Epoch milliseconds when saved. */
  readonly createdAt: number
}

/** Which tasks of an account a load, delete or disable applies to; an absent field matches any value. */
export interface TaskQuery {
  readonly accountId: string
  /** Only tasks with a larger id (the original's lts). */
  readonly afterId?: number | undefined
  readonly party?: string | undefined
  readonly group?: string | undefined
  readonly sender?: string | undefined
  readonly receiver?: string | undefined
  readonly messageType?: number | undefined
  readonly permanent?: boolean | undefined
  /** The exact stored body (JSON text). */
  readonly body?: string | undefined
}

const same = <A>(wanted: A | undefined, actual: A | undefined) => wanted === undefined || wanted === actual

/** Whether `task` is selected by `query` (the memory store's filter; the SQL store builds the same WHERE). */
export const matchesQuery = (query: TaskQuery, task: StoredTask): boolean =>
  task.accountId === query.accountId &&
  (query.afterId === undefined || task.id > query.afterId) &&
  same(query.party, task.party) &&
  same(query.group, task.group) &&
  same(query.sender, task.sender) &&
  same(query.receiver, task.receiver) &&
  same(query.messageType, task.messageType) &&
  same(query.permanent, task.permanent) &&
  same(query.body, task.body)
