/**
 * Drives the client library of xvk-64/secure-programming-2024 (loaded at run time from a built
 * checkout whose path is given; nothing of theirs is in this repository) for the interop script.
 */
import { join, resolve } from "node:path"

export interface TheirClient {
  readonly fingerprint: string
  readonly pem: string
  readonly online: () => Array<string>
  readonly sendPublic: (message: string) => Promise<void>
  readonly sendChat: (fingerprints: Array<string>, message: string) => Promise<void>
  readonly publicFrom: (fingerprint: string, message: string) => boolean
  readonly chatFrom: (fingerprint: string, message: string) => boolean
  readonly close: () => void
}

// Their dist modules are plain ESM without types; this script only calls their public methods.
type Any = any

export const theirClient = async (checkout: string, url: string): Promise<TheirClient> => {
  const dist = join(resolve(checkout), "pkg/common/dist/src")
  const { ChatClient }: Any = await import(join(dist, "chatclient/ChatClient.js"))
  const { WebSocketTransport }: Any = await import(join(dist, "websocket/WebSocketTransport.js"))
  const { keyToPEM, PSSGenParams }: Any = await import(join(dist, "util/crypto.js"))

  const socket = new WebSocket(url)
  await new Promise((ok, fail) => {
    socket.onopen = ok
    socket.onerror = () => fail(new Error(`cannot connect to ${url}`))
  })
  // Their transport takes over the socket's handlers; it has the shape their ChatClient needs.
  const transport = WebSocketTransport.createClient(socket)
  const keys = await crypto.subtle.generateKey(PSSGenParams, true, ["sign", "verify"])
  const client = await ChatClient.create(transport, keys.privateKey, keys.publicKey)
  const publics: Array<{ sender: string; message: string }> = []
  const chats: Array<{ sender: string; message: string }> = []
  client.onPublicChat.createListener((m: Any) => publics.push({ sender: m.senderFingerprint, message: m.message }))
  client.onChat.createListener((m: Any) => chats.push({ sender: m.senderFingerprint, message: m.message }))
  const online = () => client.getOnlineClients().map((c: Any) => c.fingerprint as string)
  return {
    fingerprint: client.fingerprint,
    pem: await keyToPEM(keys.publicKey),
    online,
    sendPublic: (message) => client.sendPublicChat(message),
    sendChat: (fingerprints, message) => client.sendChat(message, client.getGroupID(fingerprints)),
    publicFrom: (sender, message) => publics.some((m) => m.sender === sender && m.message === message),
    chatFrom: (sender, message) => chats.some((m) => m.sender === sender && m.message === message),
    close: () => socket.close(1000)
  }
}
