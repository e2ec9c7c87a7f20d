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
    readonly request: (url: string, init: RequestInit) => Effect.Effect<InternalResponse, InternalHttpError>
    /** The same as a plain Promise, for the gateway's per-request path (no fiber per request); rejects with InternalHttpError. */
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

const timeoutMillis = Duration.toMillis(timeout)

const send = async (url: string, init: RequestInit): Promise<InternalResponse> => {
  let response: Response
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMillis) })
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

export const InternalHttpLive = Layer.succeed(InternalHttp, {
  send,
  request: (url, init) =>
    Effect.tryPromise({
      try: () => send(url, init),
      catch: (e) => (e instanceof InternalHttpError ? e : new InternalHttpError({ url, message: String(e) }))
    })
})

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
      request,
      send: (url: string, init: RequestInit) =>
        Effect.runPromise(Effect.either(request(url, init))).then((r) => {
          if (r._tag === "Left") throw r.left
          return r.right
        })
    }
  })
)

/** POST a JSON body with the service token. */
export const postJson = (url: string, body: unknown, headers: Record<string, string>) =>
  Effect.flatMap(InternalHttp, (http) =>
    http.request(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body)
    })
  )
