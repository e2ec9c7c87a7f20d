/**
 * A typed OLAF/Neighbourhood v1.2 client: keys, signed_data with counters, chat encryption and
 * decryption, and reading what the server sends. Transport-agnostic (it makes and reads frames;
 * `connect` adds a WebSocket), WebCrypto only, so the same code runs in Bun and in the page.
 *
 * Counters: the server remembers the last counter of every key across connections, so a client
 * that reconnects continues its counter (keep `lastCounter` with the key). A first counter of 1
 * suits servers that start their memory at 0 as well as ours.
 */
import { Either } from "effect"
import {
  type Bytes,
  exportPrivatePem,
  fingerprintVariants,
  generateKeyPair,
  importPrivateKey,
  importPublicPem,
  openChat,
  pkcs8FromPem,
  publicSpkiOfPrivate,
  canonicalPem,
  fingerprintOf,
  sealChat,
  signData,
  verifyData
} from "./Crypto.ts"
import {
  chatContent,
  chatPlaintext,
  clientListRequestFrame,
  encodeSignedData,
  helloContent,
  openSignedData,
  parseChatPlaintext,
  parseFrame,
  publicChatContent
} from "./Wire.ts"

export interface KnownClient {
  readonly pem: string
  readonly fingerprint: string
  readonly server: string
}

export type Incoming =
  | { readonly kind: "public_chat"; readonly sender: string; readonly message: string; readonly verified: boolean }
  | {
      readonly kind: "chat"
      readonly sender: string
      readonly participants: ReadonlyArray<string>
      readonly message: string
      readonly verified: boolean
    }
  /** A chat we could not open: for other participants (servers deliver every chat to all their clients). */
  | { readonly kind: "chat_for_others" }
  | {
      readonly kind: "client_list"
      readonly servers: ReadonlyArray<{ readonly address: string; readonly clients: ReadonlyArray<KnownClient> }>
    }
  | { readonly kind: "error"; readonly message: string }
  | { readonly kind: "ignored"; readonly reason: string }

export interface Recipient {
  readonly pem: string
  readonly server: string
}

export class NeighbourhoodClient {
  /** fingerprint (every variant) → what we know of that client, from the latest client_list. */
  private readonly directory = new Map<string, { readonly known: KnownClient; readonly verifyKey: CryptoKey }>()

  private constructor(
    private readonly signKey: CryptoKey,
    private readonly decryptKey: CryptoKey,
    readonly spki: Bytes,
    readonly publicPem: string,
    readonly fingerprint: string,
    /** The last counter used; the next message carries lastCounter + 1. */
    public lastCounter: number
  ) {}

  static async generate(lastCounter = 0): Promise<NeighbourhoodClient> {
    const pair = await generateKeyPair()
    return NeighbourhoodClient.fromPrivatePem(await exportPrivatePem(pair.privateKey), lastCounter)
  }

  /** From a PKCS#8 PEM private key (what `exportPrivateKey` writes). */
  static async fromPrivatePem(pem: string, lastCounter = 0): Promise<NeighbourhoodClient> {
    const pkcs8 = pkcs8FromPem(pem)
    if (!pkcs8) throw new Error("not a PKCS#8 PEM private key")
    const { signKey, decryptKey } = await importPrivateKey(pkcs8)
    const spki = await publicSpkiOfPrivate(signKey)
    return new NeighbourhoodClient(
      signKey,
      decryptKey,
      spki,
      canonicalPem(spki),
      await fingerprintOf(spki),
      lastCounter
    )
  }

  exportPrivateKey(): Promise<string> {
    return exportPrivatePem(this.signKey)
  }

  /** A signed_data frame around `data` with the next counter. */
  async signed(data: string): Promise<string> {
    const counter = ++this.lastCounter
    return encodeSignedData(data, counter, await signData(this.signKey, data, counter))
  }

  hello(): Promise<string> {
    return this.signed(helloContent(this.publicPem))
  }

  publicChat(message: string): Promise<string> {
    return this.signed(publicChatContent(this.fingerprint, message))
  }

  clientListRequest(): string {
    return clientListRequestFrame
  }

  /**
   * A private chat to one or more recipients: one AES key, wrapped for each recipient, and their
   * servers in the same order (v1.2: destination_servers, symm_keys and participants align).
   */
  async chat(recipients: ReadonlyArray<Recipient>, message: string): Promise<string> {
    const keys = await Promise.all(
      recipients.map(async (r) => {
        const key = await importPublicPem(r.pem)
        if (typeof key === "string") throw new Error(`recipient key: ${key}`)
        return key
      })
    )
    const participants = [this.fingerprint, ...keys.map((k) => k.fingerprint)]
    const sealed = await sealChat(
      chatPlaintext(participants, message),
      keys.map((k) => k.spki)
    )
    return this.signed(
      chatContent(
        recipients.map((r) => r.server),
        sealed
      )
    )
  }

  /** Who is online where, from the latest client_list. */
  clients(): ReadonlyArray<KnownClient> {
    const seen = new Set<string>()
    const out: Array<KnownClient> = []
    for (const { known } of this.directory.values()) {
      if (!seen.has(known.fingerprint)) {
        seen.add(known.fingerprint)
        out.push(known)
      }
    }
    return out
  }

  /** Reads one frame from the server: verifies signatures, opens chats meant for us. */
  async read(text: string): Promise<Incoming> {
    const parsed = parseFrame(text)
    if (Either.isLeft(parsed)) return { kind: "ignored", reason: parsed.left }
    const frame = parsed.right
    switch (frame.type) {
      case "client_list":
        return this.learnClientList(frame.servers)
      case "error":
        return { kind: "error", message: frame.message }
      case "signed_data": {
        const opened = openSignedData(frame)
        if (Either.isLeft(opened)) return { kind: "ignored", reason: opened.left }
        const { content, dataText } = opened.right
        const verify = async (fingerprint: string) => {
          const entry = this.directory.get(fingerprint)
          return entry !== undefined && (await verifyData(entry.verifyKey, dataText, frame.counter, frame.signature))
        }
        if (content.type === "public_chat") {
          return {
            kind: "public_chat",
            sender: content.sender,
            message: content.message,
            verified: await verify(content.sender)
          }
        }
        if (content.type === "chat") {
          const plaintext = await openChat(this.decryptKey, content)
          const body = plaintext === undefined ? undefined : parseChatPlaintext(plaintext)
          if (!body) return { kind: "chat_for_others" }
          const sender = body.participants[0]!
          return {
            kind: "chat",
            sender,
            participants: body.participants,
            message: body.message,
            verified: await verify(sender)
          }
        }
        return { kind: "ignored", reason: `${content.type} is not for clients` }
      }
      default:
        return { kind: "ignored", reason: `${frame.type} is not for clients` }
    }
  }

  private async learnClientList(
    servers: ReadonlyArray<{ readonly address: string; readonly clients: ReadonlyArray<string> }>
  ): Promise<Incoming> {
    const previous = new Map([...this.directory.values()].map((e) => [e.known.pem, e] as const))
    this.directory.clear()
    const listed: Array<{ address: string; clients: Array<KnownClient> }> = []
    for (const server of servers) {
      const clients: Array<KnownClient> = []
      for (const pem of server.clients) {
        const key = await importPublicPem(pem)
        if (typeof key === "string") continue
        const known: KnownClient = { pem: key.pem, fingerprint: key.fingerprint, server: server.address }
        const verifyKey = previous.get(key.pem)?.verifyKey ?? key.verifyKey
        for (const variant of await fingerprintVariants(key.spki, pem))
          this.directory.set(variant, { known, verifyKey })
        clients.push(known)
      }
      listed.push({ address: server.address, clients })
    }
    return { kind: "client_list", servers: listed }
  }
}

/** A client on a WebSocket: `send` frames, `onIncoming` for what arrives (Bun and browsers). */
export const connect = (url: string, client: NeighbourhoodClient, onIncoming: (incoming: Incoming) => void) =>
  new Promise<{ readonly send: (frame: string) => void; readonly close: () => void; readonly socket: WebSocket }>(
    (resolve, reject) => {
      const socket = new WebSocket(url)
      // Frames are read one after another so a client_list is learnt before the chats that follow it.
      let reading: Promise<void> = Promise.resolve()
      socket.onmessage = (event) => {
        const text = typeof event.data === "string" ? event.data : ""
        reading = reading.then(() => client.read(text).then(onIncoming, () => undefined))
      }
      socket.onerror = () => reject(new Error(`cannot connect to ${url}`))
      socket.onopen = async () => {
        socket.send(await client.hello())
        resolve({ send: (frame) => socket.send(frame), close: () => socket.close(1000), socket })
      }
    }
  )
