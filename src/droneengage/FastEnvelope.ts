import { maxJsonDepth } from "../shared/JsonDepth.ts"

/**
 * The relay's fast path for an ordinary client message (ty "g" or "i"): one scan that validates
 * the JSON text and proves it is already in the form `JSON.stringify` gives its parse (no
 * whitespace, canonical strings and numbers, no duplicate, integer-like or "__proto__" keys,
 * depth ≤ maxJsonDepth), then builds the stamped text from slices of the original:
 * exactly `JSON.stringify({ ...decode(Envelope)(JSON.parse(text)), sd, p })`, without parsing,
 * decoding or re-encoding. Anything else returns undefined and takes the full Schema path;
 * test/droneengage/FastEnvelope.test.ts checks that both agree on generated and mutated input.
 */

/** The routing fields of the last envelope `stampOrdinary` accepted (read right after the call). */
export interface OrdinaryEnvelope {
  ty: "g" | "i"
  tg: string | undefined
  mt: number | string
}

export const lastOrdinary: OrdinaryEnvelope = { ty: "g", tg: undefined, mt: 0 }

const Quote = 34
const Backslash = 92
const Comma = 44
const Colon = 58
const Minus = 45
const Dot = 46
const Zero = 48
const Nine = 57
const OpenBrace = 123
const CloseBrace = 125
const OpenBracket = 91
const CloseBracket = 93
const maxKeysPerObject = 64

let text = ""
/** Key spans ([start, end) without quotes) of the objects being scanned, innermost last. */
const keySpans = new Int32Array(2 * maxKeysPerObject * (maxJsonDepth + 1))
let keyTop = 0
/** Whether the last string skipped held an escape. */
let escaped = false

const isLowerHex = (c: number) => (c >= Zero && c <= Nine) || (c >= 97 && c <= 102)

/** End of the string starting at the quote `at`, or -1 when it is not what JSON.stringify would write. */
/** The characters a string scan must stop at; long runs of others are skipped by the regex engine. */
const special = /["\\\u0000-\u001f\ud800-\udfff]/g
const longRun = 64

const skipString = (at: number): number => {
  escaped = false
  for (let i = at + 1, plain = 0; i < text.length; ) {
    if (plain === longRun) {
      special.lastIndex = i
      if (!special.test(text)) return -1
      i = special.lastIndex - 1
      plain = 0
    }
    const c = text.charCodeAt(i)
    if (c === Quote) return i + 1
    if (c === Backslash) {
      escaped = true
      const e = text.charCodeAt(i + 1)
      // \" \\ \b \f \n \r \t, or \u00xx (lowercase) for a control character without a short form.
      if (e === Quote || e === Backslash || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) i += 2
      else if (e === 117 && text.charCodeAt(i + 2) === Zero && text.charCodeAt(i + 3) === Zero) {
        const h = text.charCodeAt(i + 4)
        const l = text.charCodeAt(i + 5)
        if ((h !== Zero && h !== 49) || !isLowerHex(l)) return -1
        const code = (h - Zero) * 16 + (l <= Nine ? l - Zero : l - 87)
        if (code === 8 || code === 9 || code === 10 || code === 12 || code === 13) return -1
        i += 6
      } else return -1
    } else if (c < 0x20) return -1
    else if (c >= 0xd800 && c <= 0xdfff) {
      // Only a well-formed pair is written raw; a lone surrogate would come out escaped.
      const next = text.charCodeAt(i + 1)
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return -1
      i += 2
    } else {
      i++
      plain++
    }
  }
  return -1
}

/** True when `Number(s)` prints back as `s`: ≤ 15 significant digits in plain notation, else checked exactly. */
const canonicalNumber = (start: number, end: number, intStart: number, intEnd: number, fracEnd: number): boolean => {
  const intLength = intEnd - intStart
  const intIsZero = intLength === 1 && text.charCodeAt(intStart) === Zero
  if (fracEnd === intEnd && end === intEnd) {
    if (intIsZero) return start === intStart // "-0" prints as "0"
    if (intLength <= 15) return true
  } else if (end === fracEnd && text.charCodeAt(fracEnd - 1) !== Zero) {
    let significant = fracEnd - intEnd - 1
    if (intIsZero) {
      let zeros = 0
      while (text.charCodeAt(intEnd + 1 + zeros) === Zero) zeros++
      significant -= zeros
      if (zeros <= 5 && significant <= 15) return true // below 1e-6 prints with an exponent
    } else if (intLength + significant <= 15) return true
  }
  const source = text.slice(start, end)
  return String(Number(source)) === source
}

const isDigit = (c: number) => c >= Zero && c <= Nine

/** End of the number at `at`, or -1 when it is not JSON or not in its printed form. */
const skipNumber = (at: number): number => {
  let i = at
  if (text.charCodeAt(i) === Minus) i++
  const intStart = i
  const first = text.charCodeAt(i)
  if (first === Zero) i++
  else if (first > Zero && first <= Nine) while (isDigit(text.charCodeAt(i))) i++
  else return -1
  const intEnd = i
  if (text.charCodeAt(i) === Dot) {
    i++
    if (!isDigit(text.charCodeAt(i))) return -1
    while (isDigit(text.charCodeAt(i))) i++
  }
  const fracEnd = i
  const e = text.charCodeAt(i)
  if (e === 101 || e === 69) {
    i++
    const sign = text.charCodeAt(i)
    if (sign === 43 || sign === Minus) i++
    if (!isDigit(text.charCodeAt(i))) return -1
    while (isDigit(text.charCodeAt(i))) i++
  }
  return canonicalNumber(at, i, intStart, intEnd, fracEnd) ? i : -1
}

/** True when the key [start, end) equals an earlier key of the same object (from `base`). */
const duplicateKey = (base: number, start: number, end: number): boolean => {
  const length = end - start
  for (let k = base; k < keyTop; k += 2) {
    const other = keySpans[k]!
    if (keySpans[k + 1]! - other !== length) continue
    let same = true
    for (let j = 0; j < length; j++) {
      if (text.charCodeAt(start + j) !== text.charCodeAt(other + j)) {
        same = false
        break
      }
    }
    if (same) return true
  }
  return false
}

/** End of the key string at `at`, or -1 for keys JSON.parse or JSON.stringify would not keep as written. */
const skipKey = (at: number, base: number): number => {
  if (text.charCodeAt(at) !== Quote) return -1
  const end = skipString(at)
  if (end === -1) return -1
  const start = at + 1
  const close = end - 1
  // Escapes could spell any key; integer-like keys are reordered by objects; "__proto__" is special.
  if (escaped || isDigit(text.charCodeAt(start))) return -1
  if (close - start === 9 && text.startsWith("__proto__", start)) return -1
  if (keyTop - base >= 2 * maxKeysPerObject || duplicateKey(base, start, close)) return -1
  keySpans[keyTop++] = start
  keySpans[keyTop++] = close
  return end
}

const skipObject = (at: number, depth: number): number => {
  if (depth > maxJsonDepth) return -1
  let i = at + 1
  if (text.charCodeAt(i) === CloseBrace) return i + 1
  const base = keyTop
  for (;;) {
    i = skipKey(i, base)
    if (i === -1 || text.charCodeAt(i) !== Colon) return -1
    i = skipValue(i + 1, depth)
    if (i === -1) return -1
    const c = text.charCodeAt(i)
    if (c === Comma) i++
    else if (c === CloseBrace) {
      keyTop = base
      return i + 1
    } else return -1
  }
}

const skipArray = (at: number, depth: number): number => {
  if (depth > maxJsonDepth) return -1
  let i = at + 1
  if (text.charCodeAt(i) === CloseBracket) return i + 1
  for (;;) {
    i = skipValue(i, depth)
    if (i === -1) return -1
    const c = text.charCodeAt(i)
    if (c === Comma) i++
    else if (c === CloseBracket) return i + 1
    else return -1
  }
}

/** End of the value at `at` (inside a container at `depth`), or -1. */
const skipValue = (at: number, depth: number): number => {
  const c = text.charCodeAt(at)
  if (c === Quote) return skipString(at)
  if (c === OpenBrace) return skipObject(at, depth + 1)
  if (c === OpenBracket) return skipArray(at, depth + 1)
  if (c === 116) return text.startsWith("true", at) ? at + 4 : -1
  if (c === 102) return text.startsWith("false", at) ? at + 5 : -1
  if (c === 110) return text.startsWith("null", at) ? at + 4 : -1
  if (c === Minus || isDigit(c)) return skipNumber(at)
  return -1
}

// Spans of the envelope's own members: [start of the key's quote, end of the value).
const enum Field {
  ty = 0,
  sd = 1,
  tg = 2,
  mt = 3,
  ms = 4,
  p = 5
}
const memberStart = new Int32Array(6)
const memberEnd = new Int32Array(6)
const valueStart = new Int32Array(6)
/** Spans of the other members in arrival order. */
const extraStart = new Int32Array(maxKeysPerObject)
const extraEnd = new Int32Array(maxKeysPerObject)

const fieldOf = (start: number, end: number): number => {
  const length = end - start
  if (length === 1) return text.charCodeAt(start) === 112 ? Field.p : -1
  if (length !== 2) return -1
  const a = text.charCodeAt(start)
  const b = text.charCodeAt(start + 1)
  if (a === 116) return b === 121 ? Field.ty : b === 103 ? Field.tg : -1
  if (a === 115) return b === 100 ? Field.sd : -1
  if (a === 109) return b === 116 ? Field.mt : b === 115 ? Field.ms : -1
  return -1
}

/** A decimal integer of up to 15 digits without a slice; anything else through Number. */
const numberAt = (start: number, end: number): number => {
  const negative = text.charCodeAt(start) === Minus
  if (end - start > 15) return Number(text.slice(start, end))
  let value = 0
  for (let i = negative ? start + 1 : start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (!isDigit(c)) return Number(text.slice(start, end))
    value = value * 10 + (c - Zero)
  }
  return negative ? -value : value
}

/** Output assembled from runs of the input: adjacent members are copied as one slice. */
let out = ""
let runStart = -1
let runEnd = -1
const flush = () => {
  if (runStart !== -1) out += text.slice(runStart, runEnd)
  runStart = -1
}
const copyMember = (start: number, end: number, first: boolean) => {
  if (runStart !== -1 && start === runEnd + 1) runEnd = end
  else {
    flush()
    if (!first) out += ","
    runStart = start
    runEnd = end
  }
}
const addLiteral = (piece: string) => {
  flush()
  out += piece
}

/**
 * The stamped text of an ordinary envelope (ty "g"/"i") with `sdJson` and `pJson` (already JSON
 * texts) as its sd and p, or undefined when the full decode must decide. On success the routing
 * fields are in `lastOrdinary`.
 */
export const stampOrdinary = (message: string, sdJson: string, pJson: string): string | undefined => {
  text = message
  keyTop = 0
  const result = scanAndStamp(sdJson, pJson)
  text = ""
  out = ""
  return result
}

const scanAndStamp = (sdJson: string, pJson: string): string | undefined => {
  if (text.charCodeAt(0) !== OpenBrace) return undefined
  memberStart.fill(-1)
  let extras = 0
  let i = 1
  if (text.charCodeAt(i) === CloseBrace) return undefined // no ty
  for (;;) {
    const keyAt = i
    i = skipKey(i, 0)
    if (i === -1 || text.charCodeAt(i) !== Colon) return undefined
    const field = fieldOf(keyAt + 1, i - 1)
    const at = i + 1
    i = skipValue(at, 1)
    if (i === -1) return undefined
    if (field === -1) {
      if (extras === maxKeysPerObject) return undefined
      extraStart[extras] = keyAt
      extraEnd[extras++] = i
    } else {
      memberStart[field] = keyAt
      memberEnd[field] = i
      valueStart[field] = at
    }
    const c = text.charCodeAt(i)
    if (c === Comma) i++
    else if (c === CloseBrace && i === text.length - 1) break
    else return undefined
  }
  // ty "g" or "i" (system messages take the full path), tg a string, mt a number or string.
  if (memberStart[Field.ty] === -1 || memberStart[Field.mt] === -1) return undefined
  const tyAt = valueStart[Field.ty]!
  if (memberEnd[Field.ty] !== tyAt + 3) return undefined
  const ty = text.charCodeAt(tyAt + 1)
  if ((ty !== 103 && ty !== 105) || text.charCodeAt(tyAt) !== Quote) return undefined
  let tg: string | undefined
  if (memberStart[Field.tg] !== -1) {
    const tgAt = valueStart[Field.tg]!
    if (text.charCodeAt(tgAt) !== Quote) return undefined
    if (skipString(tgAt) === -1 || escaped) return undefined
    tg = text.slice(tgAt + 1, memberEnd[Field.tg]! - 1)
  }
  const mtAt = valueStart[Field.mt]!
  const mtEnd = memberEnd[Field.mt]!
  const mtFirst = text.charCodeAt(mtAt)
  let mt: number | string
  if (mtFirst === Quote) {
    if (skipString(mtAt) === -1 || escaped) return undefined
    mt = text.slice(mtAt + 1, mtEnd - 1)
  } else if (mtFirst === Minus || isDigit(mtFirst)) mt = numberAt(mtAt, mtEnd)
  else return undefined
  lastOrdinary.ty = ty === 103 ? "g" : "i"
  lastOrdinary.tg = tg
  lastOrdinary.mt = mt

  // The decoded envelope's key order: ty, sd, tg, mt, ms, p, then the others as they came;
  // spreading it and setting sd and p keeps present keys in place and appends missing ones.
  out = "{"
  runStart = -1
  copyMember(memberStart[Field.ty]!, memberEnd[Field.ty]!, true)
  const hasSd = memberStart[Field.sd] !== -1
  if (hasSd) {
    copyMember(memberStart[Field.sd]!, valueStart[Field.sd]!, false)
    addLiteral(sdJson)
    runStart = memberEnd[Field.sd]!
    runEnd = runStart
  }
  if (memberStart[Field.tg] !== -1) copyMember(memberStart[Field.tg]!, memberEnd[Field.tg]!, false)
  copyMember(memberStart[Field.mt]!, memberEnd[Field.mt]!, false)
  if (memberStart[Field.ms] !== -1) copyMember(memberStart[Field.ms]!, memberEnd[Field.ms]!, false)
  const hasP = memberStart[Field.p] !== -1
  if (hasP) {
    copyMember(memberStart[Field.p]!, valueStart[Field.p]!, false)
    addLiteral(pJson)
    runStart = memberEnd[Field.p]!
    runEnd = runStart
  }
  for (let k = 0; k < extras; k++) copyMember(extraStart[k]!, extraEnd[k]!, false)
  flush()
  if (!hasSd) out += `,"sd":${sdJson}`
  if (!hasP) out += `,"p":${pJson}`
  return `${out}}`
}
