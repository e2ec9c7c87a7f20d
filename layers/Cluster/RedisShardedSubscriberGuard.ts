import ShardedSubscriber from "ioredis/built/cluster/ShardedSubscriber.js"

/**
 * ioredis 5.9's sharded subscriber removes every listener of its connection when it is stopped (a
 * master demoted, a slot moved), while late replies can still arrive on it; the "Command queue state
 * error" such a reply raises is then emitted with no listener, and an EventEmitter throws that as an
 * uncaught exception, which would end the whole server. A stopped subscriber's connection keeps one
 * listener that drops it: the subscriber is already gone and its channels are restored elsewhere.
 */
const ignoreLateError = () => {}

const guarded = Symbol.for("switchboard.shardedSubscriberGuard")
const prototype = ShardedSubscriber.prototype as ShardedSubscriber & { [guarded]?: true }

if (!prototype[guarded]) {
  const stop = prototype.stop
  prototype.stop = function (this: ShardedSubscriber) {
    const connection = this.getInstance()
    stop.call(this)
    // ioredis mixes EventEmitter in (no instanceof): its emitter methods are there all the same.
    if (connection !== null && connection.listenerCount("error") === 0) connection.on("error", ignoreLateError)
  }
  prototype[guarded] = true
}

export { ShardedSubscriber }
