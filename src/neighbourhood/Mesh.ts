import type { Connection } from "../../layers/Transport/Transport.ts"
import { canonicalPem, fingerprintVariants, importPublicPem, type PublicKeyInfo, spkiFromPem } from "./Crypto.ts"
import type { OrderedWork } from "./Ordered.ts"
import { encodeClientList, encodeClientUpdate } from "./Wire.ts"

/** Where frames for one peer go: an inbound connection, our outbound link, or another node's link. */
export interface Channel {
  /** `from`: the fingerprint of our client the frame comes from (another node's link needs it first). */
  readonly send: (frame: string, from?: string) => void
  readonly close: (code: number, reason: string) => void
  /** Whether we dialled it (our outbound link), the peer did, or another node of this server holds it. */
  readonly direction: "outbound" | "inbound" | "cluster"
  /** Keeps the effects of this channel's frames in arrival order while their checks run in parallel. */
  readonly work: OrderedWork
}

/** A neighbour's client list, imported (keys parsed) but not yet in effect. */
export interface ImportedClients {
  readonly clients: Map<string, RemoteClient>
  readonly byFingerprint: Map<string, RemoteClient>
  readonly rejected: number
}

/** A client that said hello here. */
export interface LocalClient {
  readonly key: PublicKeyInfo
  /** Fingerprints peers may have computed for this key (sender of its public chats). */
  readonly variants: ReadonlyArray<string>
  readonly connection: Connection<unknown>
}

/** A client of a neighbour, from its latest client_update. */
export interface RemoteClient {
  readonly key: PublicKeyInfo
  readonly variants: ReadonlyArray<string>
}

export interface NeighbourState {
  readonly address: string
  readonly url: string
  readonly key: PublicKeyInfo
  outbound: Channel | undefined
  inbound: Channel | undefined
  /** The link another node of this server's cluster holds (as it last announced it); never with the two above. */
  viaCluster: Channel | undefined
  /** Latest client list, by canonical PEM, in the order the neighbour sent it. */
  clients: Map<string, RemoteClient>
  /** Every fingerprint variant of its clients → the client. */
  byFingerprint: Map<string, RemoteClient>
  /** Whether a client_update arrived since the neighbour came up (it is listed in client_list then). */
  listed: boolean
}

/**
 * The neighbourhood as one server sees it: its own clients, and for each configured neighbour the
 * connections to it and its client list. Routing rules live here; I/O is the callers' channels.
 *
 * One live connection per neighbour: both sides dial, so a pair of servers may hold two
 * connections. Frames go over exactly one, by a rule both sides compute alike: the connection
 * dialled by the server whose address sorts first; the other one only when that one is down.
 */
export class Mesh {
  readonly localClients = new Map<string, LocalClient>()
  private readonly localByVariant = new Map<string, LocalClient>()
  readonly neighbours = new Map<string, NeighbourState>()
  private readonly ownNames: ReadonlySet<string>
  /**
   * Clients of this server name on other nodes of its cluster (broker-backed Rooms), by
   * fingerprint → canonical PEM; empty on a single node.
   */
  private otherNodes = new Map<string, string>()

  constructor(
    readonly address: string,
    aliases: ReadonlyArray<string>,
    neighbours: ReadonlyArray<{ readonly address: string; readonly url: string; readonly key: PublicKeyInfo }>,
    private readonly maxClientsPerNeighbour: number
  ) {
    this.ownNames = new Set([address, ...aliases])
    for (const n of neighbours) {
      this.neighbours.set(n.address, {
        ...n,
        outbound: undefined,
        inbound: undefined,
        viaCluster: undefined,
        clients: new Map(),
        byFingerprint: new Map(),
        listed: false
      })
    }
  }

  isOwnAddress(address: string): boolean {
    return this.ownNames.has(address)
  }

  // ---- local clients ----

  fingerprintHeldByOther(fingerprint: string, connection: Connection<unknown>): boolean {
    const holder = this.localClients.get(fingerprint)
    if (holder) return holder.connection !== connection && holder.connection.isOpen()
    return this.otherNodes.has(fingerprint)
  }

  /** The cluster's members of this server's room (this node's are skipped); whether the other nodes' changed. */
  setClusterMembers(members: ReadonlyArray<{ readonly id: string; readonly info: string }>): boolean {
    const next = new Map(members.filter((m) => !this.localClients.has(m.id)).map((m) => [m.id, m.info]))
    const changed = next.size !== this.otherNodes.size || [...next.keys()].some((id) => !this.otherNodes.has(id))
    this.otherNodes = next
    return changed
  }

  /** Whether a client of this server name (on any node, as last listed) has this fingerprint. */
  hasOwnClient(fingerprint: string): boolean {
    return this.localClients.has(fingerprint) || this.otherNodes.has(fingerprint)
  }

  /** Every client of this server name: this node's, then the other nodes' of its cluster. */
  private ownClientPems(): Array<string> {
    return [...[...this.localClients.values()].map((c) => c.key.pem), ...this.otherNodes.values()]
  }

  addLocal(client: LocalClient): void {
    this.localClients.set(client.key.fingerprint, client)
    for (const variant of client.variants) this.localByVariant.set(variant, client)
  }

  removeLocal(client: LocalClient): boolean {
    if (this.localClients.get(client.key.fingerprint) !== client) return false
    this.localClients.delete(client.key.fingerprint)
    for (const variant of client.variants)
      if (this.localByVariant.get(variant) === client) this.localByVariant.delete(variant)
    return true
  }

  /** Our client_update: every local client's PEM, in the form v1.2 fingerprints. */
  clientUpdateFrame(): string {
    return encodeClientUpdate(this.ownClientPems())
  }

  /** The client_list reply: this server first, then every neighbour we are connected to and have a list from. */
  clientListFrame(): string {
    const servers = [{ address: this.address, clients: this.ownClientPems() }]
    for (const n of this.neighbours.values()) {
      if (n.listed && this.isUp(n)) servers.push({ address: n.address, clients: [...n.clients.keys()] })
    }
    return encodeClientList(servers)
  }

  /** The key of a public chat's claimed sender, wherever that client is. */
  senderKey(fingerprint: string): PublicKeyInfo | undefined {
    const local = this.localByVariant.get(fingerprint)
    if (local) return local.key
    for (const n of this.neighbours.values()) {
      const remote = n.byFingerprint.get(fingerprint)
      if (remote) return remote.key
    }
    return undefined
  }

  // ---- neighbours ----

  isUp(n: NeighbourState): boolean {
    return n.outbound !== undefined || n.inbound !== undefined || n.viaCluster !== undefined
  }

  /** The one channel frames to `n` go over (see the class comment), or undefined when it is down. */
  channelTo(n: NeighbourState): Channel | undefined {
    const preferOutbound = this.address < n.address
    return (preferOutbound ? (n.outbound ?? n.inbound) : (n.inbound ?? n.outbound)) ?? n.viaCluster
  }

  /** Sends to one neighbour over its chosen channel (`from`: our client sending it); false when it is down. */
  sendTo(address: string, frame: string, from?: string): boolean {
    const n = this.neighbours.get(address)
    const channel = n && this.channelTo(n)
    if (!channel) return false
    channel.send(frame, from)
    return true
  }

  /** One frame to every connected neighbour, once each (`from`: our client sending it). */
  broadcast(frame: string, from?: string): void {
    for (const n of this.neighbours.values()) this.channelTo(n)?.send(frame, from)
  }

  /**
   * One frame on every connection of this node to every neighbour (not via other nodes: the link's holder
   * sends its own). For client_updates: a peer that keeps a client
   * list per connection (and lists the last one it opened) must not keep a stale one.
   */
  broadcastOnEveryChannel(frame: string): void {
    for (const n of this.neighbours.values()) {
      n.outbound?.send(frame)
      if (n.inbound !== n.outbound) n.inbound?.send(frame)
    }
  }

  /** A channel to `n` is up; returns the inbound channel it replaces (to close), if any. */
  channelUp(n: NeighbourState, channel: Channel): Channel | undefined {
    if (channel.direction !== "inbound") {
      if (channel.direction === "outbound") n.outbound = channel
      else n.viaCluster = channel
      return undefined
    }
    const previous = n.inbound
    n.inbound = channel
    return previous !== channel ? previous : undefined
  }

  /** A channel to `n` went down; when none is left its clients are no longer reachable. */
  channelDown(n: NeighbourState, channel: Channel): void {
    if (n.outbound === channel) n.outbound = undefined
    if (n.inbound === channel) n.inbound = undefined
    if (n.viaCluster === channel) n.viaCluster = undefined
    if (!this.isUp(n)) {
      n.clients = new Map()
      n.byFingerprint = new Map()
      n.listed = false
    }
  }

  /**
   * A neighbour's client_update: its whole client list, which replaces the previous one once
   * `setClients` applies it. Invalid PEMs are left out (and counted), so one bad entry does not
   * hide the others.
   */
  async importClients(n: NeighbourState, pems: ReadonlyArray<string>): Promise<ImportedClients> {
    const clients = new Map<string, RemoteClient>()
    const byFingerprint = new Map<string, RemoteClient>()
    let rejected = Math.max(0, pems.length - this.maxClientsPerNeighbour)
    for (const pem of pems.slice(0, this.maxClientsPerNeighbour)) {
      const spki = spkiFromPem(pem)
      const known = spki ? n.clients.get(canonicalPem(spki)) : undefined
      const client = known ?? (await this.importRemote(pem))
      if (!client) {
        rejected++
        continue
      }
      clients.set(client.key.pem, client)
      for (const variant of client.variants) byFingerprint.set(variant, client)
    }
    return { clients, byFingerprint, rejected }
  }

  /** Puts an imported list in effect (ignored when the neighbour went down meanwhile). */
  setClients(n: NeighbourState, imported: ImportedClients): void {
    if (!this.isUp(n)) return
    n.clients = imported.clients
    n.byFingerprint = imported.byFingerprint
    n.listed = true
  }

  private async importRemote(pem: string): Promise<RemoteClient | undefined> {
    const key = await importPublicPem(pem)
    if (typeof key === "string") return undefined
    return { key, variants: await fingerprintVariants(key.spki, pem) }
  }
}
