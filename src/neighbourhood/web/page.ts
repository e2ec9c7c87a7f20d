/**
 * The Neighbourhood page: a key kept in this browser (generated or imported), who is online on
 * which server, public and private chat, file links. All crypto is the typed client's (WebCrypto);
 * every text shown goes through textContent.
 */
import { type Incoming, type KnownClient, NeighbourhoodClient } from "../Client.ts"

const storageKey = "neighbourhood.key"
const counterKey = "neighbourhood.counter"
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

const status = $("status")
const me = $("me")
const log = $<HTMLUListElement>("log")
const servers = $("servers")
const pemBox = $<HTMLTextAreaElement>("pem")
const connectButton = $<HTMLButtonElement>("connect")
const message = $<HTMLInputElement>("message")
const fileInput = $<HTMLInputElement>("file")
const sendButton = $<HTMLButtonElement>("send")

let client: NeighbourhoodClient | undefined
let socket: WebSocket | undefined
let known: ReadonlyArray<KnownClient> = []
const selected = new Set<string>()

const short = (fingerprint: string) => fingerprint.slice(0, 10)
const nameOf = (fingerprint: string) => (client && fingerprint === client.fingerprint ? "you" : short(fingerprint))

const say = (text: string, className = "system", unverified = false) => {
  const item = document.createElement("li")
  item.textContent = text
  item.className = className + (unverified ? " unverified" : "")
  log.append(item)
  item.scrollIntoView({ block: "end" })
}

/** The counter must outlive the page: the server refuses counters it has seen for this key. */
const rememberCounter = () => client && localStorage.setItem(counterKey, String(client.lastCounter))

const useKey = async (pem: string) => {
  const lastCounter = Number(localStorage.getItem(storageKey) === pem ? (localStorage.getItem(counterKey) ?? "0") : "0")
  client = await NeighbourhoodClient.fromPrivatePem(pem, lastCounter)
  localStorage.setItem(storageKey, pem)
  rememberCounter()
  me.textContent = client.fingerprint
  status.textContent = "key ready"
  connectButton.disabled = false
}

const send = (frame: string) => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(frame)
  rememberCounter()
}

const renderOnline = (incoming: Extract<Incoming, { kind: "client_list" }>) => {
  known = incoming.servers.flatMap((s) => s.clients)
  servers.replaceChildren()
  for (const server of incoming.servers) {
    const heading = document.createElement("h3")
    heading.textContent = `${server.address} (${server.clients.length})`
    servers.append(heading)
    for (const c of server.clients) {
      const label = document.createElement("label")
      const box = document.createElement("input")
      box.type = "checkbox"
      box.checked = selected.has(c.fingerprint)
      box.disabled = c.fingerprint === client?.fingerprint
      box.onchange = () => (box.checked ? selected.add(c.fingerprint) : selected.delete(c.fingerprint))
      label.append(box, ` ${nameOf(c.fingerprint)}`)
      label.title = c.fingerprint
      servers.append(label)
    }
  }
  for (const fingerprint of [...selected])
    if (!known.some((c) => c.fingerprint === fingerprint)) selected.delete(fingerprint)
}

const onIncoming = async (incoming: Incoming) => {
  switch (incoming.kind) {
    case "client_list":
      return renderOnline(incoming)
    case "public_chat":
      return say(`${nameOf(incoming.sender)} (public): ${incoming.message}`, "public", !incoming.verified)
    case "chat": {
      const others = incoming.participants.slice(1).map(nameOf).join(", ")
      return say(`${nameOf(incoming.sender)} → ${others}: ${incoming.message}`, "private", !incoming.verified)
    }
    case "error": {
      say(`server: ${incoming.message}`)
      // After using this key elsewhere, continue from the counter the server last accepted.
      const last = /last accepted counter (\d+)/.exec(incoming.message)
      if (last && client && Number(last[1]) >= client.lastCounter) {
        client.lastCounter = Number(last[1])
        send(await client.hello())
        say("counter resynchronised; hello sent again")
      }
      return
    }
  }
}

const connect = () => {
  if (!client) return
  socket?.close()
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`
  const ws = new WebSocket(url)
  socket = ws
  status.textContent = "connecting…"
  let reading: Promise<void> = Promise.resolve()
  ws.onmessage = (event) => {
    const text = typeof event.data === "string" ? event.data : ""
    reading = reading
      .then(async () => {
        if (client) await onIncoming(await client.read(text))
      })
      .catch((error) => say(`could not read a message: ${String(error)}`))
  }
  ws.onopen = async () => {
    if (!client) return
    send(await client.hello())
    send(client.clientListRequest())
    status.textContent = `connected to ${location.host}`
    for (const input of [message, fileInput, sendButton]) input.disabled = false
  }
  ws.onclose = (event) => {
    if (socket !== ws) return
    status.textContent = `disconnected (${event.code}${event.reason ? `: ${event.reason}` : ""})`
    for (const input of [message, fileInput, sendButton]) input.disabled = true
  }
}

// Who is online changes without notice (v1.2 has no push), so the list is asked for regularly.
setInterval(() => client && socket?.readyState === WebSocket.OPEN && send(client.clientListRequest()), 5000)

$("generate").onclick = async () => {
  status.textContent = "generating a key…"
  const fresh = await NeighbourhoodClient.generate()
  localStorage.removeItem(counterKey)
  await useKey(await fresh.exportPrivateKey())
  say("new key generated and kept in this browser")
}
$("import").onclick = () =>
  useKey(pemBox.value.trim()).then(
    () => say("key imported"),
    (error) => say(`cannot use that key: ${String(error)}`)
  )
$("export").onclick = async () => {
  if (client) pemBox.value = await client.exportPrivateKey()
}
connectButton.onclick = connect

$<HTMLFormElement>("compose").onsubmit = async (event) => {
  event.preventDefault()
  if (!client) return
  const text = message.value.trim()
  if (!text) return
  message.value = ""
  const recipients = known.filter((c) => selected.has(c.fingerprint))
  if (recipients.length === 0) {
    send(await client.publicChat(text))
    return say(`you (public): ${text}`, "public")
  }
  send(
    await client.chat(
      recipients.map((c) => ({ pem: c.pem, server: c.server })),
      text
    )
  )
  say(`you → ${recipients.map((c) => short(c.fingerprint)).join(", ")}: ${text}`, "private")
}

fileInput.onchange = async () => {
  const file = fileInput.files?.[0]
  if (!file) return
  const form = new FormData()
  form.append("file", file)
  const response = await fetch("/api/upload", { method: "POST", body: form })
  const body = (await response.json().catch(() => ({}))) as { file_url?: string; error?: string }
  if (response.ok && body.file_url) message.value = `${message.value} ${body.file_url}`.trim()
  else say(`upload failed: ${body.error ?? response.status}`)
  fileInput.value = ""
}

const saved = localStorage.getItem(storageKey)
if (saved) useKey(saved).catch(() => say("the saved key could not be read; generate or import one"))
