// Browser client for the tPacket chat: plain module script, no build step.
// Packet: "Ej8@" + int32 uid, size, cmd, p1, p2 (little-endian) + data; one per binary message.
const CMD = {
  NOP: 0,
  SET_USER_NICK: 1,
  SET_ROOM: 2,
  RESP_OK: 3,
  RESP_ERROR: 4,
  NEW_USER: 5,
  DEL_USER: 6,
  NEW_MSG: 7,
  LOGGED_MSG: 8
}
const REASONS = [
  "nick in use, or already set",
  "malformed packet",
  "unknown command",
  "too long",
  "server limit reached",
  "not in a room",
  "empty name",
  "set a nick first",
  "sending too fast, wait a moment"
]
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const $ = (id) => document.getElementById(id)

// The server counts bytes (UTF-8), not characters: é is 2 bytes, most emoji 4. It puts its limits on <body>.
const limit = (name, fallback) => Number(document.body?.dataset?.[name]) || fallback
const LIMITS = {
  nick: limit("maxNickBytes", 32),
  room: limit("maxRoomNameBytes", 64),
  message: limit("maxMessageBytes", 220)
}
const byteLength = (text) => encoder.encode(text).length
const tooLong = (what, text, max) => {
  const bytes = byteLength(text)
  if (bytes <= max) return undefined
  const wide = bytes > text.length ? "; letters outside plain ASCII take 2-4 bytes each" : ""
  return `${what} is ${bytes} bytes in UTF-8, the server takes at most ${max}${wide}`
}

let socket
let nextUid = 1
let myId
const pending = new Map()
const users = new Map()
// Messages sent and not yet echoed back by the server, oldest first: the compose box keeps its text until then.
const unconfirmed = []

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
    uid: view.getInt32(4, true),
    cmd: view.getInt32(12, true),
    p1: view.getInt32(16, true),
    p2: view.getInt32(20, true),
    text: decoder.decode(new Uint8Array(buffer, 24))
  }
}

const reasonOf = (p) => REASONS[p.p2] ?? `reason ${p.p2}`

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
  const items = [...users].map(([id, nick]) => {
    const item = document.createElement("li")
    item.textContent = nick
    // Your own entry is marked (and styled "(you)"), so you can tell yourself apart.
    if (id === myId) item.className = "me"
    return item
  })
  $("roster").replaceChildren(...items)
}

const setComposeError = (text) => {
  $("compose-error").textContent = text
  $("compose-error").hidden = !text
}

const onPacket = (p) => {
  switch (p.cmd) {
    case CMD.RESP_OK:
    case CMD.RESP_ERROR: {
      const waiter = pending.get(p.uid)
      pending.delete(p.uid)
      if (waiter) return waiter(p)
      if (p.cmd !== CMD.RESP_ERROR) return
      const refused = unconfirmed.findIndex((m) => m.uid === p.uid)
      if (refused >= 0) {
        unconfirmed.splice(refused, 1)
        // The text stays in the compose box, so nothing is lost: fix it or send again.
        return setComposeError(`not sent: ${reasonOf(p)}`)
      }
      return show(`refused: ${reasonOf(p)}`, "system")
    }
    case CMD.NEW_USER:
      // The joiner comes first in the roster the server sends on join: that is you.
      if (myId === undefined) myId = p.p1
      if (!users.has(p.p1)) show(`${p.text} is in the room`, "system")
      users.set(p.p1, p.text)
      return renderRoster()
    case CMD.DEL_USER:
      users.delete(p.p1)
      renderRoster()
      return show(`${p.text} left the room`, "system")
    case CMD.NEW_MSG:
      if (p.p1 === myId && unconfirmed.length > 0) {
        const sent = unconfirmed.shift()
        if ($("message").value === sent.text) $("message").value = ""
        setComposeError("")
      }
      return show(`${users.get(p.p1) ?? "?"}: ${p.text}`, p.p1 === myId ? "mine" : "")
    case CMD.LOGGED_MSG:
      return show(p.text, "history")
  }
}

const showLogin = (status) => {
  $("status").textContent = status
  $("compose").hidden = true
  $("leave").hidden = true
  $("login").hidden = false
  users.clear()
  unconfirmed.length = 0
  myId = undefined
  renderRoster()
}

/** Ends a connection on purpose: its close event must not overwrite the status we are about to show. */
const hangUp = (status) => {
  const old = socket
  socket = undefined
  if (old) {
    old.onclose = null
    old.onmessage = null
    old.close(1000)
  }
  showLogin(status)
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault()
  const nick = $("nick").value
  const room = $("room").value
  const problem = tooLong("nick", nick, LIMITS.nick) ?? tooLong("room name", room, LIMITS.room)
  if (problem) {
    $("status").textContent = problem
    return
  }
  if (socket) hangUp("reconnecting")
  pending.clear()
  const scheme = location.protocol === "https:" ? "wss" : "ws"
  const current = new WebSocket(`${scheme}://${location.host}/`)
  socket = current
  current.binaryType = "arraybuffer"
  $("status").textContent = "connecting"
  current.onmessage = (event) => {
    const p = typeof event.data === "string" ? undefined : decode(event.data)
    if (p) onPacket(p)
  }
  current.onclose = (event) => {
    if (socket === current) socket = undefined
    showLogin(`disconnected (${event.code}${event.reason ? ` ${event.reason}` : ""})`)
  }
  current.onopen = async () => {
    current.send(encode(CMD.NOP, "magic string :)").bytes)
    const nickReply = await request(CMD.SET_USER_NICK, nick)
    if (socket !== current) return
    if (nickReply.cmd !== CMD.RESP_OK) return hangUp(`nick refused: ${reasonOf(nickReply)}`)
    const roomReply = await request(CMD.SET_ROOM, room)
    if (socket !== current) return
    if (roomReply.cmd !== CMD.RESP_OK) return hangUp(`room refused: ${reasonOf(roomReply)}`)
    $("status").textContent = `${nick} in ${room}`
    $("login").hidden = true
    $("compose").hidden = false
    $("leave").hidden = false
    $("message").focus()
  }
})

$("compose").addEventListener("submit", (event) => {
  event.preventDefault()
  const text = $("message").value
  if (!text || socket?.readyState !== WebSocket.OPEN) return
  const problem = tooLong("message", text, LIMITS.message)
  if (problem) return setComposeError(problem)
  const { uid, bytes } = encode(CMD.NEW_MSG, text)
  unconfirmed.push({ uid, text })
  socket.send(bytes)
})

$("message").addEventListener("input", () => {
  const bytes = byteLength($("message").value)
  $("message-bytes").textContent = `${bytes}/${LIMITS.message}`
  setComposeError(bytes > LIMITS.message ? tooLong("message", $("message").value, LIMITS.message) : "")
})

$("leave").addEventListener("click", () => hangUp("left the room"))

// A _NOP now and then keeps the server's idle timeout from closing a tab that only reads.
setInterval(() => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(encode(CMD.NOP).bytes)
}, 60_000)
