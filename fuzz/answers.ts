/**
 * The documented answers to bad input, per protocol, in one place (from docs/droneengage.md,
 * docs/hydrogen.md, docs/chat.md, README "Close codes" and src/shared/CloseCodes.ts). The fuzz suite
 * accepts exactly these; update this file when a protocol documents a new answer.
 */

/** Defects of issue 12 that are known and being fixed on other branches; their violations are reported as "known". */
export const KNOWN_DEFECTS: ReadonlyArray<DefectId> = []

export type DefectId = "12.2" | "12.3" | "12.4"
export const defectTitles: Record<DefectId, string> = {
  "12.2": "error replies echo oversized input; HTTP bodies have no size limit",
  "12.3": "deeply nested JSON → HTTP 500 / close 1011 instead of the documented error",
  "12.4": "schema errors leak internals (schema types in error texts)"
}

/** Close codes the transport may use on any of our WebSockets (README "Close codes"), for input-driven closes. */
const transportCloses = [
  1000, // normal (after the client's own close)
  1009, // message too big (above maxPayloadBytes)
  4002, // inbox overflow (floods)
  4003, // slow consumer
  4006 // rate limited
]

/** RFC 6455 §8.1: a text frame that is not UTF-8 must fail the connection, with 1007 (uWS does this before our code runs). */
export const INVALID_UTF8_CLOSE = 1007

export const answers = {
  /** docs/droneengage.md "Client HTTP API": `{"e": <code>, "em"?, "cm"}`; 404 `{"error"}` outside /w and /agent. */
  droneengageHttp: {
    statuses: [200, 400, 401, 403, 404, 405, 409, 413, 429],
    errorCodes: [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 999],
    /** HTTP 500 is documented only with e:3 (database error) and a JSON body. */
    databaseErrorStatus: 500
  },
  /** docs/droneengage.md "Client WebSocket (relay)". */
  relay: {
    upgradeRefusals: [400, 401, 403],
    /** Server → client system messages: 9007 hello, 9005 pong, 9006 left the group, 9100 error. */
    systemReplies: [9005, 9006, 9007, 9100],
    errorReasons: [
      "malformed",
      "target-not-found",
      "not-in-group",
      "tasks-unavailable",
      "udp-proxy-unavailable",
      "agents-only",
      "unknown-system-message",
      "udp-proxy-invalid",
      "task-invalid",
      "task-too-large",
      "task-quota",
      "task-storage",
      "foreign-account"
    ],
    closes: [...transportCloses, 4004, 4403]
  },
  /** docs/chat.md "Errors" and close codes. */
  chat: {
    /** `_RESP_ERROR` p2 reasons: refused, malformed, unknownCommand, tooLong, limitReached, notInRoom, empty, nickFirst, rateLimited. */
    errorReasons: [0, 1, 2, 3, 4, 5, 6, 7, 8],
    /** Commands the server sends: _RESP_OK, _RESP_ERROR, _NEW_USER, _DEL_USER, _NEW_MSG, _LOGGED_MSG. */
    serverCommands: [3, 4, 5, 6, 7, 8],
    /** 4400 bad magic packet, 4005 handshake timeout, 4001 idle. */
    closes: [...transportCloses, 4400, 4005, 4001],
    upgradeRefusals: [503]
  },
  /** docs/neighbourhood.md "Errors": `{"type":"error","message"}` replies; 4403 key held / not a neighbour, 4401 bad server_hello, 4005 no hello. */
  neighbourhood: {
    closes: [...transportCloses, 4403, 4401, 4005]
  },
  /** docs/aliya.md "Requests and replies": gateway statuses 10-14 and each function's own (0-9); a bad header closes without a reply. */
  aliya: {
    statuses: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    /** What a body that is not a request (not base64, not decryptable, not JSON, wrong keys or function) gets. */
    invalidFormat: 10,
    /** Documented for a service that does not answer; while every part is up it is an internal error. */
    unavailable: 13
  },
  /** docs/hydrogen.md "Responses and errors", close codes and HTTP statuses. */
  hydrogen: {
    errorCodes: {
      protocol: [
        "invalid_json",
        "invalid_envelope",
        "unknown_type",
        "binary_not_supported",
        "message_too_large",
        "rate_limited",
        "unknown_channel",
        "unknown_action",
        "invalid_data"
      ],
      authentication: ["invalid_token", "token_expired", "signature_not_supported", "forbidden"],
      application: ["session_unknown", "limit_exceeded", "storage_unavailable", "handler_failed"]
    } as Record<string, ReadonlyArray<string>>,
    frameTypes: ["response", "event"],
    closes: [...transportCloses, 4004, 4401],
    upgradeRefusals: [400, 401, 403, 429, 503],
    httpStatuses: [200, 400, 401, 403, 404, 405, 413, 429, 503]
  }
} as const

/** An error text longer than this is an echo of input (or a dump of internals), whatever it contains. */
export const MAX_ERROR_REPLY_BYTES = 2048
/** A run of this many input characters found in an error reply is an echo ("a short escaped prefix" is below it). */
export const ECHO_WINDOW = 128

/** Words of a schema's type description: an error text that contains them shows internals. */
const internals = /\breadonly\b|\{ readonly|\bParseError\b|\bTransformation\b|\bRefinement\b|\bDeclaration\b/

export const leaksInternals = (text: string): boolean => internals.test(text)

/**
 * Whether `reply` repeats a long stretch of the client's input: a window of ECHO_WINDOW characters
 * from the start, middle and end of each long input string, raw or JSON-escaped.
 */
export const echoes = (reply: string, inputs: ReadonlyArray<string>): boolean => {
  for (const input of inputs) {
    if (input.length <= ECHO_WINDOW) continue
    for (const at of [0, Math.floor((input.length - ECHO_WINDOW) / 2), input.length - ECHO_WINDOW]) {
      const window = input.slice(at, at + ECHO_WINDOW)
      if (reply.includes(window) || reply.includes(JSON.stringify(window).slice(1, -1))) return true
    }
  }
  return false
}
