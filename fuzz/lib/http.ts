import type { TCPSocketConnectOptions } from "bun"

/**
 * One HTTP/1.1 request over a plain TCP socket bound to a chosen source address (fetch cannot bind
 * one): the canaries use 127.0.0.2 so a per-address block earned by the fuzz traffic (127.0.0.1)
 * cannot fail them.
 */
export const requestFrom = async (options: {
  readonly localAddress: string
  readonly url: string
  readonly method: string
  readonly headers?: Record<string, string>
  readonly body?: string
  readonly timeoutMs?: number
}): Promise<{ status: number; body: string }> => {
  const url = new URL(options.url)
  const body = options.body === undefined ? undefined : Buffer.from(options.body)
  const lines = [`${options.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, "Connection: close"]
  for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`${name}: ${value}`)
  if (body) lines.push(`Content-Length: ${body.length}`)
  const head = Buffer.from(lines.join("\r\n") + "\r\n\r\n")
  const chunks: Array<Buffer> = []
  const response = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no HTTP answer within ${options.timeoutMs ?? 10_000} ms`)),
      options.timeoutMs ?? 10_000
    )
    const done = () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    }
    const connect: TCPSocketConnectOptions<undefined> & { localAddress?: string } = {
      hostname: url.hostname,
      port: Number(url.port),
      localAddress: options.localAddress,
      socket: {
        open: (socket) => {
          socket.write(body ? Buffer.concat([head, body]) : head)
        },
        data: (_socket, chunk) => void chunks.push(Buffer.from(chunk)),
        close: done,
        end: done,
        error: (_socket, error) => {
          clearTimeout(timer)
          reject(error)
        },
        connectError: (_socket, error) => {
          clearTimeout(timer)
          reject(error)
        }
      }
    }
    Bun.connect(connect).catch(reject)
  })
  const split = response.indexOf("\r\n\r\n")
  const statusLine = response.subarray(0, response.indexOf("\r\n")).toString()
  const headers = response.subarray(0, split).toString().toLowerCase()
  let rest = response.subarray(split + 4)
  if (headers.includes("transfer-encoding: chunked")) rest = dechunk(rest)
  return { status: Number(statusLine.split(" ")[1]), body: rest.toString() }
}

const dechunk = (bytes: Buffer): Buffer => {
  const parts: Array<Buffer> = []
  let at = 0
  while (at < bytes.length) {
    const lineEnd = bytes.indexOf("\r\n", at)
    const size = Number.parseInt(bytes.subarray(at, lineEnd).toString(), 16)
    if (!size) break
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}
