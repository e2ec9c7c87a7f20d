/**
 * Work on one connection that must finish in arrival order while some of it is asynchronous (a
 * hello's key import, a neighbour's client list import): what a message does is applied only
 * after every earlier message's, without the connection waiting for each in turn. With nothing
 * pending, `after` applies at once, so a verified chat is routed within its own frame's handler.
 */
export class OrderedWork {
  private tail: Promise<void> | undefined
  private queued = 0

  constructor(private readonly onDefect: (error: unknown) => void) {}

  get busy(): boolean {
    return this.tail !== undefined
  }

  /** Items queued and not yet applied (callers stop reading beyond a bound: see `throttle`). */
  get pending(): number {
    return this.queued
  }

  /**
   * Nothing when little is queued; else an Effect-free promise to wait on, so the caller's reading
   * pauses (the transport stops reading a connection whose handler is busy) and memory stays bounded.
   */
  throttle(limit: number): Promise<void> | undefined {
    return this.queued >= limit ? this.idle() : undefined
  }

  /** Applies `started`'s result after all earlier work (the promise itself is already running). */
  then<T>(started: Promise<T>, apply: (value: T) => void): void {
    const previous = this.tail
    this.queued++
    const next = (previous ? previous.then(() => started) : started)
      .then(apply)
      .catch(this.onDefect)
      .finally(() => void this.queued--)
    this.tail = next
    void next.then(() => {
      if (this.tail === next) this.tail = undefined
    })
  }

  /** Runs `apply` after all earlier work: now when nothing is pending. */
  after(apply: () => void): void {
    if (!this.tail) {
      apply()
      return
    }
    this.then(Promise.resolve(), apply)
  }

  /** Resolves once everything queued so far is done. */
  idle(): Promise<void> {
    return this.tail ?? Promise.resolve()
  }
}
