import { createHash, randomBytes } from "node:crypto"
import type { Socket, TCPSocketConnectOptions } from "bun"

/**
 * A minimal RFC 6455 client over Bun.connect, for load generation: it can bind a source address
 * (127.0.0.x, so more than one ephemeral port range is available), reads frames straight from the
 * TCP chunks without an event object per message, and answers pings like a browser would.
 */

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const

export interface WsHandlers {
  /** The 101 arrived; the connection is open. */
  readonly onOpen: (conn: WsConn) => void
  /** A complete text or binary message; `now` is the arrival time of the TCP chunk (µs). */
  readonly onMessage: (conn: WsConn, opcode: number, payload: Buffer, now: number) => void
  /** Every frame of a received TCP chunk was handled; replies written now still leave in the chunk's one write. */
  readonly onChunkEnd?: (conn: WsConn) => void
  /** The socket is gone; code 1006 when no close frame was seen. */
  readonly onClose: (conn: WsConn, code: number, reason: string) => void
}

export interface WsTarget {
  readonly url: string
  readonly headers?: Record<string, string>
  readonly protocol?: string
  readonly localAddress?: string
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
const headerEnd = Buffer.from("\r\n\r\n")

/** Frames a client message: FIN, the opcode, the length, a random mask, the masked payload. */
export const encodeFrame = (opcode: number, payload: Uint8Array): Buffer => {
  const length = payload.length
  const headerLength = length < 126 ? 6 : length < 65536 ? 8 : 14
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x80 | opcode
  if (length < 126) frame[1] = 0x80 | length
  else if (length < 65536) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  const maskAt = headerLength - 4
  const mask = (Math.random() * 0x100000000) >>> 0
  frame.writeUInt32BE(mask, maskAt)
  const m0 = mask >>> 24,
    m1 = (mask >>> 16) & 255,
    m2 = (mask >>> 8) & 255,
    m3 = mask & 255
  for (let i = 0; i < length; i += 4) {
    const at = headerLength + i
    frame[at] = payload[i]! ^ m0
    if (i + 1 < length) frame[at + 1] = payload[i + 1]! ^ m1
    if (i + 2 < length) frame[at + 2] = payload[i + 2]! ^ m2
    if (i + 3 < length) frame[at + 3] = payload[i + 3]! ^ m3
  }
  return frame
}

export const nowMicros = (base: number) => Math.round((performance.timeOrigin + performance.now() - base) * 1000)

export class WsConn {
  socket: Socket<WsConn> | undefined
  /** Writes made while a received chunk is handled, sent together at its end. */
  private corked: Array<Buffer> | undefined = undefined
  state: "connecting" | "open" | "closed" = "connecting"
  closeCode = 0
  /** Bytes that the kernel did not take yet (bounded by the sender's own pacing). */
  pendingBytes = 0
  private pending: Array<Buffer> = []
  private inbound: Buffer | undefined
  private fragments: Array<Buffer> = []
  private fragmentOpcode = 0
  private readonly key = randomBytes(16).toString("base64")
  /** Free slot for the protocol adapter's per-connection state. */
  user: any = undefined
  /** A slow reader: reading stops after every chunk until `pauseReading(false)`. */
  pauseAfterChunk = false

  constructor(
    readonly index: number,
    readonly handlers: WsHandlers,
    readonly clockBase: number
  ) {}

  static async open(index: number, target: WsTarget, handlers: WsHandlers, clockBase: number): Promise<WsConn> {
    const conn = new WsConn(index, handlers, clockBase)
    const url = new URL(target.url)
    const port = Number(url.port || (url.protocol === "wss:" ? 443 : 80))
    const options: TCPSocketConnectOptions<WsConn> & { localAddress?: string } = {
      hostname: url.hostname,
      port,
      data: conn,
      socket: {
        data: (socket, chunk) => socket.data.received(chunk),
        drain: (socket) => socket.data.flush(),
        close: (socket) => socket.data.gone(1006, ""),
        error: (socket) => socket.data.gone(1006, "socket error"),
        connectError: (socket) => socket.data.gone(1006, "connect failed")
      }
    }
    // Bun.connect binds the source address when given localAddress (not in its type definitions).
    if (target.localAddress) options.localAddress = target.localAddress
    conn.socket = await Bun.connect<WsConn>(options)
    conn.socket.setNoDelay(true)
    const lines = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${conn.key}`,
      "Sec-WebSocket-Version: 13"
    ]
    if (target.protocol) lines.push(`Sec-WebSocket-Protocol: ${target.protocol}`)
    for (const [name, value] of Object.entries(target.headers ?? {})) lines.push(`${name}: ${value}`)
    conn.writeRaw(Buffer.from(lines.join("\r\n") + "\r\n\r\n"))
    return conn
  }

  send(opcode: number, payload: Uint8Array): void {
    if (this.state !== "open") return
    this.writeRaw(encodeFrame(opcode, payload))
  }

  sendText(text: string): void {
    this.send(Opcode.text, Buffer.from(text))
  }

  /** Writes bytes now, or queues what the kernel did not take until the next drain. */
  writeRaw(bytes: Buffer): void {
    if (!this.socket || this.state === "closed") return
    if (this.corked) {
      this.corked.push(bytes)
      return
    }
    if (this.pending.length > 0) {
      this.pending.push(bytes)
      this.pendingBytes += bytes.length
      return
    }
    const written = this.socket.write(bytes)
    if (written < bytes.length) {
      const rest = bytes.subarray(Math.max(0, written))
      this.pending.push(rest)
      this.pendingBytes += rest.length
    }
  }

  flush(): void {
    while (this.pending.length > 0 && this.socket) {
      const head = this.pending[0]!
      const written = this.socket.write(head)
      if (written <= 0) return
      this.pendingBytes -= written
      if (written < head.length) {
        this.pending[0] = head.subarray(written)
        return
      }
      this.pending.shift()
    }
  }

  close(code = 1000): void {
    if (this.state === "open") {
      const payload = Buffer.alloc(2)
      payload.writeUInt16BE(code, 0)
      this.writeRaw(encodeFrame(Opcode.close, payload))
    }
    this.socket?.end()
    this.gone(code, "closed by client")
  }

  /** Stops reading from the socket (a slow consumer), or resumes. */
  pauseReading(paused: boolean): void {
    if (paused) (this.socket as any)?.pause()
    else (this.socket as any)?.resume()
  }

  gone(code: number, reason: string): void {
    if (this.state === "closed") return
    this.state = "closed"
    if (this.closeCode === 0) this.closeCode = code
    this.handlers.onClose(this, this.closeCode, reason)
  }

  received(chunk: Buffer): void {
    if (this.pauseAfterChunk) this.pauseReading(true)
    let data = this.inbound ? Buffer.concat([this.inbound, chunk]) : chunk
    this.inbound = undefined
    if (this.state === "connecting") {
      const end = data.indexOf(headerEnd)
      if (end < 0) {
        this.inbound = Buffer.from(data)
        return
      }
      const head = data.subarray(0, end).toString("latin1")
      if (!this.acceptedBy(head)) {
        const status = head.slice(9, 12)
        this.closeCode = Number(status) || 1002
        this.socket?.end()
        this.gone(this.closeCode, `upgrade refused: ${head.split("\r\n")[0]}`)
        return
      }
      this.state = "open"
      this.handlers.onOpen(this)
      data = data.subarray(end + 4)
    }
    const now = nowMicros(this.clockBase)
    let at = 0
    // Replies to the frames of one chunk (Hydrogen's acks, pongs) leave in one write, as a corking client's do.
    this.corked = []
    while (this.state === "open") {
      if (data.length - at < 2) break
      const b0 = data[at]!
      const b1 = data[at + 1]!
      let length = b1 & 127
      let headerLength = 2
      if (length === 126) {
        if (data.length - at < 4) break
        length = data.readUInt16BE(at + 2)
        headerLength = 4
      } else if (length === 127) {
        if (data.length - at < 10) break
        length = Number(data.readBigUInt64BE(at + 2))
        headerLength = 10
      }
      if (data.length - at < headerLength + length) break
      const payload = data.subarray(at + headerLength, at + headerLength + length)
      at += headerLength + length
      this.frame(b0 & 15, (b0 & 0x80) !== 0, payload, now)
    }
    if (this.state === "open") this.handlers.onChunkEnd?.(this)
    const corked = this.corked
    this.corked = undefined
    if (corked.length > 0) this.writeRaw(corked.length === 1 ? corked[0]! : Buffer.concat(corked))
    if (at < data.length && this.state !== "closed") this.inbound = Buffer.from(data.subarray(at))
  }

  private frame(opcode: number, fin: boolean, payload: Buffer, now: number): void {
    if (opcode === Opcode.ping) {
      this.send(Opcode.pong, payload)
      return
    }
    if (opcode === Opcode.pong) return
    if (opcode === Opcode.close) {
      this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
      const reason = payload.length > 2 ? payload.subarray(2).toString() : ""
      this.writeRaw(encodeFrame(Opcode.close, payload.subarray(0, 2)))
      this.socket?.end()
      this.gone(this.closeCode, reason)
      return
    }
    if (!fin || opcode === Opcode.continuation) {
      if (opcode !== Opcode.continuation) this.fragmentOpcode = opcode
      this.fragments.push(Buffer.from(payload))
      if (!fin) return
      payload = Buffer.concat(this.fragments)
      this.fragments = []
      opcode = this.fragmentOpcode
    }
    this.handlers.onMessage(this, opcode, payload, now)
  }

  private acceptedBy(head: string): boolean {
    if (!head.startsWith("HTTP/1.1 101")) return false
    const expected = createHash("sha1")
      .update(this.key + GUID)
      .digest("base64")
    return head.toLowerCase().includes(`sec-websocket-accept: ${expected.toLowerCase()}`)
  }
}
