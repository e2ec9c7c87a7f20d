import { markerText, padTo } from "./Marker.ts"
import { Opcode, type WsConn, type WsTarget } from "./WsWire.ts"

/** One simulated client, as the coordinator plans it. */
export interface ClientSpec {
  readonly index: number
  /** Unit name / nick / client id. */
  readonly unit: string
  readonly group: string
  /** Index among the group's senders, or -1 for a receiver only. */
  readonly sender: number
  readonly localAddress: string
  /** Reads slowly (scenario 6); excluded from pacing so it cannot slow the senders. */
  readonly slow: boolean
}

/** Where the clients go and how they authenticate; plain data so it crosses the IPC channel. */
export type TargetConfig =
  | {
      readonly protocol: "droneengage"
      /** Authenticator base URL, e.g. http://127.0.0.1:19408 */
      readonly authUrl: string
      readonly account: string
      readonly accessCode: string
      /** Relay ports to dial instead of the login's cs.h, client i on port i mod n (several relay processes). */
      readonly relayPorts?: ReadonlyArray<number>
    }
  | { readonly protocol: "chat"; readonly url: string }
  | {
      readonly protocol: "hydrogen"
      readonly url: string
      readonly key: string
      readonly subprotocol: string
      /** Reliable channel (acks + history) or best-effort. */
      readonly reliable: boolean
      /** Ack the events of one received chunk with one batch ack (`ids`) instead of one ack each. */
      readonly batchAcks?: boolean
    }

/** What a protocol must tell the generic client engine. */
export interface Adapter {
  /** The protocol delivers a sender's own messages back to it (tPacket chat does). */
  readonly echoesToSender: boolean
  /** HTTP steps before the socket (DroneEngage login) and the socket's URL. */
  readonly prepare: (spec: ClientSpec) => Promise<WsTarget>
  /** Frames a client sends right after the upgrade. */
  readonly onOpen: (conn: WsConn, spec: ClientSpec) => void
  /** Handshake frames until the client may send: "ready", "wait", or throws with the reason. */
  readonly handshake: (conn: WsConn, opcode: number, payload: Buffer) => "ready" | "wait"
  /** Offset at which a delivered frame's payload starts, or -1 for frames that are not deliveries. */
  readonly deliveryOffset: (opcode: number, payload: Buffer) => number
  /** The frame a sender sends for one benchmark message. */
  readonly message: (
    spec: ClientSpec,
    run: number,
    seq: number,
    sentAt: number,
    size: number
  ) => { opcode: number; payload: Buffer }
  /** Something a receiver answers to each delivery (Hydrogen acks on reliable channels). */
  readonly reply?: (conn: WsConn, payload: Buffer) => void
  /** Called once the frames of a received chunk are handled (sends batched replies). */
  readonly chunkEnd?: (conn: WsConn) => void
}

const loopbackHost = (host: string) => (/^(127\.|localhost$|\[?::1\]?$)/.test(host) ? host : "127.0.0.1")

/** DroneEngage: POST /w/wl (GCS login), then ws://<g>:<h>/?f=<key>&s=<unit>, then {ty:"g"} traffic. */
const droneEngage = (target: Extract<TargetConfig, { protocol: "droneengage" }>): Adapter => ({
  echoesToSender: false,
  prepare: async (spec) => {
    const response = await fetch(`${target.authUrl}/w/wl`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        acc: target.account,
        pwd: target.accessCode,
        gr: spec.group,
        app: "bench",
        ver: "1",
        ex: "",
        at: "g"
      })
    })
    const body = (await response.json().catch(() => ({}))) as {
      e?: number
      em?: string
      cs?: { f: string; g: string; h: number }
    }
    if (body.e !== 0 || !body.cs) throw new Error(`login refused: HTTP ${response.status} e=${body.e} ${body.em ?? ""}`)
    const { f, g } = body.cs
    const h = target.relayPorts?.length ? target.relayPorts[spec.index % target.relayPorts.length] : body.cs.h
    const url = `ws://${loopbackHost(g)}:${h}/?f=${encodeURIComponent(f)}&s=${encodeURIComponent(spec.unit)}`
    return { url, localAddress: spec.localAddress }
  },
  onOpen: () => {},
  handshake: (_conn, opcode, payload) => {
    if (opcode !== Opcode.text) return "wait"
    const message = JSON.parse(payload.toString()) as { ty?: string; mt?: number; ms?: { s?: string } }
    if (message.ty === "s" && message.mt === 9007) return "ready"
    return "wait"
  },
  deliveryOffset: () => 0,
  message: (spec, run, seq, sentAt, size) => {
    const head = `{"ty":"g","sd":"${spec.unit}","mt":1000,"ms":{${markerText(run, spec.sender, seq, sentAt)},"x":"`
    const text = `${head}${padTo(size, head.length + 3)}"}}`
    return { opcode: Opcode.text, payload: Buffer.from(text) }
  }
})

/** tPacket header: "Ej8@", then little-endian int32 uid, size, cmd, p1, p2. */
const packet = (uid: number, cmd: number, data: Buffer): Buffer => {
  const bytes = Buffer.alloc(24 + data.length)
  bytes.write("Ej8@", 0, "latin1")
  bytes.writeInt32LE(uid, 4)
  bytes.writeInt32LE(24 + data.length, 8)
  bytes.writeInt32LE(cmd, 12)
  data.copy(bytes, 24)
  return bytes
}

const ChatCommand = { nop: 0, nick: 1, room: 2, ok: 3, error: 4, newMessage: 7 } as const
const ROOM_UID = 2

/** tPacket chat: magic packet, nick, room (pipelined, as the original client does), then messages. */
const chat = (target: Extract<TargetConfig, { protocol: "chat" }>): Adapter => ({
  echoesToSender: true,
  prepare: async (spec) => ({ url: target.url, localAddress: spec.localAddress }),
  onOpen: (conn, spec) => {
    conn.send(Opcode.binary, packet(0, ChatCommand.nop, Buffer.from("magic string :)")))
    conn.send(Opcode.binary, packet(1, ChatCommand.nick, Buffer.from(spec.unit)))
    conn.send(Opcode.binary, packet(ROOM_UID, ChatCommand.room, Buffer.from(spec.group)))
  },
  handshake: (_conn, _opcode, payload) => {
    if (payload.length < 24) throw new Error("short tPacket")
    const uid = payload.readInt32LE(4)
    const cmd = payload.readInt32LE(12)
    if (cmd === ChatCommand.error) throw new Error(`chat refused request ${uid}: ${payload.subarray(24).toString()}`)
    return cmd === ChatCommand.ok && uid === ROOM_UID ? "ready" : "wait"
  },
  // Only live messages count: roster and history packets carry old markers too.
  deliveryOffset: (_opcode, payload) =>
    payload.length >= 24 && payload.readInt32LE(12) === ChatCommand.newMessage ? 24 : -1,
  message: (spec, run, seq, sentAt, size) => {
    const head = `{${markerText(run, spec.sender, seq, sentAt)},"x":"`
    const text = `${head}${padTo(size - 24, head.length + 2)}"}`
    return { opcode: Opcode.binary, payload: packet(100 + seq, ChatCommand.newMessage, Buffer.from(text)) }
  }
})

const eventPrefix = Buffer.from('{"type":"event"')
const idField = Buffer.from('"id":"')
const quote = 34
/** Most ids one Hydrogen ack may name. */
const maxAckIds = 256

/**
 * Hydrogen: subprotocol "hydrogen-protocol" with `Authorization: Key <key>`, a subscribe command,
 * then events/publish commands; on reliable channels every event is acked with its id. Events go
 * through the server's own publish, so a subscribed publisher receives its own events too.
 */
const hydrogen = (target: Extract<TargetConfig, { protocol: "hydrogen" }>): Adapter => ({
  echoesToSender: true,
  prepare: async (spec) => ({
    url: target.url,
    protocol: target.subprotocol,
    headers: { Authorization: `Key ${target.key}` },
    localAddress: spec.localAddress
  }),
  onOpen: (conn, spec) =>
    conn.sendText(
      JSON.stringify({
        type: "command",
        id: "subscribe",
        channel: "subscriptions",
        action: "subscribe",
        data: { channel: spec.group }
      })
    ),
  handshake: (_conn, opcode, payload) => {
    if (opcode !== Opcode.text) return "wait"
    const message = JSON.parse(payload.toString()) as { type?: string; id?: string; error?: { message?: string } }
    if (message.type !== "response" || message.id !== "subscribe") return "wait"
    if (message.error) throw new Error(`subscribe refused: ${message.error.message}`)
    return "ready"
  },
  deliveryOffset: (_opcode, payload) =>
    payload.compare(eventPrefix, 0, eventPrefix.length, 0, eventPrefix.length) === 0 ? 0 : -1,
  message: (spec, run, seq, sentAt, size) => {
    const head =
      `{"type":"command","id":"${spec.sender}.${seq}","channel":"events","action":"publish","data":{"channel":"${spec.group}",` +
      `"action":"bench","ack":${target.reliable},"data":{${markerText(run, spec.sender, seq, sentAt)},"x":"`
    const text = `${head}${padTo(size, head.length + 4)}"}}}`
    return { opcode: Opcode.text, payload: Buffer.from(text) }
  },
  ...(target.reliable ? hydrogenAcks(target.batchAcks === true) : {})
})

/** The id of a delivered Hydrogen event, read from its bytes. */
const eventIdOf = (payload: Buffer): string | undefined => {
  const at = payload.indexOf(idField)
  if (at < 0) return undefined
  const start = at + idField.length
  return payload.toString("latin1", start, payload.indexOf(quote, start))
}

/**
 * One ack per event, or (batch) the ids of one received chunk in `{"type":"ack","ids":[…]}` frames of
 * at most maxAckIds ids, as a client acking what it has just read would.
 */
const hydrogenAcks = (batch: boolean): Pick<Adapter, "reply" | "chunkEnd"> => {
  if (!batch)
    return {
      reply: (conn, payload) => {
        const id = eventIdOf(payload)
        if (id !== undefined) conn.sendText(`{"type":"ack","id":"${id}"}`)
      }
    }
  const unacked = new WeakMap<WsConn, Array<string>>()
  return {
    reply: (conn, payload) => {
      const id = eventIdOf(payload)
      if (id === undefined) return
      const ids = unacked.get(conn)
      if (ids) ids.push(id)
      else unacked.set(conn, [id])
    },
    chunkEnd: (conn) => {
      const ids = unacked.get(conn)
      if (!ids || ids.length === 0) return
      for (let at = 0; at < ids.length; at += maxAckIds)
        conn.sendText(`{"type":"ack","ids":["${ids.slice(at, at + maxAckIds).join('","')}"]}`)
      ids.length = 0
    }
  }
}

export const adapterFor = (target: TargetConfig): Adapter => {
  switch (target.protocol) {
    case "droneengage":
      return droneEngage(target)
    case "chat":
      return chat(target)
    case "hydrogen":
      return hydrogen(target)
  }
}
