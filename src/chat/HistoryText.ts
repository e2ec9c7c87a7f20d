/**
 * History entries are stored as strings (StreamStore payloads) but are arbitrary bytes on the
 * wire. Valid UTF-8 that does not start with NUL is stored as its text (readable in SQL, sizes
 * exact); anything else as NUL + one latin1 char per byte. The mapping is bijective.
 */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const encoder = new TextEncoder()
const RAW_MARK = "\u0000"

export const bytesToStored = (bytes: Uint8Array): string => {
  if (bytes.length === 0 || bytes[0] !== 0) {
    try {
      return utf8.decode(bytes)
    } catch {
      // not UTF-8: fall through to the latin1 form
    }
  }
  return RAW_MARK + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
}

export const storedToBytes = (stored: string): Uint8Array =>
  stored.startsWith(RAW_MARK) ? new Uint8Array(Buffer.from(stored.slice(1), "latin1")) : encoder.encode(stored)

/** The history line "nick: text" exactly as the original builds it. */
export const historyLine = (nick: Uint8Array, text: Uint8Array): Uint8Array => {
  const line = new Uint8Array(nick.length + 2 + text.length)
  line.set(nick, 0)
  line[nick.length] = 0x3a // ':'
  line[nick.length + 1] = 0x20 // ' '
  line.set(text, nick.length + 2)
  return line
}

/** A map key for a byte string (names compare as exact bytes, like the original's memcmp). */
export const bytesKey = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")

/**
 * What a member's history lines start with when stored as text: its nick and ": ", or undefined when the nick is
 * not UTF-8 (its lines are then stored as raw bytes whatever the text).
 */
export const storedLinePrefix = (nick: Uint8Array): string | undefined => {
  const stored = bytesToStored(nick)
  return stored.startsWith(RAW_MARK) ? undefined : `${stored}: `
}

/**
 * bytesToStored(historyLine(nick, text)) without building the line: with ": " between them, the line is UTF-8
 * exactly when nick and text both are, and its text is theirs joined (test/chat/HistoryText.test.ts).
 */
export const storedLine = (prefix: string | undefined, nick: Uint8Array, text: Uint8Array): string => {
  if (prefix !== undefined) {
    try {
      return prefix + utf8.decode(text)
    } catch {
      // not UTF-8: the whole line goes in the latin1 form
    }
  }
  return bytesToStored(historyLine(nick, text))
}

/**
 * Marks a history entry that also names its sender: NUL then U+0100, which neither stored form starts with (text
 * never starts with NUL, and the raw form's characters are all below U+0100).
 */
const SENDER_MARK = "\u0000\u0100"

/**
 * A history entry written on a cluster node: the sender's id and its nick's length in bytes before the stored line,
 * so a node that missed the live message can rebuild its _NEW_MSG from the history.
 */
export const storedMessage = (sender: number, nickBytes: number, line: string) =>
  `${SENDER_MARK}${sender} ${nickBytes} ${line}`

export interface StoredMessage {
  /** The stored "nick: text" line, what a joiner's _LOGGED_MSG carries. */
  readonly line: string
  /** Present when the entry names its sender (written on a cluster node). */
  readonly sender?: { readonly id: number; readonly nickBytes: number }
}

/** Reads an entry of either form; anything that does not parse as a sender entry is a plain line. */
export const readStoredMessage = (payload: string): StoredMessage => {
  if (!payload.startsWith(SENDER_MARK)) return { line: payload }
  const idEnd = payload.indexOf(" ", SENDER_MARK.length)
  const nickEnd = idEnd < 0 ? -1 : payload.indexOf(" ", idEnd + 1)
  if (nickEnd < 0) return { line: payload }
  const id = Number(payload.slice(SENDER_MARK.length, idEnd))
  const nickBytes = Number(payload.slice(idEnd + 1, nickEnd))
  if (!Number.isSafeInteger(id) || !Number.isSafeInteger(nickBytes) || nickBytes < 0) return { line: payload }
  return { line: payload.slice(nickEnd + 1), sender: { id, nickBytes } }
}
