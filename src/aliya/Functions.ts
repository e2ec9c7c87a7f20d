import { Schema } from "effect"

/**
 * Every documented client function: which service owns it, whether it needs a token, and the
 * shape of its `data`. The gateway and the owning manager decode with the same schema.
 */

/** A non-negative integer, as a number or a decimal string (the original client sends strings). */
export const Count = Schema.Union(
  Schema.Int,
  Schema.String.pipe(Schema.pattern(/^\d{1,9}$/), Schema.compose(Schema.NumberFromString))
).pipe(
  Schema.filter((n) => Number.isSafeInteger(n) && n >= 0 && n <= 1_000_000_000, {
    message: () => "must be an integer 0..1000000000"
  })
)

const Name = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64))
const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

export const Identifier = Schema.Literal("account", "email", "phone_number")
export type Identifier = typeof Identifier.Type

export const LoginData = Schema.Struct({ identifier: Identifier, value: Text, password: Text })
export const LoginUniqueData = Schema.Struct({
  unique_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  device_secret: Schema.optional(Schema.String.pipe(Schema.maxLength(256)))
})

export const Empty = Schema.Struct({})

export const FunctionData = {
  login: LoginData,
  login_unique: LoginUniqueData,
  bind_account: Schema.Struct({ account: Name, password: Text }),
  skill_level_up: Schema.Struct({ skill_id: Name, scroll_id: Name }),
  get_all_skill_level: Empty,
  get_skill: Schema.Struct({ skill_id: Name }),
  random_gift_skill: Empty,
  increase_energy: Schema.Struct({ energy: Count }),
  decrease_energy: Schema.Struct({ energy: Count }),
  pass_level: Schema.Struct({ level_id: Count }),
  level_up_scroll: Schema.Struct({ scroll_id: Name }),
  random_gift_segment: Empty,
  get_all_supplies: Empty,
  increase_supplies: Schema.Struct({
    supplies: Schema.Array(Name).pipe(Schema.maxItems(16)),
    amount: Schema.Array(Count).pipe(Schema.maxItems(16))
  }),
  level_up_weapon: Schema.Struct({ weapon: Name, iron: Count }),
  level_up_passive: Schema.Struct({ weapon: Name, passive: Name }),
  reset_weapon_skill_point: Schema.Struct({ weapon: Name }),
  level_up_weapon_star: Schema.Struct({ weapon: Name }),
  get_all_weapon: Empty
} as const

export type FunctionName = keyof typeof FunctionData

export const ManagerNames = ["account", "playerState", "bag", "skill", "weapon"] as const
export type ManagerName = (typeof ManagerNames)[number]

/** Who answers each function: the token server, or a manager. */
export const Owner: Record<FunctionName, ManagerName | "tokens"> = {
  login: "tokens",
  login_unique: "tokens",
  bind_account: "account",
  skill_level_up: "skill",
  get_all_skill_level: "skill",
  get_skill: "skill",
  random_gift_skill: "skill",
  increase_energy: "playerState",
  decrease_energy: "playerState",
  pass_level: "playerState",
  level_up_scroll: "bag",
  random_gift_segment: "weapon",
  get_all_supplies: "bag",
  increase_supplies: "bag",
  level_up_weapon: "weapon",
  level_up_passive: "weapon",
  reset_weapon_skill_point: "weapon",
  level_up_weapon_star: "weapon",
  get_all_weapon: "weapon"
}

/** Functions that hand out resources for free: the seed marks them DANGEROUS; config can switch them off. */
export const Dangerous: ReadonlySet<FunctionName> = new Set([
  "increase_supplies",
  "increase_energy",
  "random_gift_skill",
  "random_gift_segment"
])

export const isFunctionName = (name: string): name is FunctionName => Object.hasOwn(FunctionData, name)

/** Decoders built once: the gateway runs one per request. */
export const decodeData = Object.fromEntries(
  Object.entries(FunctionData).map(([name, schema]) => [
    name,
    Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>)
  ])
) as {
  readonly [K in FunctionName]: (
    input: unknown
  ) => import("effect").Either.Either<(typeof FunctionData)[K]["Type"], import("effect").ParseResult.ParseError>
}
