import { Opcode, WsConn, type WsTarget } from "../../bench/loadgen/WsWire.ts"

/**
 * A promise-based WebSocket client over the bench's raw RFC 6455 client (bench/loadgen/WsWire.ts):
 * it can send what a browser cannot (invalid UTF-8 in a text frame, any opcode), binds a source
 * address (the canaries dial from 127.0.0.2 so per-address limits hit by the fuzz traffic cannot
 * touch them) and reports the close code as seen on the wire (1006 = no close frame).
 */

export { Opcode }

/**
 * Source addresses: fuzz lanes dial from 127.0.0.1, canaries from 127.0.0.2, and upgrades with bad
 * credentials from 127.0.0.3, so a per-address block they earn leaves the lanes and canaries alone.
 */
export const UPGRADE_ADDRESS = "127.0.0.3"

export interface Frame {
  readonly opcode: number
  readonly payload: Buffer
}

export interface Closed {
  readonly code: number
  readonly reason: string
}

export class FuzzSocket {
  readonly frames: Array<Frame> = []
  closed: Closed | undefined
  /** The upgrade succeeded (a close before it carries the HTTP status of the refusal). */
  opened = false
  private wake: (() => void) | undefined
  private constructor(readonly conn: WsConn) {}

  /** Opens a connection; resolves once it is open or refused (then `closed.code` is the HTTP status). */
  static open(target: WsTarget, timeoutMs = 10_000): Promise<FuzzSocket> {
    return new Promise((resolve, reject) => {
      let socket: FuzzSocket | undefined
      const timer = setTimeout(
        () => reject(new Error(`no upgrade answer from ${target.url} within ${timeoutMs} ms`)),
        timeoutMs
      )
      const settle = () => {
        clearTimeout(timer)
        if (socket) resolve(socket)
      }
      void WsConn.open(
        0,
        target,
        {
          onOpen: () => {
            if (socket) socket.opened = true
            settle()
          },
          onMessage: (_conn, opcode, payload) => {
            socket?.frames.push({ opcode, payload: Buffer.from(payload) })
            socket?.poke()
          },
          onClose: (_conn, code, reason) => {
            if (socket) {
              socket.closed = { code, reason }
              socket.poke()
            }
            settle()
          }
        },
        0
      ).then((conn) => {
        socket = new FuzzSocket(conn)
        socket.opened = conn.state === "open"
        if (conn.state !== "connecting") settle()
      }, reject)
    })
  }

  get isOpen(): boolean {
    return this.conn.state === "open" && this.closed === undefined
  }

  /** The HTTP status of a refused upgrade, if it was refused. */
  get refusedWith(): number | undefined {
    return this.closed && !this.opened ? this.closed.code : undefined
  }

  send(opcode: number, payload: Uint8Array): void {
    this.conn.send(opcode, payload)
  }

  text(text: string): void {
    this.conn.send(Opcode.text, Buffer.from(text))
  }

  binary(bytes: Uint8Array): void {
    this.conn.send(Opcode.binary, bytes)
  }

  /** Bytes the kernel has not taken yet (the fuzzer waits for them before judging a flood). */
  get pendingBytes(): number {
    return this.conn.pendingBytes
  }

  /**
   * Takes frames up to and including the first that `isEnd` accepts; stops early at a close.
   * Rejects after `timeoutMs` without either (the server neither answered nor closed), and closes the connection.
   */
  async until(isEnd: (frame: Frame) => boolean, timeoutMs: number): Promise<{ frames: Array<Frame>; ended: boolean }> {
    const deadline = performance.now() + timeoutMs
    const taken: Array<Frame> = []
    while (true) {
      while (this.frames.length > 0) {
        const frame = this.frames.shift()!
        taken.push(frame)
        if (isEnd(frame)) return { frames: taken, ended: true }
      }
      if (this.closed) return { frames: taken, ended: false }
      const left = deadline - performance.now()
      if (left <= 0) {
        // Frames still in flight would answer (or close) during the next case on this connection: drop it.
        this.close()
        throw new Error(`no answer within ${timeoutMs} ms (${taken.length} frames so far)`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  /** Waits for the close (the frames before it are kept); rejects after `timeoutMs`. */
  async whenClosed(timeoutMs: number): Promise<Closed> {
    await this.until(() => false, timeoutMs)
    return this.closed!
  }

  close(): void {
    if (this.conn.state !== "closed") this.conn.close(1000)
  }

  private poke(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}
