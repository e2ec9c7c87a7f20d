import { Layer, Logger, LogLevel } from "effect"

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

/**
 * Structured logs: logfmt by default, JSON lines with LOG_FORMAT=json; LOG_LEVEL picks the
 * minimum level (info by default). Secrets never reach a log line: config secrets are
 * Redacted values and print as <redacted>.
 */
export const LoggingLive = (env: Record<string, string | undefined> = process.env) =>
  Layer.merge(
    // Log lines go to stderr so stdout stays for what a program prints on purpose (the stack's banner).
    Logger.replace(
      Logger.defaultLogger,
      Logger.withConsoleError(env.LOG_FORMAT === "json" ? Logger.jsonLogger : Logger.logfmtLogger)
    ),
    Logger.minimumLogLevel(levels[(env.LOG_LEVEL ?? "info").toLowerCase()] ?? LogLevel.Info)
  )
