/**
 * Aliya "lukseun" gateway (seed 001), raw TCP on port 8880: MD5("aliya") framing, AES-256-GCM
 * bodies (or the original's DES with aliya.gateway.cipher = "des-compat"), tokens checked with
 * the token server, each function forwarded to the manager that owns it (in-process when the
 * manager runs in the same program, as in `npm start`; over loopback HTTP otherwise).
 */
import { Layer } from "effect"
import { BunTcpTransportLive } from "../../layers/Transport/TcpTransport.ts"
import { InternalHttpLive } from "../../src/aliya/InternalHttp.ts"
import { ColocatedServicesLive } from "../../src/aliya/ServiceCalls.ts"
import { AliyaGatewayPart } from "../../src/aliya/Parts.ts"

export const AliyaGatewayLive = AliyaGatewayPart.pipe(
  Layer.provide(Layer.mergeAll(BunTcpTransportLive, InternalHttpLive, ColocatedServicesLive))
)
