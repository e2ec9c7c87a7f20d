import { Effect, FiberRef, LogLevel } from "effect"
import { canMove, type ConnectionState, openStates } from "./ConnectionState.ts"
import type { Cell, Metrics } from "../../layers/Observability/Metrics.ts"

/** One connection's place in the state machine; every move is logged (debug) and counted. */
export interface StateTracker {
  readonly current: () => ConnectionState
  readonly moveTo: (to: ConnectionState) => Effect.Effect<void>
}

/**
 * The seed's connection state machine made visible: a gauge of connections per open state
 * (switchboard_hydrogen_connection_state) and a counter of transitions (..._state_transitions_total).
 */
export const makeConnectionStates = (metrics: typeof Metrics.Service) => {
  const gauge = metrics.gauge(
    "switchboard_hydrogen_connection_state",
    "Open connections per state of the seed's state machine",
    ["state"]
  )
  const transitions = metrics.counter("switchboard_hydrogen_state_transitions_total", "Connection state transitions", [
    "from",
    "to"
  ])
  const cells = new Map<ConnectionState, Cell>(openStates.map((state) => [state, gauge.labels({ state })]))
  const transitionCells = new Map<string, Cell>()
  const count = (from: ConnectionState, to: ConnectionState) => {
    const key = `${from}>${to}`
    let cell = transitionCells.get(key)
    if (!cell) transitionCells.set(key, (cell = transitions.labels({ from, to })))
    cell.inc()
  }

  const machine: Machine = { cells, count }
  const track = (label: Record<string, unknown>, initial: ConnectionState): StateTracker =>
    new TrackedConnection(machine, label, initial)

  /** Records a whole upgrade path (Connecting → Verifying → ...) for a request that has no connection yet. */
  const upgradePath = (label: Record<string, unknown>, path: ReadonlyArray<ConnectionState>) =>
    Effect.forEach(
      path.slice(1),
      (to, i) => {
        count(path[i]!, to)
        return logMove(`connection ${path[i]} -> ${to}`, label)
      },
      { discard: true }
    )

  return { track, upgradePath }
}

/** A debug line per move; skipped before building its annotations unless debug logging is on (moves happen per connection). */
const logMove = (message: string, label: Record<string, unknown>) =>
  Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (minimum) =>
    LogLevel.greaterThan(minimum, LogLevel.Debug)
      ? Effect.void
      : Effect.logDebug(message).pipe(Effect.annotateLogs(label))
  )

interface Machine {
  readonly cells: ReadonlyMap<ConnectionState, Cell>
  readonly count: (from: ConnectionState, to: ConnectionState) => void
}

/** A class, so each connection holds one object (methods on the prototype), not a set of closures. */
class TrackedConnection implements StateTracker {
  constructor(
    private readonly machine: Machine,
    private readonly label: Record<string, unknown>,
    private state: ConnectionState
  ) {
    machine.cells.get(state)?.inc()
  }

  current(): ConnectionState {
    return this.state
  }

  // Quiet connections reach Inactive through Heartbeat, as in the seed's diagram.
  moveTo(to: ConnectionState): Effect.Effect<void> {
    return to === "Inactive" && this.state === "Connected"
      ? Effect.zipRight(this.step("Heartbeat"), this.step(to))
      : this.step(to)
  }

  private step(to: ConnectionState): Effect.Effect<void> {
    return Effect.suspend(() => {
      const from = this.state
      if (from === to || !canMove(from, to)) return Effect.void
      this.state = to
      this.machine.cells.get(from)?.dec()
      this.machine.cells.get(to)?.inc()
      this.machine.count(from, to)
      return logMove(`connection ${from} -> ${to}`, this.label)
    })
  }
}

export type ConnectionStatesTracker = ReturnType<typeof makeConnectionStates>
