import { Effect } from "effect"
import type { MessageLimiter } from "./RateLimits.ts"
import type { StateTracker } from "./ConnectionStates.ts"
import type { CommandContext } from "./Handlers.ts"
import type { Identity } from "./Permissions.ts"
import type { HydrogenConnection, Session } from "./Session.ts"

/**
 * What the protocol keeps per open connection: one object (its methods on the prototype), no
 * fiber. It is also the command context of the connection's own commands.
 */
export class LiveConnection implements CommandContext {
  /** Commands started without a fiber whose response has not gone out yet (publishes waiting for the flush). */
  private started = 0
  /** Commands that must wait until those are answered, so responses leave in the order commands came. */
  private waiting: Array<() => void> | undefined = undefined

  constructor(
    readonly connection: HydrogenConnection,
    readonly state: StateTracker,
    readonly limiter: MessageLimiter,
    public session: Session,
    public identity: Identity,
    /** When the last inbound message arrived (drives Connected ⇄ Heartbeat → Inactive). */
    public lastInbound: number
  ) {}

  /** Switches the connection to a resumed session. */
  adoptSession(session: Session) {
    this.session = session
  }

  /** Replaces the identity after a token refresh (same subject); the expiry sweep reads the new expiresAt. */
  refreshIdentity(identity: Identity) {
    this.identity = identity
  }

  /** A command started without a fiber; `answered` once its response is sent. */
  starting() {
    this.started++
  }

  answered() {
    if (--this.started > 0 || !this.waiting) return
    const waiting = this.waiting
    this.waiting = undefined
    for (const resume of waiting) resume()
  }

  /** True while started commands are unanswered: anything else must wait for `allAnswered`. */
  hasUnanswered(): boolean {
    return this.started > 0
  }

  /** Completes once every started command is answered. */
  allAnswered(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.started === 0) return resume(Effect.void)
      ;(this.waiting ??= []).push(() => resume(Effect.void))
    })
  }
}
