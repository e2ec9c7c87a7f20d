import type { PublishData } from "./Commands.ts"
import type { Command } from "./Envelope.ts"

/**
 * Hand-written checks for the most frequent client messages (an events/publish command and its
 * data), run on the parsed JSON before the Schemas. Each returns exactly what the Schema decode
 * would for a value it accepts (property-tested in test/hydrogen/HandDecode.test.ts), and undefined
 * for anything else, which then takes the Schema path and its precise errors.
 */

/** Channel names: letters, digits and `_ . : -`, up to 128 characters. */
export const channelPattern = /^[A-Za-z0-9_.:-]{1,128}$/
/** Action names: the same characters, up to 64. */
export const actionPattern = /^[A-Za-z0-9_.:-]{1,64}$/

type Fields = Record<string, unknown>

const isRecord = (value: unknown): value is Fields =>
  value !== null && typeof value === "object" && !Array.isArray(value)

const isName = (value: unknown, pattern: RegExp): value is string => typeof value === "string" && pattern.test(value)

/** A command envelope without `auth` (a per-message credential takes the Schema path). */
export const handCommand = (value: unknown): Command | undefined => {
  if (!isRecord(value) || value.type !== "command" || value.auth !== undefined) return undefined
  const { id, timestamp } = value
  if (typeof id !== "string" || id.length === 0 || id.length > 128) return undefined
  if (timestamp !== undefined && (typeof timestamp !== "string" || timestamp.length > 64)) return undefined
  if (!isName(value.channel, channelPattern) || !isName(value.action, actionPattern)) return undefined
  const command: { -readonly [K in keyof Command]: Command[K] } = {
    type: "command",
    id,
    channel: value.channel,
    action: value.action
  }
  if (timestamp !== undefined) command.timestamp = timestamp
  if (Object.hasOwn(value, "data")) command.data = value.data
  return command
}

/** The data of events/publish. */
export const handPublishData = (value: unknown): PublishData | undefined => {
  if (!isRecord(value)) return undefined
  const { priority, ack } = value
  if (!isName(value.channel, channelPattern) || !isName(value.action, actionPattern)) return undefined
  if (priority !== undefined && priority !== "normal" && priority !== "high") return undefined
  if (ack !== undefined && typeof ack !== "boolean") return undefined
  const data: { -readonly [K in keyof PublishData]: PublishData[K] } = { channel: value.channel, action: value.action }
  if (Object.hasOwn(value, "data")) data.data = value.data
  if (priority !== undefined) data.priority = priority
  if (ack !== undefined) data.ack = ack
  return data
}
