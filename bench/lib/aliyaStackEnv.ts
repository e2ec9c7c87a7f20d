import { join } from "node:path"
import { freePort } from "./servers.ts"

/**
 * Environment for bench/lib/aliya-stack.ts: every part of Aliya on free loopback ports, one
 * SQLite file in `dir`, the gateway keyed with `key`. Load generators dial from loopback only, so
 * the per-address login limit is lifted.
 */
export const aliyaStackEnv = (
  key: Buffer,
  dir: string,
  options: {
    players: number
    logLevel: string
    /** argon2id cost of the seeded accounts and of every login (the production default when absent). */
    argon2?: { readonly memoryKiB: number; readonly passes: number } | undefined
  }
) => {
  const [gateway, tokens, account, playerState, bag, skill, weapon] = Array.from({ length: 7 }, () => freePort())
  const url = (port: number | undefined) => `http://127.0.0.1:${port}`
  const env = {
    ALIYA_SERVICE_TOKEN: crypto.randomUUID() + crypto.randomUUID(),
    ALIYA_GATEWAY_KEY: key.toString("hex"),
    ALIYA_GATEWAY_PORT: String(gateway),
    ALIYA_GATEWAY_HOST: "127.0.0.1",
    ALIYA_GATEWAY_LOGIN_RATE_PER_SECOND: "1000000",
    ALIYA_GATEWAY_LOGIN_BURST: "1000000",
    ALIYA_GATEWAY_TOKEN_SERVER_URL: url(tokens),
    ALIYA_GATEWAY_MANAGERS_ACCOUNT: url(account),
    ALIYA_GATEWAY_MANAGERS_PLAYER_STATE: url(playerState),
    ALIYA_GATEWAY_MANAGERS_BAG: url(bag),
    ALIYA_GATEWAY_MANAGERS_SKILL: url(skill),
    ALIYA_GATEWAY_MANAGERS_WEAPON: url(weapon),
    ALIYA_TOKENS_SECRET: key.toString("hex"),
    ALIYA_TOKENS_PORT: String(tokens),
    ALIYA_TOKENS_ACCOUNT_MANAGER_URL: url(account),
    ALIYA_MANAGERS_ACCOUNT_PORT: String(account),
    ALIYA_MANAGERS_PLAYER_STATE_PORT: String(playerState),
    ALIYA_MANAGERS_BAG_PORT: String(bag),
    ALIYA_MANAGERS_SKILL_PORT: String(skill),
    ALIYA_MANAGERS_WEAPON_PORT: String(weapon),
    ALIYA_STORAGE_SQLITE_FILENAME: join(dir, "aliya.sqlite"),
    ...(options.argon2 && {
      ALIYA_MANAGERS_ARGON2_MEMORY_KI_B: String(options.argon2.memoryKiB),
      ALIYA_MANAGERS_ARGON2_TIME_COST: String(options.argon2.passes)
    }),
    BENCH_PLAYERS: String(options.players),
    LOG_LEVEL: options.logLevel
  }
  return { env, gateway: gateway!, tokens: tokens!, managers: { account, playerState, bag, skill, weapon } }
}
