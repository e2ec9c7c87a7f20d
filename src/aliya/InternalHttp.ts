import { Context, Data, Duration, Effect, Layer } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"

export class InternalHttpError extends Data.TaggedError("InternalHttpError")<{
  readonly url: string
  readonly message: string
}> {}

export interface InternalResponse {
  readonly status: number
  readonly body: unknown
}

/**
 * HTTP between Aliya's own services (gateway → token server → managers). Real: fetch; in tests:
 * the MemoryNetwork, with URLs http://memory:<port>/path.
 */
export class InternalHttp extends Context.Tag("switchboard/aliya/InternalHttp")<
  InternalHttp,
  {
    /** A plain Promise (no fiber per request on the gateway's path); rejects with InternalHttpError. */
    readonly send: (url: string, init: RequestInit) => Promise<InternalResponse>
  }
>() {}

const timeout = Duration.seconds(10)

const parse = (url: string, response: Response) =>
  Effect.tryPromise({
    try: async () => {
      const text = await response.text()
      return { status: response.status, body: text === "" ? {} : (JSON.parse(text) as unknown) }
    },
    catch: () => new InternalHttpError({ url, message: `unreadable answer (HTTP ${response.status})` })
  })

/** How long a caller waits for an internal answer (it tells the callee so: WAIT_HEADER). */
export const INTERNAL_TIMEOUT_MILLIS = Duration.toMillis(timeout)

const send = async (url: string, init: RequestInit): Promise<InternalResponse> => {
  let response: Response
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(INTERNAL_TIMEOUT_MILLIS) })
  } catch (cause) {
    throw new InternalHttpError({ url, message: String(cause) })
  }
  const text = await response.text().catch(() => undefined)
  try {
    return { status: response.status, body: text === undefined || text === "" ? {} : (JSON.parse(text) as unknown) }
  } catch {
    throw new InternalHttpError({ url, message: `unreadable answer (HTTP ${response.status})` })
  }
}

export const InternalHttpLive = Layer.succeed(InternalHttp, { send })

export const InternalHttpMemory = Layer.effect(
  InternalHttp,
  Effect.map(MemoryNetwork, (network) => {
    const request = (url: string, init: RequestInit) =>
      Effect.suspend(() => {
        const parsed = new URL(url)
        if (parsed.hostname !== "memory")
          return Effect.fail(new InternalHttpError({ url, message: "not a memory URL" }))
        return network
          .fetch(Number(parsed.port), new Request(url, init))
          .pipe(Effect.flatMap((response) => parse(url, response)))
      })
    return {
      send: (url: string, init: RequestInit) =>
        Effect.runPromise(Effect.either(request(url, init))).then((r) => {
          if (r._tag === "Left") throw r.left
          return r.right
        })
    }
  })
)
