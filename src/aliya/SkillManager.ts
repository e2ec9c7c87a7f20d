import { SqlClient } from "@effect/sql"
import { Effect, Random } from "effect"
import { addItem, spendItem } from "./BagStore.ts"
import { giftSkillTier, isScroll, isSkill, MAX_SKILL_LEVEL, Scrolls, Skills, SkillTiers, TierScroll } from "./Game.ts"
import { functionRoute, orUnavailable } from "./ServiceHttp.ts"
import { forUpdate, num, transactionally } from "./Tables.ts"
import { reply } from "./Wire.ts"

/** A skill's level (0 = locked). */
export const skillLevel = (uniqueId: string, skill: string, lock = false) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const suffix = lock ? yield* forUpdate : sql.literal("")
    const rows = yield* sql<{
      level: unknown
    }>`SELECT level FROM aliya_skills WHERE unique_id = ${uniqueId} AND skill = ${skill}${suffix}`
    return num(rows[0]?.level)
  })

export const setSkillLevel = (uniqueId: string, skill: string, level: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.zipRight(
      sql`DELETE FROM aliya_skills WHERE unique_id = ${uniqueId} AND skill = ${skill}`,
      level > 0
        ? Effect.asVoid(sql`INSERT INTO aliya_skills ${sql.insert({ unique_id: uniqueId, skill, level })}`)
        : Effect.void
    )
  )

export const skillLevelUp = (uniqueId: string, skill: string, scroll: string) =>
  orUnavailable(
    Effect.gen(function* () {
      if (!isSkill(skill)) return reply(1, "User does not have that skill")
      // Rolled before the transaction: the outcome does not depend on the state.
      const roll = yield* Random.nextIntBetween(1, 101)
      return yield* transactionally(
        Effect.gen(function* () {
          const level = yield* skillLevel(uniqueId, skill, true)
          if (level === 0) return reply(1, "User does not have that skill")
          if (!isScroll(scroll)) return reply(2, "User does not have enough scrolls")
          if (level >= MAX_SKILL_LEVEL) return reply(9, "Skill already at max level")
          const remaining = yield* spendItem(uniqueId, scroll, 1)
          if (remaining === undefined) return reply(2, "User does not have enough scrolls")
          const upgraded = roll <= Scrolls[scroll].chance
          if (upgraded) yield* setSkillLevel(uniqueId, skill, level + 1)
          // As the original: upgrade 0 = the skill levelled up, 1 = the scroll did not take.
          return reply(0, "success", {
            skill1: [skill, upgraded ? level + 1 : level],
            item1: [scroll, remaining],
            upgrade: upgraded ? 0 : 1
          })
        })
      )
    })
  )

export const allSkillLevels = (uniqueId: string) =>
  orUnavailable(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{
        skill: unknown
        level: unknown
      }>`SELECT skill, level FROM aliya_skills WHERE unique_id = ${uniqueId}`
      const levels = new Map(rows.map((r) => [String(r.skill), num(r.level)]))
      return reply(0, "success", Object.fromEntries(Skills.map((s, i) => [`skill${i + 1}`, [s, levels.get(s) ?? 0]])))
    })
  )

export const getSkill = (uniqueId: string, skill: string) =>
  orUnavailable(
    isSkill(skill)
      ? Effect.map(skillLevel(uniqueId, skill), (level) => reply(0, "success", { skill1: [skill, level] }))
      : Effect.succeed(reply(1, "Invalid skill name"))
  )

export const randomGiftSkill = (uniqueId: string) =>
  orUnavailable(
    Effect.gen(function* () {
      const tier = giftSkillTier(yield* Random.nextIntBetween(1, 11))
      const candidates = SkillTiers[tier]!
      const skill = candidates[yield* Random.nextIntBetween(0, candidates.length)]!
      return yield* transactionally(
        Effect.gen(function* () {
          if ((yield* skillLevel(uniqueId, skill, true)) === 0) {
            yield* setSkillLevel(uniqueId, skill, 1)
            return reply(0, "success", { skill1: [skill, 1] })
          }
          const scroll = TierScroll[tier]!
          const total = yield* addItem(uniqueId, scroll, 1)
          return reply(1, "You already have that skill, you got a new scroll for free", { item1: [scroll, total] })
        })
      )
    })
  )

export const skillRoutes = () =>
  Object.fromEntries([
    functionRoute("skill_level_up", (id, d) => skillLevelUp(id, d.skill_id, d.scroll_id)),
    functionRoute("get_all_skill_level", (id) => allSkillLevels(id)),
    functionRoute("get_skill", (id, d) => getSkill(id, d.skill_id)),
    functionRoute("random_gift_skill", (id) => randomGiftSkill(id))
  ])
