import type { HttpApp } from "@effect/platform"
import { Context, Data, type Effect, type Scope } from "effect"
import type { SocketLimits } from "../../src/shared/SocketLimits.ts"

/** What arrives on a WebSocket: text frames as strings, binary frames as bytes. */
export type WireMessage = string | Uint8Array

/** Result of a send: written now, queued behind earlier bytes, dropped (buffer full), or socket gone. */
export type SendStatus = "sent" | "queued" | "dropped" | "closed"

/** One accepted WebSocket, as protocol code sees it. `data` is what the upgrade decided. */
export interface Connection<D> {
  readonly id: number
  readonly data: D
  readonly remoteAddress: string
  readonly send: (message: WireMessage) => SendStatus
  /** Sends to every subscriber of `topic` except this connection (native pub/sub). */
  readonly publish: (topic: string, message: WireMessage) => void
  /** Sends to every subscriber of `topic` on this connection's server, this connection included (server-wide publish). */
  readonly publishToAll: (topic: string, message: WireMessage) => void
  readonly subscribe: (topic: string) => void
  readonly unsubscribe: (topic: string) => void
  readonly isSubscribed: (topic: string) => boolean
  readonly close: (code: number, reason?: string) => void
  readonly isOpen: () => boolean
}

/** Message handler returned by `WebSocketProtocol.open`: one per connection, or one shared by all. */
export interface ConnectionHandler<R = never, D = any> {
  /**
   * Handles one inbound message. Return nothing when the work is done synchronously: the
   * transport then calls it straight from the socket callback, with no fiber per message. Return
   * an Effect for asynchronous work; later messages wait for it, so order always holds. The
   * connection comes along, so a handler whose state fits in `data` can be shared (no closure per connection).
   */
  readonly onMessage: (message: WireMessage, connection: Connection<D>) => Effect.Effect<void, never, R> | void
}

export type UpgradeDecision<D> =
  | { readonly _tag: "Accept"; readonly data: D; readonly headers?: Record<string, string> }
  | { readonly _tag: "Reject"; readonly response: Response }

export const accept = <D>(data: D, headers?: Record<string, string>): UpgradeDecision<D> =>
  headers === undefined ? { _tag: "Accept", data } : { _tag: "Accept", data, headers }

export const reject = (status: number, reason: string, headers?: Record<string, string>): UpgradeDecision<never> => ({
  _tag: "Reject",
  response: Response.json({ error: reason }, { status, headers: headers ?? {} })
})

/**
 * The peer's IP address, provided by the transport to plain HTTP handlers (per-IP rate limits,
 * logs). Read it with Effect.serviceOption: transports that cannot tell leave it out.
 */
export class ClientAddress extends Context.Tag("switchboard/ClientAddress")<ClientAddress, string>() {}

/**
 * A peer's address as it would read on an IPv4-only listener: a dual-stack listener ("::") sees IPv4
 * peers as IPv4-mapped IPv6 (::ffff:127.0.0.1), which would split per-address limits and logs in two.
 */
export const plainAddress = (address: string): string =>
  address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address

/** Facts about the peer available at upgrade time. */
export interface UpgradeInfo {
  readonly remoteAddress: string
  readonly url: URL
}

export interface WebSocketProtocol<D, R = never> {
  /** Decides whether an HTTP upgrade request becomes a connection, and with what state. */
  readonly upgrade: (request: Request, info: UpgradeInfo) => Effect.Effect<UpgradeDecision<D>, never, R>
  /**
   * Runs once per connection inside the connection's Scope: fork heartbeats or timeouts with
   * Effect.forkScoped and register cleanup with Effect.addFinalizer; both end when the socket closes.
   */
  readonly open: (connection: Connection<D>) => Effect.Effect<ConnectionHandler<R, D>, never, R | Scope.Scope>
  /**
   * Optional fast path of `open` when its work is synchronous: opens the connection on the spot, with no fiber,
   * and returns its handler; undefined when something asynchronous is needed (decided before anything is
   * done): the transport then runs `open`.
   */
  readonly openNow?: (connection: Connection<D>) => OpenedNow<R, D> | undefined
}

/** What `openNow` returns: the handler and the cleanup to run once the socket is gone. */
export interface OpenedNow<R = never, D = any> extends ConnectionHandler<R, D> {
  /** Runs right after the close, with the connection (so it can be shared too); an Effect returned is run in a fiber. */
  readonly onClose?: (connection: Connection<D>) => Effect.Effect<void, never, R> | void
}

export interface TlsFiles {
  readonly certPath: string
  readonly keyPath: string
}

/**
 * An HTTP endpoint the transport answers itself, ahead of `http` (on Bun, through Bun.serve's native `routes`):
 * for hot endpoints, without the HTTP app's request and response wrappers. It takes a request only with its
 * `method` and its exact `path` (a trailing "/" too); anything else on that path goes to `http`, as before.
 * The body limit applies first, as for `http`.
 */
export interface NativeRoute<R = never> {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
  readonly path: string
  /**
   * The answer: an Effect (run on the spot, a fiber only if it suspends), or a Response or a Promise of one from a
   * handler that needs no fiber at all; `address` is the peer's (as ClientAddress gives it to `http`).
   */
  readonly handle: (
    request: Request,
    address: string
  ) => Effect.Effect<Response, never, R> | Response | Promise<Response>
  /** The answer when `handle` fails (logged either way); default an empty 500, as the HTTP app's. */
  readonly onDefect?: () => Response
}

export interface ServeOptions<D, R> {
  /** Names the server in logs and metrics. */
  readonly name: string
  readonly port: number
  /** Where to listen; "::" is dual-stack (IPv6 and IPv4 on one socket), "0.0.0.0" IPv4 only. */
  readonly hostname?: string
  readonly tls?: TlsFiles | undefined
  /** SO_REUSEPORT: several processes listen on one port and the kernel spreads connections (Linux). */
  readonly reusePort?: boolean
  readonly limits: SocketLimits
  /** Plain HTTP requests (anything that is not a WebSocket upgrade). */
  readonly http?: HttpApp.Default<never, R | Scope.Scope>
  /** Endpoints answered ahead of `http` (see NativeRoute). */
  readonly routes?: ReadonlyArray<NativeRoute<R>>
  readonly websocket?: WebSocketProtocol<D, R>
}

export interface ServerHandle {
  readonly name: string
  readonly port: number
  readonly hostname: string
  /** Base URL, e.g. http://127.0.0.1:9966 (https when TLS is on). */
  readonly url: string
  /** Sends to every subscriber of `topic`; returns how many bytes were handed to the sockets (0 when none). */
  readonly publish: (topic: string, message: WireMessage) => number
  readonly subscriberCount: (topic: string) => number
  readonly connectionCount: () => number
}

export class ServeError extends Data.TaggedError("ServeError")<{
  readonly server: string
  readonly message: string
}> {}

/**
 * Serves HTTP and WebSocket on one port for the lifetime of the surrounding Scope. Closing the
 * scope closes every connection with 1001 and stops listening.
 */
export class Transport extends Context.Tag("switchboard/Transport")<
  Transport,
  {
    readonly serve: <D, R>(options: ServeOptions<D, R>) => Effect.Effect<ServerHandle, ServeError, R | Scope.Scope>
  }
>() {}
