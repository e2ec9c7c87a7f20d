import { Context, Effect, Layer } from "effect"
import type { StorageError } from "../../src/storage/Account.ts"

/** A unit's hardware registered to an account (the original's account_hw_info). */
export interface HardwareRecord {
  readonly accountId: string
  readonly hardwareId: string
  readonly hardwareType: string
}

/** Which hardware an account has registered; answers DroneEngage's hardware check (/agent/ah). */
export class HardwareStore extends Context.Tag("switchboard/HardwareStore")<
  HardwareStore,
  {
    readonly register: (record: HardwareRecord) => Effect.Effect<void, StorageError>
    readonly isRegistered: (record: HardwareRecord) => Effect.Effect<boolean, StorageError>
    readonly listFor: (accountId: string) => Effect.Effect<ReadonlyArray<HardwareRecord>, StorageError>
  }
>() {}

const key = (r: HardwareRecord) => JSON.stringify([r.accountId, r.hardwareId, r.hardwareType])

/** In-memory HardwareStore: the test double and the store for single-account / JSON setups. */
export const MemoryHardwareStore = Layer.sync(HardwareStore, () => {
  const records = new Map<string, HardwareRecord>()
  return {
    register: (record) => Effect.sync(() => void records.set(key(record), record)),
    isRegistered: (record) => Effect.sync(() => records.has(key(record))),
    listFor: (accountId) => Effect.sync(() => [...records.values()].filter((r) => r.accountId === accountId))
  }
})
