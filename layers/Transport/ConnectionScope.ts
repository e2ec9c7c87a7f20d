import { Effect, ExecutionStrategy, Exit, Option, Scope } from "effect"
import { pipeArguments } from "effect/Pipeable"

/**
 * A connection's Scope, made without a fiber (Scope.make has to be run, and Effect.runSync is a fiber per
 * connection) and holding no finalizer list until something is added: an idle connection keeps one small
 * object. Finalizers run in reverse order of addition, one after another, like Scope.make's default.
 */
type Finalizer = Scope.Scope.Finalizer
type ScopeState =
  | { readonly _tag: "Open"; readonly finalizers: Map<object, Finalizer> }
  | { readonly _tag: "Closed"; readonly exit: Exit.Exit<unknown, unknown> }

export class ConnectionScope implements Scope.CloseableScope {
  declare readonly [Scope.ScopeTypeId]: Scope.ScopeTypeId
  declare readonly [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId
  declare readonly strategy: ExecutionStrategy.ExecutionStrategy
  private current: ScopeState | undefined = undefined

  /** The shape Effect's own scopes have (Effect.forkIn reads it directly); the finalizer map is made on first use. */
  get state(): ScopeState {
    if (this.current === undefined) this.current = { _tag: "Open", finalizers: new Map() }
    return this.current
  }

  pipe() {
    // biome-ignore lint/complexity/noArguments: Pipeable's own convention.
    return pipeArguments(this, arguments)
  }

  addFinalizer(finalizer: Finalizer): Effect.Effect<void> {
    return Effect.suspend(() => {
      const state = this.state
      if (state._tag === "Closed") return finalizer(state.exit)
      state.finalizers.set({}, finalizer)
      return Effect.void
    })
  }

  /** A child scope closed with this one, and forgotten by it once closed earlier (a scoped fiber that ended). */
  fork(strategy: ExecutionStrategy.ExecutionStrategy): Effect.Effect<Scope.CloseableScope> {
    return Effect.flatMap(Scope.make(strategy), (child) => {
      const state = this.state
      if (state._tag === "Closed") return Effect.as(Scope.close(child, state.exit), child)
      const key = {}
      state.finalizers.set(key, (exit) => Scope.close(child, exit))
      const forget = Effect.sync(() => {
        const now = this.state
        if (now._tag === "Open") now.finalizers.delete(key)
      })
      return Effect.as(Scope.addFinalizer(child, forget), child)
    })
  }

  /** Closes the scope now if it holds no finalizer (nothing to run); false, and still open, otherwise. */
  closeIfEmpty(exit: Exit.Exit<unknown, unknown>): boolean {
    const state = this.current
    if (state !== undefined && (state._tag === "Closed" || state.finalizers.size > 0)) return false
    this.current = { _tag: "Closed", exit }
    return true
  }

  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const state = this.current
      if (state?._tag === "Closed") return Effect.void
      this.current = { _tag: "Closed", exit }
      if (state === undefined || state.finalizers.size === 0) return Effect.void
      const finalizers = Array.from(state.finalizers.values()).reverse()
      return Effect.flatten(
        Effect.map(
          Effect.forEach(finalizers, (finalizer) => Effect.exit(finalizer(exit))),
          (results) => Option.getOrElse(Option.map(Exit.all(results), Exit.asVoid), () => Exit.void)
        )
      )
    })
  }
}

Object.assign(ConnectionScope.prototype, {
  [Scope.ScopeTypeId]: Scope.ScopeTypeId,
  [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId,
  strategy: ExecutionStrategy.sequential
})
