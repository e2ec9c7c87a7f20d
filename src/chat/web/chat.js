// Browser client for the tPacket chat: plain module script, no build step.
// Packet: "Ej8@" + int32 uid, size, cmd, p1, p2 (little-endian) + data; one per binary message.
const CMD = { NOP: 0, SET_USER_NICK: 1, SET_ROOM: 2, RESP_OK: 3, RESP_ERROR: 4, NEW_USER: 5, DEL_USER: 6, NEW_MSG: 7, LOGGED_MSG: 8 }
const REASONS = ["nick in use, or already set", "malformed packet", "unknown command", "too long", "server limit reached", "not in a room", "empty name", "set a nick first"]
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const $ = (id) => document.getElementById(id)

let socket
let nextUid = 1
const pending = new Map()
const users = new Map()

const encode = (cmd, text = "") => {
  const data = encoder.encode(text)
  const bytes = new Uint8Array(24 + data.length)
  bytes.set([0x45, 0x6a, 0x38, 0x40])
  const view = new DataView(bytes.buffer)
  const uid = nextUid++
  view.setInt32(4, uid, true)
  view.setInt32(8, bytes.length, true)
  view.setInt32(12, cmd, true)
  bytes.set(data, 24)
  return { uid, bytes }
}

const decode = (buffer) => {
  const view = new DataView(buffer)
  if (buffer.byteLength < 24 || view.getInt32(8, true) !== buffer.byteLength) return undefined
  return {
    uid: view.getInt32(4, true), cmd: view.getInt32(12, true), p1: view.getInt32(16, true), p2: view.getInt32(20, true),
    text: decoder.decode(new Uint8Array(buffer, 24))
  }
}

const request = (cmd, text) => {
  const { uid, bytes } = encode(cmd, text)
  socket.send(bytes)
  return new Promise((resolve) => pending.set(uid, resolve))
}

const show = (text, kind = "") => {
  const item = document.createElement("li")
  item.textContent = text
  if (kind) item.className = kind
  const log = $("log")
  log.append(item)
  log.scrollTop = log.scrollHeight
}

const renderRoster = () => {
  $("roster").replaceChildren(...[...users.values()].map((nick) => Object.assign(document.createElement("li"), { textContent: nick })))
}

const onPacket = (p) => {
  switch (p.cmd) {
    case CMD.RESP_OK:
    case CMD.RESP_ERROR:
    {
      const waiter = pending.get(p.uid)
      pending.delete(p.uid)
      if (waiter) waiter(p)
      else if (p.cmd === CMD.RESP_ERROR) show(`refused: ${REASONS[p.p2] ?? p.p2}`, "system")
      break
    }
    case CMD.NEW_USER:
      if (!users.has(p.p1)) show(`${p.text} is in the room`, "system")
      users.set(p.p1, p.text)
      renderRoster()
      break
    case CMD.DEL_USER:
      users.delete(p.p1)
      renderRoster()
      show(`${p.text} left the room`, "system")
      break
    case CMD.NEW_MSG:
      show(`${users.get(p.p1) ?? "?"}: ${p.text}`)
      break
    case CMD.LOGGED_MSG:
      show(p.text, "history")
      break
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault()
  socket?.close()
  users.clear()
  renderRoster()
  const scheme = location.protocol === "https:" ? "wss" : "ws"
  socket = new WebSocket(`${scheme}://${location.host}/`)
  socket.binaryType = "arraybuffer"
  $("status").textContent = "connecting"
  socket.onmessage = (event) => {
    const p = typeof event.data === "string" ? undefined : decode(event.data)
    if (p) onPacket(p)
  }
  socket.onclose = (event) => {
    $("status").textContent = `disconnected (${event.code}${event.reason ? ` ${event.reason}` : ""})`
    $("compose").hidden = true
    $("login").hidden = false
  }
  socket.onopen = async () => {
    socket.send(encode(CMD.NOP, "magic string :)").bytes)
    const nick = await request(CMD.SET_USER_NICK, $("nick").value)
    if (nick.cmd !== CMD.RESP_OK) {
      $("status").textContent = `nick refused: ${REASONS[nick.p2] ?? nick.p2}`
      return socket.close()
    }
    const room = await request(CMD.SET_ROOM, $("room").value)
    if (room.cmd !== CMD.RESP_OK) {
      $("status").textContent = `room refused: ${REASONS[room.p2] ?? room.p2}`
      return socket.close()
    }
    $("status").textContent = `${$("nick").value} in ${$("room").value}`
    $("login").hidden = true
    $("compose").hidden = false
    $("message").focus()
  }
})

$("compose").addEventListener("submit", (event) => {
  event.preventDefault()
  const text = $("message").value
  if (!text || socket?.readyState !== WebSocket.OPEN) return
  socket.send(encode(CMD.NEW_MSG, text).bytes)
  $("message").value = ""
})

// A _NOP now and then keeps the server's idle timeout from closing a tab that only reads.
setInterval(() => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(encode(CMD.NOP).bytes)
}, 60_000)
