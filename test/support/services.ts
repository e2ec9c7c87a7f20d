import { connect } from "node:net"

/** True when something accepts TCP connections at host:port (within a short timeout). */
export const reachable = (host: string, port: number, timeoutMs = 1000) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/**
 * Probes a loopback service for a test file. Outside CI an unreachable service skips the tests
 * with a printed reason; in CI (CI=true) it is a failure, because CI promises the service.
 */
export const requireService = async (name: string, host: string, port: number): Promise<boolean> => {
  if (await reachable(host, port)) return true
  const reason = `${name} is not reachable at ${host}:${port}`
  if (process.env.CI === "true") throw new Error(`${reason}; CI requires it`)
  console.warn(`skipping ${name} tests: ${reason}`)
  return false
}
