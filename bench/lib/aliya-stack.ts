/**
 * The Aliya stack for the bench on the ports and secrets given in env (ALIYA_*), and
 * BENCH_PLAYERS players seeded first: accounts bench-<i> / password "bench-password-<i>", 10^9
 * iron, weapon1..weapon40 owned. BENCH_ALIYA_PART picks the composition: "all" (default) runs
 * managers, token server and gateway in this one process (the gateway asks them in-process, as
 * `npm start` does); "managers" (seeds first), "tokens" or "gateway" runs that part alone, for
 * the split composition where the parts talk over loopback HTTP.
 */
import { Effect, Layer } from "effect"
import { runProgram } from "../../layers/Program/runProgram.ts"
import { defaultPasswordCost } from "../../src/aliya/Accounts.ts"
import { grantWeapon, saveAccount, setBagAmounts } from "../../src/aliya/Admin.ts"
import { Weapons } from "../../src/aliya/Game.ts"
import { AliyaDatabaseFromConfig } from "../../src/aliya/Parts.ts"
import { migrateAliya } from "../../src/aliya/Services.ts"
import { tuneSqlite } from "../../src/aliya/Tables.ts"
import { AliyaGatewayLive } from "../../programs/servers/aliya-gateway.ts"
import { AliyaManagersLive } from "../../programs/servers/aliya-managers.ts"
import { AliyaTokensLive } from "../../programs/servers/aliya-tokens.ts"

const players = Number(process.env.BENCH_PLAYERS ?? 100)
// The seeded accounts are hashed at the cost the managers use for logins (ALIYA_MANAGERS_ARGON2_*).
const cost = {
  memoryCost: Number(process.env.ALIYA_MANAGERS_ARGON2_MEMORY_KI_B ?? defaultPasswordCost.memoryCost),
  timeCost: Number(process.env.ALIYA_MANAGERS_ARGON2_TIME_COST ?? defaultPasswordCost.timeCost)
}

const Seed = Layer.effectDiscard(
  Effect.gen(function* () {
    yield* migrateAliya
    // WAL without fsync per commit first: the seed's few thousand small commits take seconds, not tens of seconds.
    yield* tuneSqlite
    yield* Effect.forEach(
      Array.from({ length: players }, (_, i) => i),
      (i) =>
        Effect.gen(function* () {
          const id = `bench-${i}`
          yield* saveAccount({ uniqueId: id, bound: true, account: id, password: `bench-password-${i}` }, cost)
          yield* setBagAmounts(id, { iron: 1_000_000_000 })
          for (const weapon of Weapons) yield* grantWeapon(id, weapon, { star: 1, level: 0 })
        }),
      { concurrency: 4, discard: true }
    )
  })
).pipe(Layer.provide(AliyaDatabaseFromConfig))

const parts = {
  all: Layer.mergeAll(AliyaManagersLive, AliyaTokensLive, AliyaGatewayLive).pipe(Layer.provide(Seed)),
  managers: AliyaManagersLive.pipe(Layer.provide(Seed)),
  tokens: AliyaTokensLive,
  gateway: AliyaGatewayLive
}
const part = process.env.BENCH_ALIYA_PART ?? "all"
if (!Object.hasOwn(parts, part)) throw new Error(`BENCH_ALIYA_PART must be one of ${Object.keys(parts).join(", ")}`)
runProgram(parts[part as keyof typeof parts])
