import { Context, type Effect } from "effect"
import type { StorageError } from "../../src/storage/Account.ts"
import type { NewTask, StoredTask, TaskQuery } from "../../src/storage/Task.ts"

/**
 * Stored tasks of DroneEngage units, per account. Backends: memory (MemoryTaskStore), SQLite and
 * MySQL (SqlTaskStore). Every operation names its account; nothing reads across accounts.
 */
export class TaskStore extends Context.Tag("switchboard/TaskStore")<
  TaskStore,
  {
    readonly save: (task: NewTask) => Effect.Effect<StoredTask, StorageError>
    /** Enabled tasks matching `query`, oldest (lowest id) first, at most `limit`. */
    readonly load: (query: TaskQuery, limit: number) => Effect.Effect<ReadonlyArray<StoredTask>, StorageError>
    /** Deletes the matching tasks (enabled or not); answers how many. */
    readonly remove: (query: TaskQuery) => Effect.Effect<number, StorageError>
    /** Disables the matching enabled tasks (a load no longer returns them); answers how many. */
    readonly disable: (query: TaskQuery) => Effect.Effect<number, StorageError>
    /** Tasks the account has stored, enabled or not (for its quota). */
    readonly count: (accountId: string) => Effect.Effect<number, StorageError>
  }
>() {}
