/**
 * A short, escaped prefix of a client's value: the most of it an error text may show, so a
 * reply never echoes large input back.
 */
export const preview = (value: unknown, max = 32): string => {
  const text = JSON.stringify(value) ?? String(value)
  return text.length <= max ? text : `${text.slice(0, max)}…`
}
