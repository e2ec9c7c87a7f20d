import { startNatsServerWith } from "../../test/support/natsServer.ts"
import { NATS_URL, type NatsServerRef, pidByName } from "./cluster-stack.ts"
import { pidListeningOn } from "./proc.ts"

/**
 * The NATS server the cluster scenario measures against. `private` (the default): one started for
 * the run as docs/cluster.md recommends for a server that shares a small box with the nodes, with
 * `GOMAXPROCS=1` (on this 2-core VM the Go runtime's wake-ups between its threads cost ~40 % of the
 * server's CPU otherwise); `shared`: the machine's server on 4222 as it was started (default runtime).
 */
export type BenchNats = NatsServerRef & { readonly kind: "private" | "shared"; readonly stop: () => Promise<void> }

export const benchNats = async (kind = process.env.BENCH_CLUSTER_NATS ?? "private"): Promise<BenchNats> => {
  if (kind === "shared")
    return { kind, url: NATS_URL, pid: pidListeningOn(4222) ?? pidByName("nats-server"), stop: async () => {} }
  if (kind !== "private") throw new Error(`BENCH_CLUSTER_NATS: expected private or shared, got ${kind}`)
  const server = await startNatsServerWith({ env: { GOMAXPROCS: "1" } })
  const pid = pidListeningOn(server.port)
  if (pid === undefined) {
    await server.stop()
    throw new Error(`cannot find the private nats-server listening on ${server.port}`)
  }
  return { kind, url: `nats://${server.url}`, pid, stop: server.stop }
}
