import { Effect } from "effect"
import { canMove, type ConnectionState, openStates } from "../../src/hydrogen/ConnectionState.ts"
import type { Cell, Metrics } from "../Observability/Metrics.ts"

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
  const gauge = metrics.gauge("switchboard_hydrogen_connection_state", "Open connections per state of the seed's state machine", ["state"])
  const transitions = metrics.counter("switchboard_hydrogen_state_transitions_total", "Connection state transitions", ["from", "to"])
  const cells = new Map<ConnectionState, Cell>(openStates.map((state) => [state, gauge.labels({ state })]))
  const transitionCells = new Map<string, Cell>()
  const count = (from: ConnectionState, to: ConnectionState) => {
    const key = `${from}>${to}`
    let cell = transitionCells.get(key)
    if (!cell) transitionCells.set(key, (cell = transitions.labels({ from, to })))
    cell.inc()
  }

  const track = (label: Record<string, unknown>, initial: ConnectionState): StateTracker => {
    let state = initial
    cells.get(state)?.inc()
    const step = (to: ConnectionState) =>
      Effect.suspend(() => {
        if (state === to || !canMove(state, to)) return Effect.void
        const from = state
        state = to
        cells.get(from)?.dec()
        cells.get(to)?.inc()
        count(from, to)
        return Effect.logDebug(`connection ${from} -> ${to}`).pipe(Effect.annotateLogs(label))
      })
    return {
      current: () => state,
      // Quiet connections reach Inactive through Heartbeat, as in the seed's diagram.
      moveTo: (to) => (to === "Inactive" && state === "Connected" ? Effect.zipRight(step("Heartbeat"), step(to)) : step(to))
    }
  }

  /** Records a whole upgrade path (Connecting → Verifying → ...) for a request that has no connection yet. */
  const upgradePath = (label: Record<string, unknown>, path: ReadonlyArray<ConnectionState>) =>
    Effect.forEach(path.slice(1), (to, i) => {
      count(path[i]!, to)
      return Effect.logDebug(`connection ${path[i]} -> ${to}`).pipe(Effect.annotateLogs(label))
    }, { discard: true })

  return { track, upgradePath }
}

export type ConnectionStatesTracker = ReturnType<typeof makeConnectionStates>
