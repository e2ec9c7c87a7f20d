/**
 * Broker client throughput on loopback: one publisher connection, one subscriber connection,
 * `count` messages of `size` bytes published without awaiting each one (pipelined), timed until
 * the subscriber has received the last. Run: `bun run bench/brokers/redis-clients.ts [count] [size]`.
 * Needs Redis at 127.0.0.1:6379 and NATS at 127.0.0.1:4222.
 */
import { connect } from "@nats-io/transport-node"
import { RedisClient } from "bun"
import Redis from "ioredis"

const count = Number(process.argv[2] ?? 200_000)
const size = Number(process.argv[3] ?? 100)
const payload = "x".repeat(size)
const channel = `bench/${crypto.randomUUID()}`

interface Row {
  readonly client: string
  readonly messagesPerSecond: number
}

const timed = async (client: string, run: (done: () => void) => Promise<void>): Promise<Row> => {
  const started = performance.now()
  await new Promise<void>((resolve, reject) => run(resolve).catch(reject))
  const seconds = (performance.now() - started) / 1000
  return { client, messagesPerSecond: Math.round(count / seconds) }
}

const bunRedis = async (): Promise<Row> => {
  const publisher = new RedisClient("redis://127.0.0.1:6379")
  const subscriber = new RedisClient("redis://127.0.0.1:6379")
  await publisher.connect()
  let received = 0
  let finish = () => {}
  await subscriber.subscribe(channel, () => {
    if (++received === count) finish()
  })
  const row = await timed("bun RedisClient (PUBLISH)", async (done) => {
    finish = done
    const pending: Array<Promise<unknown>> = []
    for (let i = 0; i < count; i++) {
      pending.push(publisher.publish(channel, payload))
      if (pending.length === 1000) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
  })
  publisher.close()
  subscriber.close()
  return row
}

const ioredis = async (sharded: boolean): Promise<Row> => {
  const publisher = new Redis("redis://127.0.0.1:6379")
  const subscriber = new Redis("redis://127.0.0.1:6379")
  let received = 0
  let finish = () => {}
  const onMessage = () => {
    if (++received === count) finish()
  }
  if (sharded) {
    subscriber.on("smessageBuffer", onMessage)
    await subscriber.ssubscribe(channel)
  } else {
    subscriber.on("messageBuffer", onMessage)
    await subscriber.subscribe(channel)
  }
  const row = await timed(`ioredis ${sharded ? "(SPUBLISH)" : "(PUBLISH)"}`, async (done) => {
    finish = done
    const pending: Array<Promise<unknown>> = []
    for (let i = 0; i < count; i++) {
      pending.push(sharded ? publisher.spublish(channel, payload) : publisher.publish(channel, payload))
      if (pending.length === 1000) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
  })
  publisher.disconnect()
  subscriber.disconnect()
  return row
}

const nats = async (): Promise<Row> => {
  const publisher = await connect({ servers: "127.0.0.1:4222" })
  const subscriber = await connect({ servers: "127.0.0.1:4222" })
  const bytes = new TextEncoder().encode(payload)
  let received = 0
  let finish = () => {}
  subscriber.subscribe(channel.replaceAll("/", "."), {
    callback: () => {
      if (++received === count) finish()
    }
  })
  await subscriber.flush()
  const row = await timed("@nats-io/transport-node", async (done) => {
    finish = done
    for (let i = 0; i < count; i++) {
      publisher.publish(channel.replaceAll("/", "."), bytes)
      if (i % 1000 === 999) await publisher.flush()
    }
    await publisher.flush()
  })
  await publisher.close()
  await subscriber.close()
  return row
}

const rows: Array<Row> = []
for (const run of [bunRedis, () => ioredis(false), () => ioredis(true), nats]) rows.push(await run())
console.log(`${count} messages of ${size} bytes, one publisher, one subscriber, loopback`)
for (const row of rows) console.log(`${row.client.padEnd(28)} ${row.messagesPerSecond.toLocaleString("en")} msg/s`)
