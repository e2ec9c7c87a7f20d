import { Either, Schema } from "effect"
import { decodeData, type FunctionData, type FunctionName } from "./Functions.ts"
import { Request } from "./Wire.ts"

/**
 * Hand decoders for the hot requests (the envelope, get_all_weapon's and level_up_weapon's data):
 * they answer only what they are sure of, exactly as the Schema would (property-tested), and
 * leave anything else (undefined) to the Schema, which stays the decoder of record.
 */

const decodeRequestSchema = Schema.decodeUnknownEither(Request)

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" &&
  value !== null &&
  Object.getPrototypeOf(value) === Object.prototype &&
  !Object.hasOwn(value, "__proto__")

/** The envelope of a request, or undefined when only the Schema can say. */
export const fastRequest = (input: unknown): Request | undefined => {
  if (!isPlainObject(input)) return undefined
  const name = input.function
  const random = input.random
  const data = input.data
  if (typeof name !== "string" || name.length > 64) return undefined
  if (data !== undefined && !isPlainObject(data)) return undefined
  if (random === undefined) return Object.hasOwn(input, "random") ? undefined : { function: name, data: data ?? {} }
  if (typeof random === "number" || (typeof random === "string" && random.length <= 64))
    return { function: name, random, data: data ?? {} }
  return undefined
}

/** The envelope: the hand path when it is sure, else the Schema. */
export const decodeRequest = (input: unknown) => {
  const fast = fastRequest(input)
  return fast ? Either.right(fast) : decodeRequestSchema(input)
}

/** A Count (see Functions.ts) of a number or a decimal string; undefined when it is not one. */
const count = (value: unknown): number | undefined => {
  const n =
    typeof value === "number" ? value : typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : NaN
  return Number.isSafeInteger(n) && n >= 0 && n <= 1_000_000_000 ? n : undefined
}

const fastData: { readonly [K in FunctionName]?: (data: Record<string, unknown>) => unknown } = {
  // Struct({}) is any non-null value: the Schema hands the data back as it is.
  get_all_weapon: (data) => data,
  level_up_weapon: (data) => {
    const weapon = data.weapon
    const iron = count(data.iron)
    return typeof weapon === "string" && weapon.length >= 1 && weapon.length <= 64 && iron !== undefined
      ? { weapon, iron }
      : undefined
  }
}

/** A function's data: the hand path for the hot functions when it is sure, else the Schema. */
export const decodeFunctionData = <K extends FunctionName>(
  name: K,
  data: Record<string, unknown>
): Either.Either<(typeof FunctionData)[K]["Type"], unknown> => {
  const fast = fastData[name]?.(data)
  return fast !== undefined ? Either.right(fast as (typeof FunctionData)[K]["Type"]) : decodeData[name](data)
}

/**
 * A manager route's body `{unique_id, ...data}` for the hot functions, split as the route's Schema
 * (the function's data extended with unique_id) would; undefined when only the Schema can say.
 */
export const fastFunctionBody = (
  name: FunctionName,
  body: unknown
): { readonly uniqueId: string; readonly data: unknown } | undefined => {
  if (!isPlainObject(body)) return undefined
  const uniqueId = body.unique_id
  if (typeof uniqueId !== "string" || uniqueId.length < 1 || uniqueId.length > 128) return undefined
  // Struct({}) extended with unique_id keeps only unique_id: the data is empty.
  if (name === "get_all_weapon") return { uniqueId, data: {} }
  const data = name === "level_up_weapon" ? fastData.level_up_weapon!(body) : undefined
  return data === undefined ? undefined : { uniqueId, data }
}
