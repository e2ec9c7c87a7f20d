/**
 * In-process CPU per request of the co-located Aliya path, without sockets: the gateway's
 * `answer` + `frameOf` for get_all_weapon and level_up_weapon (100 requests in flight, as the
 * bench's 100 connections), beside the ceiling's own work (open, JSON, a same-size reply, seal).
 * A profiling aid for issue 10, not a scenario: `npx bun run bench/lib/aliya-micro.ts [requests]`.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration, Effect, Layer, Logger, LogLevel, Redacted, Scope } from "effect"
import { SqliteDatabase } from "../../layers/Storage/SqlDatabase.ts"
import { SqliteDirectFile, SqliteDirectNone } from "../../layers/Storage/SqliteDirect.ts"
import { MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import { grantWeapon, saveAccount, setBagAmounts } from "../../src/aliya/Admin.ts"
import { aesGcmCipher } from "../../src/aliya/Cipher.ts"
import { Weapons } from "../../src/aliya/Game.ts"
import { makeGateway } from "../../src/aliya/Gateway.ts"
import { InternalHttpMemory } from "../../src/aliya/InternalHttp.ts"
import {
  ColocatedServices,
  inProcessServiceCalls,
  type LocalService,
  type ServiceName
} from "../../src/aliya/ServiceCalls.ts"
import { startManagers, startTokenServer } from "../../src/aliya/Services.ts"
import { encodeReply } from "../../src/aliya/Wire.ts"

const REQUESTS = Number(process.argv[2] ?? 20_000)
const IN_FLIGHT = 100
const key = new Uint8Array(32).map((_, i) => i + 1)
const cipher = aesGcmCipher(key)
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const dir = mkdtempSync(join(tmpdir(), "aliya-micro-"))
const serviceToken = Redacted.make("micro-service-token-0123456789abcdef0123")
const cost = { memoryCost: 1024, timeCost: 1 }

const sealRequest = (fn: string, data: Record<string, unknown>) =>
  cipher.seal(encoder.encode(JSON.stringify({ function: fn, random: "1", data })))

const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** Runs `one(i)` REQUESTS times, IN_FLIGHT at once; µs of CPU per request. */
const measure = async (label: string, one: (i: number) => unknown) => {
  const before = cpuUs()
  const started = performance.now()
  // Worker w sends requests w, w + 100, …: one player per worker, as one per connection in the bench
  // (so an expired cache entry costs one token validation, not one per request in flight).
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, w) => {
      for (let i = w; i < REQUESTS; i += IN_FLIGHT) await one(i)
    })
  )
  const us = (cpuUs() - before) / REQUESTS
  const rate = REQUESTS / ((performance.now() - started) / 1000)
  console.log(`${label.padEnd(34)} ${us.toFixed(1).padStart(7)} µs CPU/request  ${(rate / 1000).toFixed(1)}k/s`)
  return us
}

const program = Effect.gen(function* () {
  yield* startManagers({
    host: "127.0.0.1",
    ports: { account: 0, playerState: 0, bag: 0, skill: 0, weapon: 0 },
    serviceToken,
    legacyLoginUnique: false,
    argon2MemoryKiB: cost.memoryCost,
    argon2TimeCost: cost.timeCost
  })
  yield* startTokenServer({
    port: 0,
    host: "127.0.0.1",
    signing: { algorithm: "HS256", secret: serviceToken },
    lifetime: Duration.seconds(360),
    accountManagerUrl: "http://memory:1",
    serviceToken
  })
  const local = yield* ColocatedServices
  const gateway = yield* makeGateway({
    cipher,
    calls: inProcessServiceCalls(local),
    dangerousFunctions: true,
    tokenCacheMillis: 1000
  })
  const players = Array.from({ length: IN_FLIGHT }, (_, i) => `micro-${i}`)
  for (const id of players) {
    yield* saveAccount({ uniqueId: id, bound: true, account: id, password: `pw-${id}` }, cost)
    yield* setBagAmounts(id, { iron: 1_000_000_000 })
    for (const weapon of Weapons) yield* grantWeapon(id, weapon, { star: 1, level: 0 })
  }
  return { gateway, players, local, context: yield* Effect.context<never>() }
})

const layer = Layer.mergeAll(
  SqliteDatabase(join(dir, "aliya.sqlite")),
  // MICRO_DIRECT=0: without the direct SQLite connection (the ordinary SqlClient path only).
  process.env.MICRO_DIRECT === "0" ? SqliteDirectNone : SqliteDirectFile(join(dir, "aliya.sqlite")),
  InternalHttpMemory,
  Layer.sync(ColocatedServices, () => new Map<ServiceName, LocalService>())
).pipe(Layer.provideMerge(MemoryTransportTest))

const scope = Effect.runSync(Scope.make())
// Built in a scope that stays open: the database and the parts live until the process exits.
const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
const { gateway, players, local } = await Effect.runPromise(
  program.pipe(Effect.provide(context), Scope.extend(scope), Logger.withMinimumLogLevel(LogLevel.Error))
)
const tokens: Array<string> = []
for (const id of players) {
  const r = await gateway.answer(sealRequest("login", { identifier: "account", value: id, password: `pw-${id}` }))
  if (r.status !== 0) throw new Error(`login: ${JSON.stringify(r)}`)
  tokens.push(String(r.data.token))
}
const reads = tokens.map((token) => sealRequest("get_all_weapon", { token }))
// Request i levels up player i % 100's weapon (i / 100) % 40 + 1: the weapons take turns, as in the bench, so
// no weapon reaches the maximum level (whose refusal is cheaper than a spend) within a run.
const spends = Weapons.flatMap((weapon) =>
  tokens.map((token) => sealRequest("level_up_weapon", { token, weapon, iron: "20" }))
)
const ceilingReply = (await gateway.answer(reads[0]!)) as unknown as Record<string, unknown>
for (const body of [reads[0]!, spends[0]!]) {
  const r = await gateway.answer(body)
  if (r.status !== 0) throw new Error(`not a success: ${JSON.stringify(r)}`)
}

const ceiling = async (body: Uint8Array) => {
  JSON.parse(decoder.decode(cipher.open(body)!))
  return cipher.seal(encoder.encode(encodeReply(ceilingReply as never)))
}

const weaponRoute = local.get("weapon")!
// Counts the token server's validations (the gateway's accepted-token cache misses).
const tokensPart = local.get("tokens")!
let validations = 0
local.set("tokens", { ...tokensPart, validate: (token) => (validations++, tokensPart.validate!(token)) })
const only = process.env.MICRO_PARTS === "1"
for (let round = 0; round < 2 && only; round++) {
  await measure(
    "route get_all_weapon (in-process)",
    (i) => weaponRoute.post("/get_all_weapon", { unique_id: players[i % IN_FLIGHT] })!
  )
  await measure(
    "route level_up_weapon (in-process)",
    (i) =>
      weaponRoute.post("/level_up_weapon", {
        unique_id: players[i % IN_FLIGHT],
        weapon: `weapon${(Math.floor(i / IN_FLIGHT) % 40) + 1}`,
        iron: "20"
      })!
  )
}
// MICRO_CASE=get_all_weapon|level_up_weapon: only that case (for a profile of one path).
const onlyCase = process.env.MICRO_CASE
const readOne = async (i: number) => gateway.frameOf(await gateway.answer(reads[i % IN_FLIGHT]!))
const spendOne = async (i: number) => gateway.frameOf(await gateway.answer(spends[i % spends.length]!))
for (let round = 0; round < 3 && onlyCase; round++)
  await measure(`co-located ${onlyCase}`, onlyCase === "get_all_weapon" ? readOne : spendOne)
for (let round = 0; round < 2 && !onlyCase; round++) {
  await measure("ceiling work (read reply)", (i) => ceiling(reads[i % IN_FLIGHT]!))
  await measure("co-located get_all_weapon", readOne)
  await measure("co-located level_up_weapon", spendOne)
}
console.log(`token validations: ${validations}`)
rmSync(dir, { recursive: true, force: true })
process.exit(0)
