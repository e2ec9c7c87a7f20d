import { FastCheck as fc } from "effect"

/**
 * Malformed-input arbitraries shared by the protocol files. A case stays a small value (so
 * fast-check can shrink it and a repro prints in a line): huge and deep values are placeholders,
 * `{"$huge": n}` and `{"$deep": n}`, expanded to real text only when the case is sent.
 */

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** A long string of `n` copies of `char` (sizes around the usual limits, and far above them). */
export const huge = (n: number, char = "a"): Json => ({ $huge: n, char })
/** `n` nested arrays (or objects) around a value: the stack-depth attack. */
export const deep = (n: number, shape: "array" | "object" = "array"): Json => ({ $deep: n, shape })

const isHuge = (value: any): value is { $huge: number; char: string } =>
  value !== null && typeof value === "object" && typeof value.$huge === "number"
const isDeep = (value: any): value is { $deep: number; shape: "array" | "object" } =>
  value !== null && typeof value === "object" && typeof value.$deep === "number"

/** JSON text of a value with its placeholders expanded (iteratively: no recursion on the deep part). */
export const jsonText = (value: Json): string => {
  if (isHuge(value)) return JSON.stringify(value.char.repeat(value.$huge))
  if (isDeep(value))
    return value.shape === "array"
      ? "[".repeat(value.$deep) + "]".repeat(value.$deep)
      : '{"a":'.repeat(value.$deep) + "1" + "}".repeat(value.$deep)
  if (Array.isArray(value)) return `[${value.map(jsonText).join(",")}]`
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([key, field]) => `${JSON.stringify(key)}:${jsonText(field as Json)}`)
      .join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** Strings a person would type, and strings nobody should: control characters, lone surrogates, long runs. */
export const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 16 }) },
  {
    weight: 1,
    arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), maxLength: 8 })
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "\ud800",
      "\udfff",
      "\u0000",
      "\u202e",
      "%00",
      "../../etc/passwd",
      "__proto__",
      "constructor"
    )
  }
)

const hugeSizes = fc.constantFrom(256, 1_000, 5_000, 70_000, 300_000, 2_000_000)
const deepSizes = fc.constantFrom(64, 1_000, 10_000, 50_000)

export const hugeValue: fc.Arbitrary<Json> = fc
  .tuple(hugeSizes, fc.constantFrom("a", "é", '"', "\\", "<"))
  .map(([n, char]) => huge(n, char))
export const deepValue: fc.Arbitrary<Json> = fc
  .tuple(deepSizes, fc.constantFrom("array" as const, "object" as const))
  .map(([n, shape]) => deep(n, shape))

/** A value of any JSON type: what "wrong type" replaces a field with. */
export const anyValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), anyString) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json> },
  { weight: 1, arbitrary: fc.constantFrom<Json>(-1, 0, 2 ** 31, 2 ** 53 + 1, -0, 1e308, "", [], {}) },
  { weight: 1, arbitrary: hugeValue },
  { weight: 1, arbitrary: deepValue }
)

/** Byte sequences that are not UTF-8: a stray continuation, a cut sequence, an overlong form, a surrogate, 0xff. */
export const invalidUtf8 = fc.constantFrom(
  [0x80],
  [0xc3],
  [0xe2, 0x82],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xff, 0xfe]
)

/** How one valid message is broken (or not). */
export type Mutation =
  | { readonly op: "valid" }
  | { readonly op: "drop"; readonly field: number }
  | { readonly op: "set"; readonly field: number; readonly value: Json }
  | { readonly op: "add"; readonly key: string; readonly value: Json }
  | { readonly op: "replace"; readonly value: Json }
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "invalidUtf8"; readonly at: number; readonly bytes: ReadonlyArray<number> }
  | { readonly op: "garbage"; readonly bytes: ReadonlyArray<number> }
  | { readonly op: "duplicateKey"; readonly field: number; readonly value: Json }

/** Text stays UTF-8 under these (a text frame that is not UTF-8 ends the connection, so those are sent apart). */
export const textMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ op: "valid" as const }) },
  { weight: 2, arbitrary: fc.nat(15).map((field) => ({ op: "drop" as const, field })) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("set" as const), field: fc.nat(15), value: anyValue }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("add" as const), key: anyString, value: anyValue }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("replace" as const), value: anyValue }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("truncate" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicateKey" as const), field: fc.nat(15), value: anyValue }) }
)

export const invalidUtf8Mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constant("invalidUtf8" as const),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  bytes: invalidUtf8
})

/** Every mutation, bytes that are not UTF-8 included. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ op: "valid" as const }) },
  { weight: 2, arbitrary: fc.nat(15).map((field) => ({ op: "drop" as const, field })) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("set" as const), field: fc.nat(15), value: anyValue }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("add" as const), key: anyString, value: anyValue }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("replace" as const), value: anyValue }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("truncate" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("invalidUtf8" as const),
      at: fc.double({ min: 0, max: 1, noNaN: true }),
      bytes: invalidUtf8
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("garbage" as const),
      bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 })
    })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicateKey" as const), field: fc.nat(15), value: anyValue }) }
)

const encoder = new TextEncoder()

/** The bytes of a message after a mutation; `text` is false when they are not valid UTF-8 (by construction). */
export const applyMutation = (
  message: { readonly [key: string]: Json },
  change: Mutation
): { bytes: Uint8Array; utf8: boolean } => {
  const keys = Object.keys(message)
  const pick = (index: number) => keys[index % Math.max(1, keys.length)]
  const asText = (value: Json) => ({ bytes: encoder.encode(jsonText(value)), utf8: true })
  switch (change.op) {
    case "valid":
      return asText(message)
    case "drop": {
      const key = pick(change.field)
      const { [key ?? ""]: _dropped, ...rest } = message
      return asText(rest)
    }
    case "set":
      return asText({ ...message, [pick(change.field) ?? "x"]: change.value })
    case "add":
      return asText({ ...message, [change.key]: change.value })
    case "replace":
      return asText(change.value)
    case "truncate": {
      const text = jsonText(message)
      return { bytes: encoder.encode(text.slice(0, Math.floor(text.length * change.at))), utf8: true }
    }
    case "invalidUtf8": {
      const bytes = encoder.encode(jsonText(message))
      const at = Math.floor(bytes.length * change.at)
      const out = new Uint8Array(bytes.length + change.bytes.length)
      out.set(bytes.subarray(0, at), 0)
      out.set(change.bytes, at)
      out.set(bytes.subarray(at), at + change.bytes.length)
      return { bytes: out, utf8: false }
    }
    case "garbage": {
      const bytes = Uint8Array.from(change.bytes)
      return { bytes, utf8: isUtf8(bytes) }
    }
    case "duplicateKey": {
      const key = pick(change.field) ?? "x"
      const text = jsonText(message)
      return { bytes: encoder.encode(`{${JSON.stringify(key)}:${jsonText(change.value)},${text.slice(1)}`), utf8: true }
    }
  }
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true })
export const isUtf8 = (bytes: Uint8Array): boolean => {
  try {
    strictDecoder.decode(bytes)
    return true
  } catch {
    return false
  }
}

/** How deep the input nests (the text's bracket depth, ignoring strings): deep-JSON defects are told apart by it. */
export const nestingDepth = (bytes: Uint8Array): number => {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (inString) {
      if (b === 0x5c) i++
      else if (b === 0x22) inString = false
    } else if (b === 0x22) inString = true
    else if (b === 0x5b || b === 0x7b) max = Math.max(max, ++depth)
    else if (b === 0x5d || b === 0x7d) depth--
  }
  return max
}

/** A case of 1-3 frames, now and then repeated as a flood (20-400 times). */
export const framesCase = <F>(frame: fc.Arbitrary<F>) =>
  fc.record({
    kind: fc.constant("frames" as const),
    frames: fc.array(frame, { minLength: 1, maxLength: 3 }),
    repeat: fc.oneof(
      { weight: 40, arbitrary: fc.constant(1) },
      { weight: 1, arbitrary: fc.integer({ min: 20, max: 400 }) }
    )
  })
