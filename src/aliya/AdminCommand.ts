import { SqlClient } from "@effect/sql"
import { Config, Effect, Option } from "effect"
import { positiveInt } from "../shared/ConfigValues.ts"
import { AdminError, grantWeapon, removeWeapon, saveAccount, setBagAmounts, setSkill } from "./Admin.ts"
import { findAccount } from "./Accounts.ts"
import { readBag } from "./BagStore.ts"
import { migrateAliya } from "./Services.ts"
import { listWeapons } from "./WeaponManager.ts"

export const AliyaAdminUsage = `usage:
  aliya-admin account <unique_id> [--account A] [--password P] [--email E] [--phone N] [--unbound] [--device-secret S]
  aliya-admin bag <unique_id> <item>=<amount> ...        (items: coin iron diamonds experience_potion small_energy_potion
                                                          scroll_skill_10 scroll_skill_30 scroll_skill_100)
  aliya-admin weapon <unique_id> <weaponN> [--star S] [--level L] [--skill-points P] [--segment G]
  aliya-admin remove-weapon <unique_id> <weaponN>
  aliya-admin skill <unique_id> <skill_id> <level>
  aliya-admin show <unique_id>`

const PasswordCostConfig = Config.all({
  memoryCost: positiveInt("argon2MemoryKiB", 19456),
  timeCost: positiveInt("argon2TimeCost", 2)
}).pipe(Config.nested("managers"), Config.nested("aliya"))

const fail = (message: string) => Effect.fail(new AdminError({ message }))

/** Splits "--name value" options from positional arguments; flags without a value are "true". */
const parse = (args: ReadonlyArray<string>, flags: ReadonlyArray<string>) => {
  const options = new Map<string, string>()
  const positional: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith("--")) positional.push(arg)
    else if (flags.includes(arg)) options.set(arg, "true")
    else options.set(arg, args[++i] ?? "")
  }
  return { options, positional }
}

const count = (options: Map<string, string>, name: string) => {
  const text = options.get(name)
  if (text === undefined) return Effect.succeed(undefined)
  return /^\d{1,12}$/.test(text) ? Effect.succeed(Number(text)) : fail(`${name} must be a whole number`)
}

/** Runs one admin command against the database; the result is a line to print. */
export const adminCommand = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const [command, uniqueId, ...rest] = args
    if (!command || !uniqueId) return yield* fail("a command and a unique_id are required")
    yield* migrateAliya
    const { options, positional } = parse(rest, ["--unbound"])
    switch (command) {
      case "account": {
        const cost = yield* PasswordCostConfig
        const known = ["--account", "--password", "--email", "--phone", "--unbound", "--device-secret"]
        const unknown = [...options.keys()].find((k) => !known.includes(k))
        if (unknown) return yield* fail(`unknown option ${unknown}`)
        yield* saveAccount(
          {
            uniqueId,
            bound: !options.has("--unbound"),
            account: options.get("--account"),
            password: options.get("--password"),
            email: options.get("--email"),
            phoneNumber: options.get("--phone"),
            deviceSecret: options.get("--device-secret")
          },
          cost
        )
        return `account ${uniqueId} saved (${options.has("--unbound") ? "unbound" : "bound"})`
      }
      case "bag": {
        const amounts: Record<string, number> = {}
        for (const pair of positional) {
          const match = /^([a-z0-9_]+)=(\d{1,12})$/.exec(pair)
          if (!match) return yield* fail(`expected <item>=<amount>, got ${JSON.stringify(pair)}`)
          amounts[match[1]!] = Number(match[2])
        }
        yield* setBagAmounts(uniqueId, amounts)
        return `bag of ${uniqueId} set: ${positional.join(" ")}`
      }
      case "weapon": {
        const weapon = positional[0]
        if (!weapon) return yield* fail("which weapon? (weapon1 .. weapon40)")
        yield* grantWeapon(uniqueId, weapon, {
          star: yield* count(options, "--star"),
          level: yield* count(options, "--level"),
          skillPoint: yield* count(options, "--skill-points"),
          segment: yield* count(options, "--segment")
        })
        return `${weapon} of ${uniqueId} saved`
      }
      case "remove-weapon": {
        const weapon = positional[0]
        if (!weapon) return yield* fail("which weapon? (weapon1 .. weapon40)")
        yield* removeWeapon(uniqueId, weapon)
        return `${weapon} of ${uniqueId} removed`
      }
      case "skill": {
        const [skill, level] = positional
        if (!skill || !level || !/^\d{1,3}$/.test(level)) return yield* fail("skill <unique_id> <skill_id> <level>")
        yield* setSkill(uniqueId, skill, Number(level))
        return `${skill} of ${uniqueId} set to ${level}`
      }
      case "show": {
        const account = yield* findAccount(uniqueId)
        const sql = yield* SqlClient.SqlClient
        const skills = yield* sql<{
          skill: string
          level: number
        }>`SELECT skill, level FROM aliya_skills WHERE unique_id = ${uniqueId}`
        return JSON.stringify({
          account: Option.match(account, {
            onNone: () => null,
            onSome: (a) => ({
              account: a.account,
              email: a.email,
              phone_number: a.phone_number,
              bound: Boolean(a.account || a.email || a.phone_number)
            })
          }),
          bag: yield* readBag(uniqueId),
          weapons: yield* listWeapons(uniqueId),
          skills: Object.fromEntries(skills.map((s) => [s.skill, Number(s.level)]))
        })
      }
      default:
        return yield* fail(`unknown command ${JSON.stringify(command)}`)
    }
  })
