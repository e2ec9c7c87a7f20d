import { Context, type Effect, type Queue, type Scope } from "effect"
import type { Metrics } from "../Observability/Metrics.ts"
import type { DialOptions } from "./Link.ts"

/** What a kept-up link reports: whether it is open now. */
export interface LinkStatus {
  readonly isUp: () => boolean
}

/**
 * Everything that crosses from one server process to another.
 * - The bus: subjects that every node of one cluster publishes to and subscribes to (in-process
 *   for one node; Redis or NATS for a cluster).
 * - Links: an outbound server-to-server connection that dials, authenticates (the protocol's
 *   `onOpen`), re-dials with jittered backoff for as long as the caller's Scope lives, and
 *   reports up/down (the `switchboard_link_up` gauge and `LinkStatus`).
 * The protocols on top (DroneEngage S2S, the Neighbourhood mesh) live in src/<server>/.
 */
export interface FederationService {
  readonly publish: (subject: string, payload: string) => Effect.Effect<void>
  /** Payloads published to `subject` by any node (this one included) while the Scope lives. */
  readonly subscribe: (subject: string) => Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope>
  readonly link: <R>(options: DialOptions<R>) => Effect.Effect<LinkStatus, never, R | Metrics | Scope.Scope>
  /** True when the bus reaches the other nodes of a cluster (broker-backed); absent or false in one process. */
  readonly spansNodes?: boolean
}

export class Federation extends Context.Tag("switchboard/Federation")<Federation, FederationService>() {}
