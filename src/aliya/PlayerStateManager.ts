import { SqlClient } from "@effect/sql"
import { Clock, Effect } from "effect"
import { addItem } from "./BagStore.ts"
import { currentEnergy, type Energy, FULL_ENERGY, levelRewards, MAX_STAGE, withRecovery } from "./Game.ts"
import { functionRoute, orUnavailable } from "./ServiceHttp.ts"
import { forUpdate, insertIgnore, num, transactionally } from "./Tables.ts"
import { reply } from "./Wire.ts"

/** Energy never goes above this (potions may push it past FULL_ENERGY, not past this). */
export const MAX_ENERGY = 9999

export interface Player {
  readonly stage: number
  readonly experience: number
  readonly energy: Energy
}

export const readPlayer = (uniqueId: string, lock = false) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const insert = yield* insertIgnore
    yield* sql`${insert} aliya_player (unique_id, energy) VALUES (${uniqueId}, ${FULL_ENERGY})`
    const suffix = lock ? yield* forUpdate : sql.literal("")
    const rows = yield* sql<Record<string, unknown>>`SELECT * FROM aliya_player WHERE unique_id = ${uniqueId}${suffix}`
    const r = rows[0] ?? {}
    return {
      stage: num(r.stage),
      experience: num(r.experience),
      energy: { energy: num(r.energy), since: num(r.energy_since) }
    } as Player
  })

export const writePlayer = (uniqueId: string, p: Player) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`UPDATE aliya_player SET stage = ${p.stage}, experience = ${p.experience}, energy = ${p.energy.energy},
        energy_since = ${p.energy.since} WHERE unique_id = ${uniqueId}`
  )

const energyError = reply(1, "Energy error")

/** Changes energy by `delta` (after recovery so far); status 1 when it would go below zero or past MAX_ENERGY. */
const changeEnergy = (uniqueId: string, delta: number) =>
  orUnavailable(
    transactionally(
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const player = yield* readPlayer(uniqueId, true)
        const current = currentEnergy(player.energy, now)
        const energy = current.energy + delta
        if (energy < 0 || energy > MAX_ENERGY) return energyError
        const next = withRecovery(energy, current.since, now)
        yield* writePlayer(uniqueId, { ...player, energy: next })
        return reply(0, "success", { energy })
      })
    )
  )

export const increaseEnergy = (uniqueId: string, amount: number) =>
  amount <= 0 ? Effect.succeed(energyError) : changeEnergy(uniqueId, amount)
export const decreaseEnergy = (uniqueId: string, amount: number) =>
  amount <= 0 ? Effect.succeed(energyError) : changeEnergy(uniqueId, -amount)

/**
 * Passes a level: any level already reached or the next one; the next one advances the stage.
 * The rewards go into the bag in the same transaction.
 */
export const passLevel = (uniqueId: string, level: number) =>
  orUnavailable(
    transactionally(
      Effect.gen(function* () {
        const player = yield* readPlayer(uniqueId, true)
        if (level < 1 || level > player.stage + 1 || level > MAX_STAGE) {
          return reply(1, "Invalid state - the server could not confirm the player beat the level")
        }
        const stage = Math.max(player.stage, level)
        const rewards = levelRewards(level)
        let experience = player.experience
        const data: Record<string, unknown> = {}
        for (const [i, [name, amount]] of rewards.entries()) {
          data[`reward${i + 1}`] = [name, amount]
          if (name === "experience") experience += amount
          const total = name === "experience" ? experience : yield* addItem(uniqueId, name, amount)
          data[`item${i + 1}`] = [name, total]
        }
        data[`item${rewards.length + 1}`] = ["level", stage]
        yield* writePlayer(uniqueId, { ...player, stage, experience })
        return reply(0, "success", data)
      })
    )
  )

export const playerStateRoutes = () =>
  Object.fromEntries([
    functionRoute("increase_energy", (id, d) => increaseEnergy(id, d.energy)),
    functionRoute("decrease_energy", (id, d) => decreaseEnergy(id, d.energy)),
    functionRoute("pass_level", (id, d) => passLevel(id, d.level_id))
  ])
