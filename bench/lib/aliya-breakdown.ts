/**
 * Per-step CPU cost of the co-located Aliya hot requests (issue 10): each step of the gateway's
 * get_all_weapon and level_up_weapon path timed alone over many iterations, on real parts and a
 * real SQLite file. A profiling aid, not a scenario: `npx bun run bench/lib/aliya-breakdown.ts [iterations]`.
 */
import { Database } from "bun:sqlite"
import { Context } from "effect"
import { SqliteDirect } from "../../layers/Storage/SqliteDirect.ts"
import { decodeFunctionData, decodeRequest } from "../../src/aliya/FastDecode.ts"
import { encodeFrame, FrameDecoder } from "../../src/aliya/Frame.ts"
import { makeValidatedTokens } from "../../src/aliya/ValidatedTokens.ts"
import { getAllWeaponNow, levelUpWeaponDirect } from "../../src/aliya/WeaponManager.ts"
import { encodeReply } from "../../src/aliya/Wire.ts"
import { startAliyaInProcess } from "./aliyaInProcess.ts"

const N = Number(process.argv[2] ?? 50_000)
const PLAYERS = 100
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
/** µs of CPU per call of `step(i)` over n calls (after a warm-up of n/10). */
const time = async (label: string, step: (i: number) => unknown, n = N) => {
  for (let i = 0; i < n / 10; i++) await step(i)
  const before = cpuUs()
  for (let i = 0; i < n; i++) await step(i)
  const us = (cpuUs() - before) / n
  console.log(`${label.padEnd(44)} ${us.toFixed(2).padStart(8)} µs`)
  return us
}

const stack = await startAliyaInProcess({ players: PLAYERS, name: "aliya-breakdown", direct: true })
const { gateway, local, context, cipher, file, players, tokens, sealRequest } = stack
const at = (i: number) => i % PLAYERS
/** Request i levels up player i % 100's weapon (i / 100) % 40 + 1: no weapon reaches the maximum level in a run. */
const weaponAt = (i: number) => `weapon${(Math.floor(i / PLAYERS) % 40) + 1}`
const spendData = (i: number) => ({ token: tokens[at(i)]!, weapon: weaponAt(i), iron: "20" })
const reads = tokens.map((token) => sealRequest("get_all_weapon", { token }))
const spends = Array.from({ length: 40 * PLAYERS }, (_, i) => sealRequest("level_up_weapon", spendData(i)))
const frames = (bodies: Array<Uint8Array>) => bodies.map((b) => encodeFrame(b)!)
const spendFrames = frames(spends)
const spendJson = spends.map((b) => decoder.decode(cipher.open(b)!))
const spendParsed = spendJson.map((t) => JSON.parse(t))
const weapon = local.get("weapon")!
const readReply = (await gateway.answer(reads[0]!)) as never
const spendReply = (await gateway.answer(spends[0]!)) as never
const readReplyText = encodeReply(readReply)
const spendReplyText = encodeReply(spendReply)
console.log(`reply sizes: read ${readReplyText.length} B, spend ${spendReplyText.length} B; ${N} iterations`)

const cache = makeValidatedTokens({ ttlMillis: 3_600_000, maxEntries: 50_000 })
for (let i = 0; i < PLAYERS; i++) cache.remember(tokens[i]!, players[i]!, Date.now())
const decoderOf = players.map(() => new FrameDecoder())

console.log("-- shared steps")
await time("frame parse (FrameDecoder.push, spend)", (i) => decoderOf[at(i)]!.push(spendFrames[at(i)]!))
await time("open (base64 + AES-GCM decrypt, spend)", (i) => cipher.open(spends[at(i)]!))
await time("open (read)", (i) => cipher.open(reads[at(i)]!))
await time("utf-8 decode + JSON.parse (spend)", (i) => JSON.parse(decoder.decode(encoder.encode(spendJson[at(i)]!))))
await time("  of which encoder.encode (setup only)", (i) => encoder.encode(spendJson[at(i)]!))
await time("decodeRequest + decodeFunctionData (spend)", (i) => {
  const r = decodeRequest(spendParsed[at(i)]) as { right: { data: Record<string, unknown> } }
  return decodeFunctionData("level_up_weapon", r.right.data)
})
await time("token cache lookup", (i) => cache.lookup(tokens[at(i)]!, Date.now()))
await time("token validate (token server, JWT + SQL)", (i) => local.get("tokens")!.validate!(tokens[at(i)]!), N / 10)
console.log("-- manager (in-process route; a spend awaited alone is a group commit of one)")
const direct = Context.get(context, SqliteDirect)
await time("weapon.post /level_up_weapon", (i) =>
  weapon.post("/level_up_weapon", { unique_id: players[at(i)], weapon: weaponAt(i), iron: "20" })
)
await time("levelUpWeaponDirect (direct, no route)", (i) =>
  levelUpWeaponDirect(direct, players[at(i)]!, weaponAt(i), 20)
)
await time(
  "levelUpWeaponDirect, 20 in one group: per GROUP",
  (g) =>
    Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        levelUpWeaponDirect(direct, players[at(g * 20 + j)]!, weaponAt(g * 20 + j), 20)
      )
    ),
  N / 20
)
await time("getAllWeaponNow (direct, no route)", (i) => getAllWeaponNow(direct, players[at(i)]!))
await time("direct.transaction(() => 1) (BEGIN + COMMIT)", () => direct.transaction(() => 1))
await time("weapon.post /get_all_weapon", (i) => weapon.post("/get_all_weapon", { unique_id: players[at(i)] }))
console.log("-- reply")
await time("encodeReply (spend)", () => encodeReply(spendReply))
await time("encodeReply (read)", () => encodeReply(readReply))
await time("seal (spend)", () => cipher.seal(encoder.encode(spendReplyText)))
await time("seal (read)", () => cipher.seal(encoder.encode(readReplyText)))
await time("frameOf (spend: encode + seal + frame)", () => gateway.frameOf(spendReply))
await time("frameOf (read)", () => gateway.frameOf(readReply))
console.log("-- whole gateway (answer + frameOf, sequential)")
await time("gateway spend", async (i) => gateway.frameOf(await gateway.answer(spends[i % spends.length]!)))
await time("gateway read", async (i) => gateway.frameOf(await gateway.answer(reads[at(i)]!)))

console.log("-- SQL on a separate connection (prepared once)")
const db = new Database(file)
db.run("PRAGMA busy_timeout = 0")
db.run("PRAGMA synchronous = NORMAL")
const select = db.query(
  "SELECT star, level, passive_skill_1_level, passive_skill_2_level, passive_skill_3_level, passive_skill_4_level, skill_point, segment FROM aliya_weapons WHERE unique_id = ? AND weapon = ?"
)
const take = db.query("UPDATE aliya_bag SET iron = iron - ? WHERE unique_id = ? AND iron >= ? RETURNING iron")
const update = db.query(
  "UPDATE aliya_weapons SET star = ?, level = ?, passive_skill_1_level = ?, passive_skill_2_level = ?, passive_skill_3_level = ?, passive_skill_4_level = ?, skill_point = ?, segment = ? WHERE unique_id = ? AND weapon = ?"
)
const list = db.query(
  "SELECT weapon, star, level, passive_skill_1_level, passive_skill_2_level, passive_skill_3_level, passive_skill_4_level, skill_point, segment FROM aliya_weapons WHERE unique_id = ? AND star > 0"
)
const begin = db.query("BEGIN IMMEDIATE")
const commit = db.query("COMMIT")
await time("BEGIN IMMEDIATE + COMMIT (empty)", () => {
  begin.run()
  commit.run()
})
await time("SELECT weapon", (i) => select.values(players[at(i)]!, weaponAt(i)))
await time("list weapons (40 rows, values)", (i) => list.values(players[at(i)]!))
await time("whole spend: BEGIN, SELECT, take, UPDATE, COMMIT", (i) => {
  begin.run()
  const id = players[at(i)]!
  const w = weaponAt(i)
  const r = select.values(id, w)[0]!
  take.values(20, id, 20)
  update.run(r[0] as number, (r[1] as number) + 1, 0, 0, 0, 0, (r[6] as number) + 1, 0, id, w)
  commit.run()
})
await time("db.query(text) lookup (cached statement)", () =>
  db.query("UPDATE aliya_bag SET iron = iron - ? WHERE unique_id = ? AND iron >= ? RETURNING iron")
)
db.close()
stack.remove()
process.exit(0)
