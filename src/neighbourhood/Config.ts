import { Config, Duration, Option } from "effect"
import { port, positiveInt, positiveMillis } from "../shared/ConfigValues.ts"
import { type SocketLimits, SocketLimitsConfig } from "../shared/SocketLimits.ts"

/** One agreed member of the neighbourhood: its address (as clients see it), where to dial it, its key. */
export interface NeighbourSettings {
  readonly address: string
  /** ws:// or wss:// URL of its WebSocket server. */
  readonly url: string
  /** Its server public key, PEM text (or read from `publicKeyPath` by the program). */
  readonly publicKey: Option.Option<string>
  readonly publicKeyPath: Option.Option<string>
}

export interface NeighbourhoodLimits {
  /** Time from WebSocket open to an accepted hello / server_hello before the server closes with 4005. */
  readonly handshakeTimeout: Duration.Duration
  /** Messages per second one connection may send (token bucket), and the burst it may spend at once. */
  readonly messagesPerSecond: number
  readonly messageBurst: number
  /** Refusals in a row before a flooding connection is closed (4006). */
  readonly rateStrikes: number
  /** Longest public_chat message in characters. */
  readonly maxPublicMessageChars: number
  /** Sender keys whose last counter is remembered; the least recently used are forgotten beyond this. */
  readonly counterMemory: number
  /** Recent relayed signatures remembered to drop duplicates from peers that send a message twice. */
  readonly duplicateWindow: number
  /** Clients accepted in one client_update from a neighbour. */
  readonly maxClientsPerNeighbour: number
  /** At most one client_update to the neighbours per interval (joins and leaves in between are coalesced). */
  readonly clientUpdateInterval: Duration.Duration
  /** New connections per second one address may open (token bucket), and the burst; beyond, HTTP 429. */
  readonly connectionsPerSecond: number
  readonly connectionBurst: number
}

export interface FileSettings {
  readonly backend: "filesystem" | "memory"
  readonly directory: string
  /** Largest upload in bytes; larger ones get 413. */
  readonly maxBytes: number
  /** Bytes all stored files may take; the oldest uploads go first beyond it. */
  readonly quotaBytes: number
  /** Uploads older than this are deleted. */
  readonly maxAge: Duration.Duration
}

/** Settings for peers that cannot do better; each is off by default (the first two are logged as insecure). */
export interface CompatSettings {
  /** Accept server_hello from a listed address without a valid signature (the seed's servers send none). */
  readonly unsignedServerHello: boolean
  /** Track counters per connection instead of per key (clients that restart at 0 on every connection). */
  readonly perConnectionCounters: boolean
  /**
   * Also send every client the client_list whenever a list changes (coalesced), for clients that never
   * send client_list_request and wait for pushes (v1.2 answers requests only). Costs a list per client per change.
   */
  readonly pushClientList: boolean
}

export interface NeighbourhoodConfig {
  readonly port: number
  readonly hostname: string
  /** This server's address as it appears in client lists and destination_servers. */
  readonly address: string
  /** Other names peers may use for this server in destination_servers. */
  readonly aliases: ReadonlyArray<string>
  /** Base URL for file_url (e.g. https://chat.example.net); None: the URL the upload request came to. */
  readonly publicUrl: Option.Option<string>
  /** PKCS#8 PEM of this server's RSA key; generated there on first start when missing. */
  readonly keyPath: string
  readonly neighbours: ReadonlyArray<NeighbourSettings>
  readonly redialMax: Duration.Duration
  readonly limits: NeighbourhoodLimits
  readonly files: FileSettings
  readonly compat: CompatSettings
  readonly socket: SocketLimits
}

export const defaultNeighbourhoodLimits: NeighbourhoodLimits = {
  handshakeTimeout: Duration.seconds(10),
  messagesPerSecond: 20,
  messageBurst: 60,
  rateStrikes: 40,
  maxPublicMessageChars: 64 * 1024,
  counterMemory: 100_000,
  duplicateWindow: 8192,
  maxClientsPerNeighbour: 10_000,
  clientUpdateInterval: Duration.millis(100),
  connectionsPerSecond: 10,
  connectionBurst: 200
}

/** Multipart framing allowed on top of `files.maxBytes` in one upload request. */
export const uploadFormOverhead = 64 * 1024

export const neighbourhoodSocketDefaults: Partial<SocketLimits> = {
  maxPayloadBytes: 1024 * 1024,
  maxConnections: 2000
}

const LimitsConfig: Config.Config<NeighbourhoodLimits> = Config.all({
  handshakeTimeout: positiveMillis("handshakeTimeoutMs", defaultNeighbourhoodLimits.handshakeTimeout),
  messagesPerSecond: positiveInt("messagesPerSecond", defaultNeighbourhoodLimits.messagesPerSecond),
  messageBurst: positiveInt("messageBurst", defaultNeighbourhoodLimits.messageBurst),
  rateStrikes: positiveInt("rateStrikes", defaultNeighbourhoodLimits.rateStrikes),
  maxPublicMessageChars: positiveInt("maxPublicMessageChars", defaultNeighbourhoodLimits.maxPublicMessageChars),
  counterMemory: positiveInt("counterMemory", defaultNeighbourhoodLimits.counterMemory),
  duplicateWindow: positiveInt("duplicateWindow", defaultNeighbourhoodLimits.duplicateWindow),
  maxClientsPerNeighbour: positiveInt("maxClientsPerNeighbour", defaultNeighbourhoodLimits.maxClientsPerNeighbour),
  clientUpdateInterval: positiveMillis("clientUpdateIntervalMs", defaultNeighbourhoodLimits.clientUpdateInterval),
  connectionsPerSecond: positiveInt("connectionsPerSecond", defaultNeighbourhoodLimits.connectionsPerSecond),
  connectionBurst: positiveInt("connectionBurst", defaultNeighbourhoodLimits.connectionBurst)
}).pipe(Config.nested("limits"))

const FilesConfig: Config.Config<FileSettings> = Config.all({
  backend: Config.literal("filesystem", "memory")("backend").pipe(Config.withDefault("filesystem" as const)),
  directory: Config.string("directory").pipe(Config.withDefault("./data/neighbourhood-files")),
  maxBytes: positiveInt("maxBytes", 10 * 1024 * 1024),
  quotaBytes: positiveInt("quotaBytes", 1024 * 1024 * 1024),
  maxAge: positiveMillis("maxAgeMs", Duration.days(7))
}).pipe(Config.nested("files"))

const CompatConfig: Config.Config<CompatSettings> = Config.all({
  unsignedServerHello: Config.boolean("unsignedServerHello").pipe(Config.withDefault(false)),
  perConnectionCounters: Config.boolean("perConnectionCounters").pipe(Config.withDefault(false)),
  pushClientList: Config.boolean("pushClientList").pipe(Config.withDefault(false))
}).pipe(Config.nested("compat"))

const webSocketUrl = (name: string) =>
  Config.string(name).pipe(
    Config.validate({ message: "must be a ws:// or wss:// URL", validation: (url) => /^wss?:\/\/[^\s]+$/.test(url) })
  )

const NeighbourConfig: Config.Config<NeighbourSettings> = Config.all({
  address: Config.string("address").pipe(
    Config.validate({ message: "must be 1 to 255 characters", validation: (a) => a.length > 0 && a.length <= 255 })
  ),
  url: webSocketUrl("url"),
  publicKey: Config.option(Config.string("publicKey")),
  publicKeyPath: Config.option(Config.string("publicKeyPath"))
}).pipe(
  Config.validate({
    message: "each neighbour needs publicKey or publicKeyPath",
    validation: (n) => Option.isSome(n.publicKey) || Option.isSome(n.publicKeyPath)
  })
)

/** Everything under the `neighbourhood` prefix (NEIGHBOURHOOD_PORT, NEIGHBOURHOOD_ADDRESS, ...; neighbours from the JSON file). */
export const NeighbourhoodConfig: Config.Config<NeighbourhoodConfig> = Config.all({
  port: port("port", 9002),
  hostname: Config.string("hostname").pipe(Config.withDefault("::")),
  address: Config.option(Config.string("address")),
  aliases: Config.array(Config.string(), "aliases").pipe(Config.withDefault([] as Array<string>)),
  publicUrl: Config.option(
    Config.string("publicUrl").pipe(
      Config.validate({ message: "must be an http(s) URL", validation: (u) => /^https?:\/\/\S+$/.test(u) })
    )
  ),
  keyPath: Config.string("keyPath").pipe(Config.withDefault("./data/neighbourhood-key.pem")),
  neighbours: Config.array(NeighbourConfig, "neighbours").pipe(Config.withDefault([] as Array<NeighbourSettings>)),
  redialMax: positiveMillis("redialMaxMs", Duration.seconds(5)),
  limits: LimitsConfig,
  files: FilesConfig,
  compat: CompatConfig,
  socket: SocketLimitsConfig(neighbourhoodSocketDefaults)
}).pipe(
  Config.map(({ address, ...rest }) => ({
    ...rest,
    address: Option.getOrElse(address, () => `localhost:${rest.port}`),
    // Uploads arrive on this port: the transport's body limit must let a whole file (and its form) through.
    socket: {
      ...rest.socket,
      maxRequestBodyBytes: rest.socket.maxRequestBodyBytes ?? rest.files.maxBytes + uploadFormOverhead
    }
  })),
  Config.validate({
    message: "neighbours must have distinct addresses, none equal to this server's address",
    validation: (c) =>
      new Set(c.neighbours.map((n) => n.address)).size === c.neighbours.length &&
      c.neighbours.every((n) => n.address !== c.address)
  }),
  Config.nested("neighbourhood")
)

/** What a program needs beyond the config: the neighbours' keys as PEM text. */
export interface Neighbour {
  readonly address: string
  readonly url: string
  readonly publicKeyPem: string
}
