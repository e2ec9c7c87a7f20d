/**
 * Aliya "lukseun" gateway (seed 001), raw TCP on port 8880: MD5("aliya") framing, AES-256-GCM
 * bodies (or the original's DES with aliya.gateway.cipher = "des-compat"), tokens checked with
 * the token server, each function forwarded to the manager that owns it.
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { AliyaGatewayLive } from "./servers/aliya-gateway.ts"

runProgram(AliyaGatewayLive)
