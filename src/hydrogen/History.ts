import { Effect } from "effect"
import { applicationError, ErrorCodes } from "./Errors.ts"
import type { StorageError } from "../storage/Account.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { ChannelState } from "./Delivery.ts"

/** A store failure becomes an application error for the client; its details go to the log only. */
export const storageFailed =
  (what: string) =>
  <A, R>(self: Effect.Effect<A, StorageError, R>) =>
    self.pipe(
      Effect.tapError((error) => Effect.logWarning(`history storage failed while ${what}`, error.message)),
      Effect.mapError(() => applicationError(ErrorCodes.storageUnavailable, `history storage failed while ${what}`))
    )

/** The JSON-encoded epoch of a reliable channel's stream, read from the store once and kept on the channel. */
export const epochReader = (store: typeof StreamStore.Service) => (channel: ChannelState) =>
  channel.epochJson !== undefined
    ? Effect.succeed(channel.epochJson)
    : store.position(channel.stream).pipe(
        Effect.map((position) => (channel.epochJson = JSON.stringify(position.epoch))),
        storageFailed("reading a channel position")
      )
