/**
 * Aliya operator command, on the same database as the managers (aliya.storage, --config works):
 *   bun run programs/aliya-admin.ts account <unique_id> [--account A] [--password P] [--email E] [--phone N]
 *                                           [--unbound] [--device-secret S]
 *   bun run programs/aliya-admin.ts bag <unique_id> <item>=<amount> ...
 *   bun run programs/aliya-admin.ts weapon <unique_id> <weaponN> [--star S] [--level L] [--skill-points P] [--segment G]
 *   bun run programs/aliya-admin.ts remove-weapon <unique_id> <weaponN>
 *   bun run programs/aliya-admin.ts skill <unique_id> <skill_id> <level>
 *   bun run programs/aliya-admin.ts show <unique_id>
 */
import { Console, Effect } from "effect"
import { ConfigFromArgs } from "../layers/Config/ConfigFile.ts"
import { adminCommand, AliyaAdminUsage } from "../src/aliya/AdminCommand.ts"
import { AliyaDatabaseFromConfig } from "../src/aliya/Parts.ts"

const args = process.argv
  .slice(2)
  .filter((a, i, all) => a !== "--config" && all[i - 1] !== "--config" && !a.startsWith("--config="))

Effect.runPromiseExit(
  adminCommand(args).pipe(Effect.provide(AliyaDatabaseFromConfig), Effect.provide(ConfigFromArgs()))
).then((exit) => {
  if (exit._tag === "Success") return Effect.runSync(Console.log(exit.value))
  const failure = exit.cause._tag === "Fail" ? (exit.cause.error as { message?: string }).message : String(exit.cause)
  console.error(`aliya-admin: ${failure}\n${AliyaAdminUsage}`)
  process.exitCode = 1
})
