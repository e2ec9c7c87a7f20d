import { Cause, Effect, Exit, Runtime } from "effect"
import { limitRequestBody } from "./RequestBody.ts"
import type { NativeRoute } from "./Transport.ts"

/**
 * Running ServeOptions.routes, shared by the transports: which route takes a request (the exact path, or
 * that path with a trailing "/"), and its handler run on the spot, with no Promise when it finishes synchronously.
 */

/** The path of a request URL ("http://host:1/a/b?q=1" → "/a/b"), as the HTTP app reads it, without a URL object. */
export const pathOf = (url: string): string => {
  const start = url[0] === "/" ? 0 : url.indexOf("/", url.indexOf("//") + 2)
  if (start < 0) return "/"
  const query = url.indexOf("?", start)
  return query < 0 ? url.slice(start) : url.slice(start, query)
}

/** Route lookup by method and path: the paths a route answers are its own and the same with a trailing "/". */
export const routeTable = <R>(routes: ReadonlyArray<NativeRoute<R>>): Map<string, NativeRoute<R>> => {
  const table = new Map<string, NativeRoute<R>>()
  for (const route of routes) {
    table.set(`${route.method} ${route.path}`, route)
    if (!route.path.endsWith("/")) table.set(`${route.method} ${route.path}/`, route)
  }
  return table
}

/** The paths to register natively (Bun's router): each route's path with and without the trailing "/". */
export const routePaths = <R>(routes: ReadonlyArray<NativeRoute<R>>): ReadonlyArray<string> => [
  ...new Set(routes.flatMap((route) => (route.path.endsWith("/") ? [route.path] : [route.path, `${route.path}/`])))
]

/** The route for this request, or undefined: then the request goes to the HTTP app, as any other. */
export const routeFor = <R>(table: ReadonlyMap<string, NativeRoute<R>>, request: Request) =>
  table.size === 0 ? undefined : table.get(`${request.method} ${pathOf(request.url)}`)

/** A defect in a route's handler: logged, answered as the HTTP app answers one (an empty 500). */
const internalError = () => new Response(undefined, { status: 500 })

/**
 * Runs routes' handlers in `runtime`, after the request body limit: the answer at once when the handler
 * completes synchronously, else a Promise of it.
 */
export const makeRouteRunner = <R>(runtime: Runtime.Runtime<R>, serverName: string, bodyLimit: number) => {
  const runFork = Runtime.runFork(runtime)
  const settle = (route: NativeRoute<R>, exit: Exit.Exit<Response>): Response => {
    if (Exit.isSuccess(exit)) return exit.value
    runFork(
      Effect.logError("route handler failed", Cause.pretty(exit.cause)).pipe(Effect.annotateLogs("server", serverName))
    )
    return (route.onDefect ?? internalError)()
  }
  const run = (route: NativeRoute<R>, request: Request, address: string): Response | Promise<Response> => {
    const failed = (defect: unknown) => settle(route, Exit.die(defect))
    let handled: ReturnType<NativeRoute<R>["handle"]>
    try {
      handled = route.handle(request, address)
    } catch (defect) {
      return failed(defect)
    }
    if (handled instanceof Response) return handled
    if (handled instanceof Promise) return handled.catch(failed)
    const fiber = runFork(handled)
    const done = fiber.unsafePoll()
    if (done) return settle(route, done)
    return new Promise((resolve) => fiber.addObserver((exit) => resolve(settle(route, exit))))
  }
  return (route: NativeRoute<R>, request: Request, address: string): Response | Promise<Response> => {
    const bounded = limitRequestBody(request, bodyLimit)
    if (bounded instanceof Request) return run(route, bounded, address)
    if (bounded instanceof Response) return bounded
    return bounded.then((checked) => (checked instanceof Response ? checked : run(route, checked, address)))
  }
}
