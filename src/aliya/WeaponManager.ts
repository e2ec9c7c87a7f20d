import { SqlClient } from "@effect/sql"
import { Effect, Option, Random } from "effect"
import type { SqliteDirectService } from "../../layers/Storage/SqliteDirect.ts"
import { spendItem, spendItemNow } from "./BagStore.ts"
import {
  GIFT_SEGMENTS,
  giftWeaponBand,
  IRON_PER_LEVEL,
  isPassive,
  isWeapon,
  MAX_WEAPON_LEVEL,
  type Passive,
  Passives,
  SEGMENTS_PER_STAR
} from "./Game.ts"
import { functionRoute, functionRouteNow, orUnavailable, type RouteNow } from "./ServiceHttp.ts"
import { insertIgnore, num, transactionally } from "./Tables.ts"
import { inTransaction, withStatements } from "./DirectSql.ts"
import { type Reply, reply, vouchedEvalSafe } from "./Wire.ts"

/** Coins a reset_weapon_skill_point costs. */
export const RESET_COST = 100

export interface WeaponRow {
  readonly weapon: string
  readonly star: number
  readonly level: number
  readonly passives: readonly [number, number, number, number]
  readonly skillPoint: number
  readonly segment: number
}

/** The original's weapon_bag row: [unique_id, level, passive 1..4, skill_point, segment]. */
export const bagRow = (uniqueId: string, w: WeaponRow) => [uniqueId, w.level, ...w.passives, w.skillPoint, w.segment]

/** The weapon columns after `weapon`, in WeaponRow order (a constant: never built from input). */
const WEAPON_COLUMNS =
  "star, level, passive_skill_1_level, passive_skill_2_level, passive_skill_3_level, passive_skill_4_level, skill_point, segment"

/** A row of WEAPON_COLUMNS (after the weapon's name) → WeaponRow. */
const toRow = (weapon: string, r: ReadonlyArray<unknown>): WeaponRow => ({
  weapon,
  star: num(r[0]),
  level: num(r[1]),
  passives: [num(r[2]), num(r[3]), num(r[4]), num(r[5])],
  skillPoint: num(r[6]),
  segment: num(r[7])
})

const SELECT_WEAPON = `SELECT ${WEAPON_COLUMNS} FROM aliya_weapons WHERE unique_id = ? AND weapon = ?`

/** The weapon of a SELECT_WEAPON answer if owned (star > 0). */
const ownedOf = (weapon: string, rows: ReadonlyArray<ReadonlyArray<unknown>>) =>
  rows[0] && num(rows[0][0]) > 0 ? Option.some(toRow(weapon, rows[0])) : Option.none<WeaponRow>()

/** The caller's weapon if owned (star > 0); `lock` reads it FOR UPDATE on MySQL (inside a transaction). */
export const readWeapon = (uniqueId: string, weapon: string, lock = false) =>
  withStatements((statements) =>
    Effect.map(
      statements.values(`${SELECT_WEAPON}${lock && statements.dialect === "mysql" ? " FOR UPDATE" : ""}`, [
        uniqueId,
        weapon
      ]),
      (rows) => ownedOf(weapon, rows)
    )
  )

const UPDATE_WEAPON = `UPDATE aliya_weapons SET ${WEAPON_COLUMNS.split(", ")
  .map((column) => `${column} = ?`)
  .join(", ")} WHERE unique_id = ? AND weapon = ?`

const updateParams = (uniqueId: string, w: WeaponRow) => [
  w.star,
  w.level,
  ...w.passives,
  w.skillPoint,
  w.segment,
  uniqueId,
  w.weapon
]

/** Saves a weapon row; `exists` skips the insert when the row was just read (a locked, owned weapon). */
export const writeWeapon = (uniqueId: string, w: WeaponRow, exists = false) =>
  Effect.zipRight(
    // Insert a missing row (star 0 = not owned), then update it: one path for new and owned weapons.
    exists
      ? Effect.void
      : Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.flatMap(
            insertIgnore,
            (insert) => sql`${insert} aliya_weapons (unique_id, weapon) VALUES (${uniqueId}, ${w.weapon})`
          )
        ),
    withStatements((statements) => statements.run(UPDATE_WEAPON, updateParams(uniqueId, w)))
  )

export const newWeapon = (weapon: string): WeaponRow => ({
  weapon,
  star: 1,
  level: 0,
  passives: [0, 0, 0, 0],
  skillPoint: 0,
  segment: 0
})

const weaponNumber = (weapon: string) => Number(weapon.slice(6))

const LIST_WEAPONS = `SELECT weapon, ${WEAPON_COLUMNS} FROM aliya_weapons WHERE unique_id = ? AND star > 0`

/** LIST_WEAPONS rows in weapon order, numbers as numbers (the driver's fresh row arrays are converted in place). */
export const inWeaponOrder = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => {
  // weapon1..weapon40 by number (SQL returns them in text order): one slot each, no comparisons.
  const slots: Array<Array<unknown> | undefined> = []
  for (const row of rows as ReadonlyArray<Array<unknown>>) {
    row[0] = String(row[0])
    for (let i = 1; i < row.length; i++) if (typeof row[i] !== "number") row[i] = num(row[i])
    slots[weaponNumber(row[0] as string)] = row
  }
  return slots.filter((row) => row !== undefined)
}

/**
 * The owned weapons in weapon order, each as its row [weapon, star, level, passive 1..4,
 * skill_point, segment] (arrays straight from SQL: this is the hottest read).
 */
export const listWeaponRows = (uniqueId: string) =>
  withStatements((statements) => Effect.map(statements.values(LIST_WEAPONS, [uniqueId]), inWeaponOrder))

/** The owned weapons in weapon order. */
export const listWeapons = (uniqueId: string) =>
  Effect.map(listWeaponRows(uniqueId), (rows) => rows.map((r) => toRow(r[0] as string, r.slice(1))))

const noWeapon = reply(1, "User does not have that weapon")

/** Runs `work` on the caller's weapon inside one transaction; status 1 when it is not owned. */
const withWeapon = <R>(
  uniqueId: string,
  weapon: string,
  work: (w: WeaponRow) => Effect.Effect<ReturnType<typeof reply>, unknown, R>
) =>
  orUnavailable(
    isWeapon(weapon)
      ? inTransaction(() =>
          Effect.flatMap(
            readWeapon(uniqueId, weapon, true),
            (owned): Effect.Effect<Reply, unknown, R> =>
              Option.isNone(owned) ? Effect.succeed(noWeapon) : work(owned.value)
          )
        )
      : Effect.succeed(noWeapon)
  )

const maxLevel = reply(9, "Weapon already max level")
const noIron = reply(2, "Insufficient materials, upgrade failed")

/** A level-up of `w` for `iron`: the refusal, or how many levels it buys (the iron they cost is levels × 20). */
const levelsFor = (w: WeaponRow, iron: number): Reply | number => {
  if (w.level >= MAX_WEAPON_LEVEL) return maxLevel
  const wanted = Math.floor(iron / IRON_PER_LEVEL)
  if (wanted === 0) return noIron
  return Math.min(wanted, MAX_WEAPON_LEVEL - w.level)
}

/** The weapon after `levels` levels and its success reply. */
const levelled = (uniqueId: string, w: WeaponRow, levels: number, remaining: number) => {
  const next = { ...w, level: w.level + levels, skillPoint: w.skillPoint + levels }
  return { next, reply: reply(0, "success", { weapon_bag1: bagRow(uniqueId, next), item1: ["iron", remaining] }) }
}

export const levelUpWeapon = (uniqueId: string, weapon: string, iron: number) =>
  withWeapon(uniqueId, weapon, (w) =>
    Effect.gen(function* () {
      const levels = levelsFor(w, iron)
      if (typeof levels !== "number") return levels
      const remaining = yield* spendItem(uniqueId, "iron", levels * IRON_PER_LEVEL)
      if (remaining === undefined) return noIron
      const done = levelled(uniqueId, w, levels, remaining)
      yield* writeWeapon(uniqueId, done.next, true)
      return done.reply
    })
  )

/**
 * level_up_weapon on the direct connection, in a group commit with the other spends of this turn
 * of the event loop (the same statements and rules as levelUpWeapon, in its own savepoint);
 * undefined when the file is locked: take levelUpWeapon.
 */
export const levelUpWeaponDirect = (
  direct: SqliteDirectService,
  uniqueId: string,
  weapon: string,
  iron: number
): Reply | Promise<Reply | undefined> =>
  isWeapon(weapon)
    ? direct.grouped((statements): Reply => {
        const owned = ownedOf(weapon, statements.values(SELECT_WEAPON, [uniqueId, weapon]))
        if (Option.isNone(owned)) return noWeapon
        const levels = levelsFor(owned.value, iron)
        if (typeof levels !== "number") return levels
        const remaining = spendItemNow(statements, uniqueId, "iron", levels * IRON_PER_LEVEL)
        if (remaining === undefined) return noIron
        const done = levelled(uniqueId, owned.value, levels, remaining)
        statements.run(UPDATE_WEAPON, updateParams(uniqueId, done.next))
        return done.reply
      })
    : noWeapon

export const levelUpPassive = (uniqueId: string, weapon: string, passive: string) =>
  withWeapon(uniqueId, weapon, (w) =>
    Effect.gen(function* () {
      if (!isPassive(passive)) return reply(9, "Passive skill does not exist")
      if (w.skillPoint <= 0) return reply(2, "Insufficient skill points, upgrade failed")
      const index = Passives.indexOf(passive as Passive)
      const passives = w.passives.map((p, i) => (i === index ? p + 1 : p)) as unknown as WeaponRow["passives"]
      const next = { ...w, passives, skillPoint: w.skillPoint - 1 }
      yield* writeWeapon(uniqueId, next, true)
      return reply(0, "success", { weapon_bag1: bagRow(uniqueId, next) })
    })
  )

export const resetWeaponSkillPoint = (uniqueId: string, weapon: string) =>
  withWeapon(uniqueId, weapon, (w) =>
    Effect.gen(function* () {
      const remaining = yield* spendItem(uniqueId, "coin", RESET_COST)
      if (remaining === undefined) return reply(2, "Insufficient gold coins, upgrade failed")
      const refunded = w.passives.reduce((a, b) => a + b, 0)
      const next: WeaponRow = { ...w, passives: [0, 0, 0, 0], skillPoint: w.skillPoint + refunded }
      yield* writeWeapon(uniqueId, next, true)
      return reply(0, "success", { weapon_bag1: bagRow(uniqueId, next), item1: ["coin", remaining] })
    })
  )

export const levelUpWeaponStar = (uniqueId: string, weapon: string) =>
  withWeapon(uniqueId, weapon, (w) =>
    Effect.gen(function* () {
      const cost = w.star * SEGMENTS_PER_STAR
      if (w.segment < cost) return reply(2, "Insufficient segments, upgrade failed")
      const next = { ...w, star: w.star + 1, segment: w.segment - cost }
      yield* writeWeapon(uniqueId, next, true)
      return reply(0, "success", { weapon_bag1: bagRow(uniqueId, next), weapon_star: [weapon, next.star] })
    })
  )

/** weapon_bag1..weapon_bag40, built once. */
const bagKeys = Array.from({ length: 40 }, (_, i) => `weapon_bag${i + 1}`)

/** inWeaponOrder's rows as get_all_weapon's reply (they hold strings and numbers only: see vouchedEvalSafe). */
export const allWeaponsReply = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => {
  const data: Record<string, unknown> = {}
  for (let i = 0; i < rows.length; i++) data[bagKeys[i] ?? `weapon_bag${i + 1}`] = rows[i]
  return reply(0, "success", vouchedEvalSafe(data))
}

export const getAllWeapon = (uniqueId: string) => orUnavailable(Effect.map(listWeaponRows(uniqueId), allWeaponsReply))

/** get_all_weapon on the direct connection, synchronously; undefined when the file is locked. */
export const getAllWeaponNow = (direct: SqliteDirectService, uniqueId: string) =>
  direct.read((statements) => allWeaponsReply(inWeaponOrder(statements.values(LIST_WEAPONS, [uniqueId]))))

export const randomGiftSegment = (uniqueId: string) =>
  orUnavailable(
    Effect.gen(function* () {
      const band = giftWeaponBand(yield* Random.nextIntBetween(0, 1000))
      const weapon = `weapon${band * 10 + (yield* Random.nextIntBetween(1, 11))}`
      return yield* transactionally(
        Effect.gen(function* () {
          const owned = yield* readWeapon(uniqueId, weapon, true)
          if (Option.isNone(owned)) {
            const created = newWeapon(weapon)
            yield* writeWeapon(uniqueId, created)
            return reply(1, "Success, gained a new weapon", { weapon_bag1: [weapon, created.star, created.segment] })
          }
          const next = { ...owned.value, segment: owned.value.segment + GIFT_SEGMENTS }
          yield* writeWeapon(uniqueId, next, true)
          return reply(0, "Success, gained weapon segments", { weapon_bag1: [weapon, next.star, next.segment] })
        })
      )
    })
  )

/** The WeaponManager's routes (it reads and spends the bag inside its own transactions). */
export const weaponRoutes = () =>
  Object.fromEntries([
    functionRoute("level_up_weapon", (id, d) => levelUpWeapon(id, d.weapon, d.iron)),
    functionRoute("level_up_passive", (id, d) => levelUpPassive(id, d.weapon, d.passive)),
    functionRoute("reset_weapon_skill_point", (id, d) => resetWeaponSkillPoint(id, d.weapon)),
    functionRoute("level_up_weapon_star", (id, d) => levelUpWeaponStar(id, d.weapon)),
    functionRoute("get_all_weapon", (id) => getAllWeapon(id)),
    functionRoute("random_gift_segment", (id) => randomGiftSegment(id))
  ])

/** The hottest weapon routes answered on a direct SQLite connection (see SqliteDirect): the read now, the spend grouped. */
export const weaponRoutesNow = (direct: SqliteDirectService): Record<string, RouteNow> =>
  direct.available
    ? Object.fromEntries([
        functionRouteNow("level_up_weapon", (id, d) => levelUpWeaponDirect(direct, id, d.weapon, d.iron)),
        functionRouteNow("get_all_weapon", (id) => getAllWeaponNow(direct, id))
      ])
    : {}
