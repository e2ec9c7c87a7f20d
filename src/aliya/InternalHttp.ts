import { Context, Data, Duration, Effect, Layer } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"

export class InternalHttpError extends Data.TaggedError("InternalHttpError")<{ readonly url: string; readonly message: string }> {}

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
  { readonly request: (url: string, init: RequestInit) => Effect.Effect<InternalResponse, InternalHttpError> }
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

export const InternalHttpLive = Layer.succeed(InternalHttp, {
  request: (url, init) =>
    Effect.tryPromise({
      try: (signal) => fetch(url, { ...init, signal }),
      catch: (cause) => new InternalHttpError({ url, message: String(cause) })
    }).pipe(
      Effect.flatMap((response) => parse(url, response)),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new InternalHttpError({ url, message: "timed out" }) })
    )
})

export const InternalHttpMemory = Layer.effect(
  InternalHttp,
  Effect.map(MemoryNetwork, (network) => ({
    request: (url: string, init: RequestInit) =>
      Effect.suspend(() => {
        const parsed = new URL(url)
        if (parsed.hostname !== "memory") return Effect.fail(new InternalHttpError({ url, message: "not a memory URL" }))
        return network.fetch(Number(parsed.port), new Request(url, init)).pipe(Effect.flatMap((response) => parse(url, response)))
      })
  }))
)

/** POST a JSON body with the service token. */
export const postJson = (url: string, body: unknown, headers: Record<string, string>) =>
  Effect.flatMap(InternalHttp, (http) =>
    http.request(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })
  )
