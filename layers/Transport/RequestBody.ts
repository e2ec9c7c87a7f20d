/**
 * HTTP request body limit, applied by every transport before a handler sees the request, so each
 * endpoint of each server is bounded whether or not its handler checks sizes itself.
 */

/**
 * The answer to a body over the limit: short JSON, and the connection closes (Connection: close),
 * so the unread rest of the body is never parsed as a next request on a kept-alive connection.
 */
export const bodyTooLarge = (limit: number) =>
  Response.json(
    { error: `request body too large: the limit is ${limit} bytes` },
    { status: 413, headers: { connection: "close" } }
  )

const unreadable = () =>
  Response.json({ error: "request body could not be read" }, { status: 400, headers: { connection: "close" } })

/** Reads a streamed (chunked) body, counting, and stops as soon as it passes the limit. */
const readBounded = async (
  request: Request,
  body: ReadableStream<Uint8Array>,
  limit: number
): Promise<Request | Response> => {
  const reader = body.getReader()
  const chunks: Array<Uint8Array> = []
  let total = 0
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      if (total > limit) {
        reader.cancel().catch(() => {})
        return bodyTooLarge(limit)
      }
      chunks.push(value)
    }
  } catch {
    return unreadable()
  }
  return new Request(request, { body: Buffer.concat(chunks, total) })
}

/**
 * The request to hand on, or the response that refuses it. A declared Content-Length over the limit
 * is refused unread; a body without one (chunked) is buffered here up to the limit; bodiless and
 * declared-size requests pass through synchronously, with no Promise made.
 */
export const limitRequestBody = (request: Request, limit: number): Request | Response | Promise<Request | Response> => {
  const declared = request.headers.get("content-length")
  if (declared !== null) return Number(declared) > limit ? bodyTooLarge(limit) : request
  const body = request.body
  return body === null ? request : readBounded(request, body, limit)
}
