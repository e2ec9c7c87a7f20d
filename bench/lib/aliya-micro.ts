/**
 * In-process CPU per request of the co-located Aliya path, without sockets: the gateway's
 * `answer` + `frameOf` for get_all_weapon and level_up_weapon (100 requests in flight, as the
 * bench's 100 connections), beside the ceiling's own work (open, JSON, a same-size reply, seal).
 * A profiling aid for issue 10, not a scenario: `npx bun run bench/lib/aliya-micro.ts [requests]`.
 */
import { Weapons } from "../../src/aliya/Game.ts"
import { encodeReply } from "../../src/aliya/Wire.ts"
import { startAliyaInProcess } from "./aliyaInProcess.ts"

const REQUESTS = Number(process.argv[2] ?? 20_000)
const IN_FLIGHT = 100
const encoder = new TextEncoder()
const decoder = new TextDecoder()

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

// MICRO_DIRECT=0: without the direct SQLite connection (the ordinary SqlClient path only).
const stack = await startAliyaInProcess({
  players: IN_FLIGHT,
  name: "aliya-micro",
  direct: process.env.MICRO_DIRECT !== "0"
})
const { gateway, local, players, tokens, sealRequest } = stack
const cipher = stack.cipher
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
stack.remove()
process.exit(0)
