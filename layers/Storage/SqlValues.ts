/** A text column as a string: MySQL hands VARBINARY columns back as bytes, SQLite as strings. */
export const asText = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Uint8Array ? Buffer.from(value).toString("utf8") : String(value)
