import { Effect } from "effect"
import { addItem, readBag, spendItem } from "./BagStore.ts"
import { isItem, isScroll, Items, SCROLLS_PER_COMBINE, Scrolls } from "./Game.ts"
import { functionRoute, orUnavailable } from "./ServiceHttp.ts"
import { transactionally } from "./Tables.ts"
import { Messages, reply, Status } from "./Wire.ts"

/** Largest amount one increase_supplies may add per item. */
export const MAX_SUPPLY_GRANT = 1_000_000

export const getAllSupplies = (uniqueId: string) =>
  orUnavailable(
    Effect.map(readBag(uniqueId), (bag) =>
      reply(0, "success", Object.fromEntries(Items.map((item, i) => [`item${i + 1}`, [item, bag[item]]])))
    )
  )

export const increaseSupplies = (uniqueId: string, supplies: ReadonlyArray<string>, amounts: ReadonlyArray<number>) => {
  const valid =
    supplies.length > 0 &&
    supplies.length === amounts.length &&
    new Set(supplies).size === supplies.length &&
    supplies.every(isItem) &&
    amounts.every((a) => a <= MAX_SUPPLY_GRANT)
  if (!valid) return Effect.succeed(reply(Status.invalidFormat, Messages.invalidFormat))
  return orUnavailable(
    transactionally(
      Effect.map(
        Effect.forEach(supplies, (item, i) => addItem(uniqueId, item as (typeof Items)[number], amounts[i]!)),
        (totals) => reply(0, "success", { supplies, amount: totals })
      )
    )
  )
}

export const levelUpScroll = (uniqueId: string, scroll: string) => {
  const into = isScroll(scroll) ? Scrolls[scroll].combinesInto : undefined
  if (!into) return Effect.succeed(reply(Status.invalidFormat, Messages.invalidFormat))
  return orUnavailable(
    transactionally(
      Effect.gen(function* () {
        const remaining = yield* spendItem(uniqueId, scroll as (typeof Items)[number], SCROLLS_PER_COMBINE)
        if (remaining === undefined) return reply(1, "Not enough scrolls to complete conversion")
        const total = yield* addItem(uniqueId, into, 1)
        return reply(0, "success", { item1: [scroll, remaining], item2: [into, total] })
      })
    )
  )
}

export const bagRoutes = () =>
  Object.fromEntries([
    functionRoute("get_all_supplies", (id) => getAllSupplies(id)),
    functionRoute("increase_supplies", (id, d) => increaseSupplies(id, d.supplies, d.amount)),
    functionRoute("level_up_scroll", (id, d) => levelUpScroll(id, d.scroll_id))
  ])
