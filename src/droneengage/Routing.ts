import { type ActorType, type Envelope, SystemMessage, Target } from "./Wire.ts"

/** Who in the sender's group receives a message (the sender itself never does). */
export type Audience =
  | { readonly _tag: "Everyone" }
  | { readonly _tag: "Gcs" }
  | { readonly _tag: "Agents" }
  | { readonly _tag: "Unit"; readonly unitName: string }

export const Everyone: Audience = { _tag: "Everyone" }
export const Gcs: Audience = { _tag: "Gcs" }
export const Agents: Audience = { _tag: "Agents" }
export const Unit = (unitName: string): Audience => ({ _tag: "Unit", unitName })

export type Route =
  | { readonly _tag: "Deliver"; readonly audience: Audience }
  | { readonly _tag: "System"; readonly type: number | string }

/** The default audience of a broadcast: a GCS talks to everyone, an agent only to the GCSs. */
const broadcastFrom = (sender: ActorType): Audience => (sender === "g" ? Everyone : Gcs)

/**
 * The original communication server's routing rules:
 * - ty "g": GCS → everyone in the group; agent → the group's GCSs.
 * - ty "i": tg "_GCS_" GCSs, "_GD_" everyone, "_AGN_" agents, any other tg that unit; no tg is
 *   a broadcast as for ty "g".
 * - ty "s": a system command for the relay itself.
 */
export const route = (sender: ActorType, envelope: Pick<Envelope, "ty" | "tg" | "mt">): Route => {
  if (envelope.ty === "s") return { _tag: "System", type: envelope.mt }
  if (envelope.ty === "g") return { _tag: "Deliver", audience: broadcastFrom(sender) }
  const target = envelope.tg
  if (target === undefined || target.length === 0) return { _tag: "Deliver", audience: broadcastFrom(sender) }
  switch (target) {
    case Target.allGcs:
      return { _tag: "Deliver", audience: Gcs }
    case Target.everyone:
      return { _tag: "Deliver", audience: Everyone }
    case Target.allAgents:
      return { _tag: "Deliver", audience: Agents }
    default:
      return { _tag: "Deliver", audience: Unit(target) }
  }
}

/** A room: one group of one account. Ids are opaque strings from the login grant. */
export interface RoomKey {
  readonly accountId: string
  readonly group: string
}

/**
 * Room names on the Rooms Tag (each also a native topic): "de/" then the JSON-escaped account
 * and group, then the audience. The account id is always part of the name, so no publish can
 * reach another account; JSON escaping keeps any choice of group or unit name from forging another.
 */
export const roomPrefix = (room: RoomKey): string => `de/${JSON.stringify([room.accountId, room.group])}/`

/** The room of one unit, under a room prefix. */
export const unitRoom = (prefix: string, unitName: string): string => `${prefix}unit:${JSON.stringify(unitName)}`

export const topicFor = (room: RoomKey, audience: Audience): string => {
  const prefix = roomPrefix(room)
  switch (audience._tag) {
    case "Everyone":
      return `${prefix}all`
    case "Gcs":
      return `${prefix}gcs`
    case "Agents":
      return `${prefix}agents`
    case "Unit":
      return unitRoom(prefix, audience.unitName)
  }
}

/** Unit names a client may not take: the reserved targets, empty, control characters, over 200 chars. */
export const validUnitName = (name: string): boolean =>
  name.length > 0 &&
  name.length <= 200 &&
  !(Object.values(Target) as ReadonlyArray<string>).includes(name) &&
  // eslint-disable-next-line no-control-regex
  !/[\u0000-\u001f\u007f]/.test(name)

/** Login keys are 128-bit values written as 32 lowercase hex characters. */
export const validLoginKey = (key: string): boolean => /^[0-9a-f]{32}$/.test(key)

/** Task storage (9001-9004) messages; the relay does not host tasks and answers with an error. */
export const isTaskMessage = (type: number | string) =>
  type === SystemMessage.loadTasks ||
  type === SystemMessage.saveTasks ||
  type === SystemMessage.deleteTasks ||
  type === SystemMessage.disableTasks
