import { describe, expect, it } from "bun:test"
import { EventEmitter } from "node:events"
import { ShardedSubscriber } from "../../../layers/Cluster/RedisShardedSubscriberGuard.ts"

describe("ioredis sharded subscriber guard", () => {
  it("an error emitted on a stopped subscriber's connection (a late reply) is not thrown", () => {
    // lazyConnect: the subscriber's connection is made but never opened.
    const subscriber = new ShardedSubscriber(new EventEmitter(), { host: "127.0.0.1", port: 1, lazyConnect: true })
    const connection = subscriber.getInstance()!
    subscriber.stop()
    expect(subscriber.getInstance()).toBeNull()
    expect(() =>
      connection.emit("error", new Error("Command queue state error. Last reply: sunsubscribe"))
    ).not.toThrow()
  })

  it("a running subscriber's errors still reach the subscriber group", () => {
    const group = new EventEmitter()
    const seen: Array<string> = []
    group.on("nodeError", (error: Error) => seen.push(error.message))
    const subscriber = new ShardedSubscriber(group, { host: "127.0.0.1", port: 1, lazyConnect: true })
    subscriber.getInstance()!.emit("error", new Error("boom"))
    expect(seen).toEqual(["boom"])
    subscriber.stop()
  })
})
