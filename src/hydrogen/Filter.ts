import { Schema } from "effect"

const Scalar = Schema.Union(Schema.String, Schema.Number, Schema.Boolean, Schema.Null)
export type Scalar = typeof Scalar.Type

/** One condition on a field: a bare value means equality. */
export const Condition = Schema.Union(
  Scalar,
  Schema.Struct({
    eq: Schema.optional(Scalar),
    ne: Schema.optional(Scalar),
    in: Schema.optional(Schema.Array(Scalar).pipe(Schema.maxItems(64))),
    gt: Schema.optional(Schema.Number),
    gte: Schema.optional(Schema.Number),
    lt: Schema.optional(Schema.Number),
    lte: Schema.optional(Schema.Number),
    exists: Schema.optional(Schema.Boolean)
  })
)
export type Condition = typeof Condition.Type

/**
 * A subscription filter: every condition must hold. Keys are dotted paths into the event's
 * `data` ("order.total"), e.g. {"level": {"in": ["warn", "error"]}, "order.total": {"gte": 100}}.
 */
export const Filter = Schema.Record({
  key: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  value: Condition
}).pipe(Schema.filter((filter) => Object.keys(filter).length <= 16 || "at most 16 conditions"))
export type Filter = typeof Filter.Type

const fieldAt = (data: unknown, path: string): unknown => {
  let value = data
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

const holds = (value: unknown, condition: Condition): boolean => {
  if (condition === null || typeof condition !== "object") return value === condition
  if (condition.exists !== undefined && (value !== undefined) !== condition.exists) return false
  if (condition.eq !== undefined && value !== condition.eq) return false
  if (condition.ne !== undefined && value === condition.ne) return false
  if (condition.in !== undefined && !condition.in.includes(value as Scalar)) return false
  if (condition.gt !== undefined && !(typeof value === "number" && value > condition.gt)) return false
  if (condition.gte !== undefined && !(typeof value === "number" && value >= condition.gte)) return false
  if (condition.lt !== undefined && !(typeof value === "number" && value < condition.lt)) return false
  if (condition.lte !== undefined && !(typeof value === "number" && value <= condition.lte)) return false
  return true
}

/** Whether an event's data passes a filter. */
export const matches = (filter: Filter, data: unknown): boolean => {
  for (const path in filter) if (!holds(fieldAt(data, path), filter[path]!)) return false
  return true
}
