import { Either } from "effect"
import { Command, encodePacket, frameProblemMessage, MAGIC, packet, readPacket, type TPacket } from "./Packet.ts"

export interface ClosedInfo {
  readonly code: number
  readonly reason: string
}

const encoder = new TextEncoder()
const bytesOf = (value: string | Uint8Array) => (typeof value === "string" ? encoder.encode(value) : value)

/**
 * A small typed client for the tPacket chat protocol (Promise based, no Effect needed):
 *
 *   const chat = await TPacketClient.connect("ws://127.0.0.1:25021/")   // sends the magic packet
 *   await chat.setNick("alice")                                         // _RESP_OK or _RESP_ERROR
 *   await chat.setRoom("lobby")
 *   chat.sendMessage("hello")
 *   for await (const p of chat) console.log(p.cmd, p.p1, new TextDecoder().decode(p.data))
 *
 * Every packet the server sends, replies included, comes out of `next()` / async iteration in
 * order; `request` additionally resolves with the reply whose uid matches.
 */
export class TPacketClient implements AsyncIterable<TPacket> {
  private nextUid = 1
  private readonly waiting = new Map<number, { resolve: (reply: TPacket) => void; reject: (e: Error) => void }>()
  private readonly inbox: Array<TPacket> = []
  private readonly readers: Array<{ resolve: (p: TPacket) => void; reject: (e: Error) => void }> = []
  private closedInfo: ClosedInfo | undefined
  readonly closed: Promise<ClosedInfo>

  private constructor(readonly socket: WebSocket) {
    socket.binaryType = "arraybuffer"
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.closedInfo = { code: event.code, reason: event.reason }
        for (const reader of this.readers.splice(0)) reader.reject(this.closedError())
        for (const request of this.waiting.values()) request.reject(this.closedError())
        this.waiting.clear()
        resolve(this.closedInfo)
      })
    })
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") return this.fail(new Error("server sent a text frame"))
      Either.match(readPacket(new Uint8Array(event.data as ArrayBuffer)), {
        onLeft: (problem) => this.fail(new Error(`server sent a bad packet: ${frameProblemMessage[problem]}`)),
        onRight: (p) => this.deliver(p)
      })
    })
  }

  /** Opens the WebSocket and sends the magic packet (pass `magic: false` to skip it). */
  static connect(url: string, options: { readonly magic?: boolean } = {}): Promise<TPacketClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      const client = new TPacketClient(socket)
      socket.addEventListener(
        "open",
        () => {
          if (options.magic !== false) client.send(Command.NOP, MAGIC)
          resolve(client)
        },
        { once: true }
      )
      socket.addEventListener("close", (event) => reject(new Error(`connection closed before open (${event.code})`)), {
        once: true
      })
    })
  }

  /** Connects, then pipelines magic, nick and room like the original client; resolves after both replies. */
  static async join(url: string, nick: string | Uint8Array, room: string | Uint8Array) {
    const client = await TPacketClient.connect(url)
    const [nickReply, roomReply] = await Promise.all([client.setNick(nick), client.setRoom(room)])
    return { client, nickReply, roomReply }
  }

  /** Sends a packet; returns its uid. */
  send(cmd: number, data: string | Uint8Array = new Uint8Array(0), fields: { p1?: number; p2?: number } = {}): number {
    const uid = this.nextUid++
    this.socket.send(encodePacket(packet(cmd, { uid, data: bytesOf(data), ...fields })))
    return uid
  }

  /** Sends a packet and resolves with the _RESP_OK / _RESP_ERROR that echoes its uid; rejects if the socket closes first. */
  request(cmd: number, data: string | Uint8Array = new Uint8Array(0)): Promise<TPacket> {
    if (this.closedInfo) return Promise.reject(this.closedError())
    const uid = this.send(cmd, data)
    return new Promise((resolve, reject) => this.waiting.set(uid, { resolve, reject }))
  }

  setNick(nick: string | Uint8Array) {
    return this.request(Command.SET_USER_NICK, nick)
  }

  setRoom(room: string | Uint8Array) {
    return this.request(Command.SET_ROOM, room)
  }

  /** Sends _NEW_MSG; the server echoes it back to this client as _NEW_MSG with uid -1. */
  sendMessage(text: string | Uint8Array): number {
    return this.send(Command.NEW_MSG, text)
  }

  /** Sends arbitrary bytes as one binary message (for probing the server). */
  sendRaw(bytes: Uint8Array | string): void {
    this.socket.send(bytes)
  }

  /** The next packet from the server, in arrival order; rejects after `timeoutMs` or on close. */
  next(timeoutMs = 3000): Promise<TPacket> {
    const queued = this.inbox.shift()
    if (queued) return Promise.resolve(queued)
    if (this.closedInfo) return Promise.reject(this.closedError())
    return new Promise((resolve, reject) => {
      const reader = {
        resolve: (p: TPacket) => {
          clearTimeout(timer)
          resolve(p)
        },
        reject: (e: Error) => {
          clearTimeout(timer)
          reject(e)
        }
      }
      const timer = setTimeout(() => {
        this.readers.splice(this.readers.indexOf(reader), 1)
        reject(new Error(`no packet within ${timeoutMs} ms`))
      }, timeoutMs)
      this.readers.push(reader)
    })
  }

  /** Packets already received and not yet taken. */
  pending(): ReadonlyArray<TPacket> {
    return this.inbox
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TPacket> {
    while (true) {
      try {
        yield await this.next(2 ** 31 - 1)
      } catch (error) {
        if (this.closedInfo) return
        throw error
      }
    }
  }

  close(code = 1000): void {
    this.socket.close(code)
  }

  private deliver(p: TPacket) {
    if (p.cmd === Command.RESP_OK || p.cmd === Command.RESP_ERROR) {
      const waiter = this.waiting.get(p.uid)
      if (waiter) {
        this.waiting.delete(p.uid)
        waiter.resolve(p)
      }
    }
    const reader = this.readers.shift()
    if (reader) reader.resolve(p)
    else this.inbox.push(p)
  }

  private fail(error: Error) {
    for (const reader of this.readers.splice(0)) reader.reject(error)
  }

  private closedError() {
    return new Error(`connection closed (${this.closedInfo?.code} ${this.closedInfo?.reason ?? ""})`)
  }
}
