import { Config, Duration } from "effect"

/** Config value helpers shared by every server's config schema; each error names its key. */

export const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

export const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be zero or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

/** A positive number of milliseconds (key usually ends in "Ms"), read as a Duration. */
export const positiveMillis = (name: string, fallback: Duration.DurationInput) =>
  positiveInt(name, Duration.toMillis(Duration.decode(fallback))).pipe(Config.map(Duration.millis))

/** Milliseconds where zero means "off". */
export const nonNegativeMillis = (name: string, fallback: Duration.DurationInput) =>
  nonNegativeInt(name, Duration.toMillis(Duration.decode(fallback))).pipe(Config.map(Duration.millis))

export const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a port number from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(fallback)
  )
