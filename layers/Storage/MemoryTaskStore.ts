import { Clock, Effect, Layer } from "effect"
import { matchesQuery, type StoredTask } from "../../src/storage/Task.ts"
import { TaskStore } from "./TaskStore.ts"

/** TaskStore in process memory (tasks are lost on restart): per account, in id order. */
export const MemoryTaskStore = Layer.sync(TaskStore, () => {
  const accounts = new Map<string, Array<StoredTask>>()
  let lastId = 0
  const tasksOf = (accountId: string) => accounts.get(accountId) ?? []
  const store: TaskStore["Type"] = {
    save: (task) =>
      Effect.map(Clock.currentTimeMillis, (createdAt) => {
        const stored: StoredTask = { ...task, id: ++lastId, enabled: true, createdAt }
        const list = accounts.get(task.accountId)
        if (list) list.push(stored)
        else accounts.set(task.accountId, [stored])
        return stored
      }),
    load: (query, limit) =>
      Effect.sync(() =>
        tasksOf(query.accountId)
          .filter((task) => task.enabled && matchesQuery(query, task))
          .slice(0, Math.max(0, limit))
      ),
    remove: (query) =>
      Effect.sync(() => {
        const list = tasksOf(query.accountId)
        const kept = list.filter((task) => !matchesQuery(query, task))
        if (kept.length > 0) accounts.set(query.accountId, kept)
        else accounts.delete(query.accountId)
        return list.length - kept.length
      }),
    disable: (query) =>
      Effect.sync(() => {
        const list = tasksOf(query.accountId)
        let changed = 0
        list.forEach((task, index) => {
          if (!task.enabled || !matchesQuery(query, task)) return
          list[index] = { ...task, enabled: false }
          changed++
        })
        return changed
      }),
    count: (accountId) => Effect.sync(() => tasksOf(accountId).length)
  }
  return store
})
