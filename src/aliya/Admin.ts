import { SqlClient } from "@effect/sql"
import { Data, Effect, Option } from "effect"
import { type AccountInput, findAccount, type PasswordCost, upsertAccount } from "./Accounts.ts"
import { setItem } from "./BagStore.ts"
import { type Item, isItem, isSkill, isWeapon, MAX_SKILL_LEVEL, MAX_WEAPON_LEVEL } from "./Game.ts"
import { setSkillLevel } from "./SkillManager.ts"
import { transactionally } from "./Tables.ts"
import { newWeapon, readWeapon, type WeaponRow, writeWeapon } from "./WeaponManager.ts"

/** Operator actions (the admin command; tests use them to set up state). */

export class AdminError extends Data.TaggedError("AdminError")<{ readonly message: string }> {}

const fail = (message: string) => Effect.fail(new AdminError({ message }))

export const saveAccount = (input: AccountInput, cost: PasswordCost) =>
  input.uniqueId.length === 0 || input.uniqueId.length > 128
    ? fail("unique_id must be 1..128 characters")
    : input.bound && !input.account && !input.email && !input.phoneNumber
      ? fail("a bound account needs an account name, email or phone number")
      : input.bound && !input.password
        ? Effect.flatMap(
            findAccount(input.uniqueId),
            (existing): Effect.Effect<void, unknown, SqlClient.SqlClient> =>
              Option.isSome(existing) && existing.value.password_hash
                ? upsertAccount(input, cost)
                : fail("a new bound account needs a password")
          )
        : upsertAccount(input, cost)

export const setBagAmounts = (uniqueId: string, amounts: Record<string, number>) =>
  Effect.gen(function* () {
    for (const [item, amount] of Object.entries(amounts)) {
      if (!isItem(item)) return yield* fail(`unknown item ${JSON.stringify(item)} (items: coin, iron, diamonds, ...)`)
      if (!Number.isSafeInteger(amount) || amount < 0) return yield* fail(`${item} must be a whole number ≥ 0`)
    }
    yield* transactionally(
      Effect.forEach(Object.entries(amounts), ([item, amount]) => setItem(uniqueId, item as Item, amount))
    )
  })

export interface WeaponGrant {
  readonly star?: number | undefined
  readonly level?: number | undefined
  readonly skillPoint?: number | undefined
  readonly segment?: number | undefined
  readonly passives?: readonly [number, number, number, number] | undefined
}

/** Gives a weapon (or changes an owned one): star ≥ 1, level 0..100, counts ≥ 0. */
export const grantWeapon = (uniqueId: string, weapon: string, grant: WeaponGrant) =>
  Effect.gen(function* () {
    if (!isWeapon(weapon)) return yield* fail(`unknown weapon ${JSON.stringify(weapon)} (weapon1 .. weapon40)`)
    const counts = [grant.star, grant.skillPoint, grant.segment, ...(grant.passives ?? [])].filter(
      (n) => n !== undefined
    )
    if (counts.some((n) => !Number.isSafeInteger(n) || n! < 0)) return yield* fail("counts must be whole numbers ≥ 0")
    if (grant.star !== undefined && grant.star < 1)
      return yield* fail("star must be at least 1 (remove a weapon instead)")
    if (
      grant.level !== undefined &&
      !(Number.isSafeInteger(grant.level) && grant.level >= 0 && grant.level <= MAX_WEAPON_LEVEL)
    ) {
      return yield* fail(`level must be 0..${MAX_WEAPON_LEVEL}`)
    }
    yield* transactionally(
      Effect.gen(function* () {
        const current = Option.getOrElse(yield* readWeapon(uniqueId, weapon, true), () => newWeapon(weapon))
        const next: WeaponRow = {
          weapon,
          star: grant.star ?? current.star,
          level: grant.level ?? current.level,
          passives: grant.passives ?? current.passives,
          skillPoint: grant.skillPoint ?? current.skillPoint,
          segment: grant.segment ?? current.segment
        }
        yield* writeWeapon(uniqueId, next)
      })
    )
  })

export const removeWeapon = (uniqueId: string, weapon: string) =>
  isWeapon(weapon)
    ? Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.asVoid(sql`DELETE FROM aliya_weapons WHERE unique_id = ${uniqueId} AND weapon = ${weapon}`)
      )
    : fail(`unknown weapon ${JSON.stringify(weapon)} (weapon1 .. weapon40)`)

export const setSkill = (uniqueId: string, skill: string, level: number) =>
  isSkill(skill) && Number.isSafeInteger(level) && level >= 0 && level <= MAX_SKILL_LEVEL
    ? transactionally(setSkillLevel(uniqueId, skill, level))
    : fail(`skill must be a known skill id (m1_level, ...) and level 0..${MAX_SKILL_LEVEL}`)
