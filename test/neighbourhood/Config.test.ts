import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either, Option } from "effect"
import { NeighbourhoodConfig } from "../../src/neighbourhood/Config.ts"

const read = (json: unknown) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(NeighbourhoodConfig, ConfigProvider.fromJson(json))))

describe("Neighbourhood config", () => {
  test("defaults: port 9002, address localhost:9002, no neighbours, secure compat settings", () => {
    const config = Either.getOrThrow(read({}))
    expect(config.port).toBe(9002)
    expect(config.address).toBe("localhost:9002")
    expect(config.neighbours).toEqual([])
    expect(config.compat).toEqual({ unsignedServerHello: false, perConnectionCounters: false, pushClientList: false })
    expect(config.files.maxBytes).toBe(10 * 1024 * 1024)
    // The transport's HTTP body limit follows the upload limit, so files up to maxBytes reach the file API.
    expect(config.socket.maxRequestBodyBytes).toBe(10 * 1024 * 1024 + 64 * 1024)
  })

  test("neighbours map an address to a dial URL and a key", () => {
    const config = Either.getOrThrow(
      read({
        neighbourhood: {
          address: "server0",
          neighbours: [{ address: "my.server.net", url: "wss://my.server.net/", publicKeyPath: "k.pem" }]
        }
      })
    )
    expect(config.neighbours[0]).toMatchObject({
      address: "my.server.net",
      url: "wss://my.server.net/",
      publicKeyPath: Option.some("k.pem")
    })
  })

  test("an invalid value names its key", () => {
    const message = (json: unknown) => String(Either.getLeft(read(json)).pipe(Option.getOrThrow))
    expect(message({ neighbourhood: { port: 70000 } })).toContain("port")
    expect(message({ neighbourhood: { neighbours: [{ address: "a", url: "http://a/", publicKey: "x" }] } })).toContain(
      "url"
    )
    expect(message({ neighbourhood: { neighbours: [{ address: "a", url: "ws://a/" }] } })).toContain(
      "publicKey or publicKeyPath"
    )
    expect(
      message({ neighbourhood: { address: "a", neighbours: [{ address: "a", url: "ws://a/", publicKey: "x" }] } })
    ).toContain("distinct addresses")
    expect(message({ neighbourhood: { limits: { messagesPerSecond: 0 } } })).toContain("messagesPerSecond")
  })
})
