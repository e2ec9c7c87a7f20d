/**
 * Aliya token server (seed 001), HTTP on 127.0.0.1:8080: POST /login, POST /login_unique,
 * GET /validate. JWTs signed with aliya.tokens.secret (HS256) or an Ed25519 key; the current
 * token of each player is kept in SQL, so a new login revokes the old token across restarts.
 */
import { Layer } from "effect"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { InternalHttpLive } from "../../src/aliya/InternalHttp.ts"
import { ColocatedServicesLive } from "../../src/aliya/ServiceCalls.ts"
import { AliyaDatabaseFromConfig, AliyaTokensPart } from "../../src/aliya/Parts.ts"

export const AliyaTokensLive = AliyaTokensPart.pipe(
  Layer.provide(Layer.mergeAll(BunTransportLive, InternalHttpLive, AliyaDatabaseFromConfig, ColocatedServicesLive))
)
