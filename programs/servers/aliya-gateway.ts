/**
 * Aliya "lukseun" gateway (seed 001), raw TCP on port 8880: MD5("aliya") framing, AES-256-GCM
 * bodies (or the original's DES with aliya.gateway.cipher = "des-compat"), tokens checked with
 * the token server, each function forwarded to the manager that owns it.
 */
import { Layer } from "effect"
import { BunTcpTransportLive } from "../../layers/Transport/TcpTransport.ts"
import { InternalHttpLive } from "../../src/aliya/InternalHttp.ts"
import { AliyaGatewayPart } from "../../src/aliya/Parts.ts"

export const AliyaGatewayLive = AliyaGatewayPart.pipe(Layer.provide(Layer.merge(BunTcpTransportLive, InternalHttpLive)))
