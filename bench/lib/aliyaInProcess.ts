/**
 * The co-located Aliya parts (managers, token server, gateway) in this process on a temporary
 * SQLite file, without sockets, with `players` seeded (10^9 iron, weapon1..weapon40 owned) and
 * logged in: the setup of the in-process profiling aids (aliya-micro.ts, aliya-breakdown.ts).
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

export const startAliyaInProcess = async (options: {
  readonly players: number
  readonly name: string
  /** With the direct SQLite connection (as the programs run); false = the SqlClient path only. */
  readonly direct: boolean
}) => {
  const cipher = aesGcmCipher(new Uint8Array(32).map((_, i) => i + 1))
  const encoder = new TextEncoder()
  const dir = mkdtempSync(join(tmpdir(), `${options.name}-`))
  const file = join(dir, "aliya.sqlite")
  const serviceToken = Redacted.make(`${options.name}-service-token-0123456789abcdef0123`)
  const cost = { memoryCost: 1024, timeCost: 1 }
  const players = Array.from({ length: options.players }, (_, i) => `${options.name}-${i}`)

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
      lifetime: Duration.seconds(3600),
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
    for (const id of players) {
      yield* saveAccount({ uniqueId: id, bound: true, account: id, password: `pw-${id}` }, cost)
      yield* setBagAmounts(id, { iron: 1_000_000_000 })
      for (const weapon of Weapons) yield* grantWeapon(id, weapon, { star: 1, level: 0 })
    }
    return { gateway, local }
  })
  const layer = Layer.mergeAll(
    SqliteDatabase(file),
    options.direct ? SqliteDirectFile(file) : SqliteDirectNone,
    InternalHttpMemory,
    Layer.sync(ColocatedServices, () => new Map<ServiceName, LocalService>())
  ).pipe(Layer.provideMerge(MemoryTransportTest))
  const scope = Effect.runSync(Scope.make())
  // Built in a scope that stays open: the database and the parts live until the process exits.
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const { gateway, local } = await Effect.runPromise(
    program.pipe(Effect.provide(context), Scope.extend(scope), Logger.withMinimumLogLevel(LogLevel.Error))
  )
  /** A sealed request body, as a client sends it (random "1"). */
  const sealRequest = (fn: string, data: Record<string, unknown>) =>
    cipher.seal(encoder.encode(JSON.stringify({ function: fn, random: "1", data })))
  const tokens: Array<string> = []
  for (const id of players) {
    const r = await gateway.answer(sealRequest("login", { identifier: "account", value: id, password: `pw-${id}` }))
    if (r.status !== 0) throw new Error(`login: ${JSON.stringify(r)}`)
    tokens.push(String(r.data.token))
  }
  return {
    gateway,
    local,
    context,
    cipher,
    file,
    players,
    tokens,
    sealRequest,
    remove: () => rmSync(dir, { recursive: true, force: true })
  }
}
