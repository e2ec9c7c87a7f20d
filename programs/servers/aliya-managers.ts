/**
 * Aliya managers (seed 001): one internal HTTP service per resource (account 8087, player state
 * 8081, bag 8082, weapon 8083, skill 8084), bound to loopback and authenticated with
 * aliya.serviceToken, over SQL (aliya.storage: SQLite by default, or MySQL/MariaDB).
 */
import { Layer } from "effect"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { ColocatedServicesLive } from "../../src/aliya/ServiceCalls.ts"
import { AliyaDatabaseFromConfig, AliyaManagersPart } from "../../src/aliya/Parts.ts"

export const AliyaManagersLive = AliyaManagersPart.pipe(
  Layer.provide(Layer.mergeAll(BunTransportLive, AliyaDatabaseFromConfig, ColocatedServicesLive))
)
