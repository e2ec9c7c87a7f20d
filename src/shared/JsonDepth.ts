/**
 * Nesting limit of JSON from clients and peers, checked on the text before it is parsed or
 * decoded, so no parser, schema or formatter ever recurses deeper than this.
 */
export const maxJsonDepth = 64

/** Depth by a character scan that jumps over strings (native indexOf), never recursing. */
const deeperThan = (text: string, max: number): boolean => {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 34) {
      // To the closing quote: the next one preceded by an even number of backslashes.
      let end = text.indexOf('"', i + 1)
      while (end !== -1) {
        let slash = end - 1
        while (text.charCodeAt(slash) === 92) slash--
        if ((end - slash) % 2 === 1) break
        end = text.indexOf('"', end + 1)
      }
      if (end === -1) return false
      i = end
    } else if (c === 123 || c === 91) {
      if (++depth > max) return true
    } else if (c === 125 || c === 93) depth--
  }
  return false
}

/** Counts `{` and `[` with native indexOf, stopping once there are more than `max`. */
const openingsExceed = (text: string, max: number): boolean => {
  let count = 0
  for (let at = text.indexOf("{"); at !== -1; at = text.indexOf("{", at + 1)) if (++count > max) return true
  for (let at = text.indexOf("["); at !== -1; at = text.indexOf("[", at + 1)) if (++count > max) return true
  return false
}

/**
 * True when JSON text nests arrays and objects deeper than `max`. Text with at most `max`
 * openings cannot, and is cleared by the cheap count alone (the usual relay message).
 */
export const exceedsJsonDepth = (text: string, max: number = maxJsonDepth): boolean =>
  openingsExceed(text, max) && deeperThan(text, max)
