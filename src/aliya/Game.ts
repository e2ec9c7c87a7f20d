/** The game's fixed catalog and rules (pure): items, weapons, skills, level rewards, energy. */

export const Items = [
  "coin",
  "iron",
  "diamonds",
  "experience_potion",
  "small_energy_potion",
  "scroll_skill_10",
  "scroll_skill_30",
  "scroll_skill_100"
] as const
export type Item = (typeof Items)[number]
export const isItem = (name: string): name is Item => (Items as ReadonlyArray<string>).includes(name)

/** weapon1 .. weapon40, as in the original's weapon_bag. */
export const Weapons: ReadonlyArray<string> = Array.from({ length: 40 }, (_, i) => `weapon${i + 1}`)
export const isWeapon = (name: string) => /^weapon([1-9]|[1-3][0-9]|40)$/.test(name)

export const Passives = [
  "passive_skill_1_level",
  "passive_skill_2_level",
  "passive_skill_3_level",
  "passive_skill_4_level"
] as const
export type Passive = (typeof Passives)[number]
export const isPassive = (name: string): name is Passive => (Passives as ReadonlyArray<string>).includes(name)

export const IRON_PER_LEVEL = 20
export const MAX_WEAPON_LEVEL = 100
/** Segments for the next star: this many times the current star. */
export const SEGMENTS_PER_STAR = 30
/** Segments a random_gift_segment gives for a weapon already owned. */
export const GIFT_SEGMENTS = 30

/** The skill tree of the original (m/p/g, three tiers): tier 1, 2 and 3 ids in lottery order. */
const branches = ["m", "p", "g"] as const
const tier1 = branches.map((b) => `${b}1_level`)
const tier2 = branches.flatMap((b) => [1, 2, 3].map((i) => `${b}1${i}_level`))
const tier3 = branches.flatMap((b) => [1, 2, 3].flatMap((i) => [1, 2, 3].map((j) => `${b}1${i}${j}_level`)))
export const SkillTiers: ReadonlyArray<ReadonlyArray<string>> = [tier1, tier2, tier3]
export const Skills: ReadonlyArray<string> = [...tier1, ...tier2, ...tier3]
export const isSkill = (name: string) => Skills.includes(name)
export const MAX_SKILL_LEVEL = 10

/** Skill scrolls: chance in percent of a level-up, and what three of them combine into. */
export const Scrolls = {
  scroll_skill_10: { chance: 10, combinesInto: "scroll_skill_30" },
  scroll_skill_30: { chance: 30, combinesInto: "scroll_skill_100" },
  scroll_skill_100: { chance: 100, combinesInto: undefined }
} as const satisfies Record<string, { chance: number; combinesInto: Item | undefined }>
export type Scroll = keyof typeof Scrolls
export const isScroll = (name: string): name is Scroll => Object.hasOwn(Scrolls, name)
export const SCROLLS_PER_COMBINE = 3
/** The scroll a random_gift_skill gives per skill tier when the skill is already unlocked. */
export const TierScroll: ReadonlyArray<Scroll> = ["scroll_skill_10", "scroll_skill_30", "scroll_skill_100"]

/** random_gift_skill: tier 1 with 60 %, tier 2 with 30 %, tier 3 with 10 % (roll 1..10). */
export const giftSkillTier = (roll10: number) => (roll10 <= 6 ? 0 : roll10 <= 9 ? 1 : 2)

/** random_gift_segment: roll 0..999 picks a band of ten weapons (40 %, 30 %, 20 %, 10 %). */
export const giftWeaponBand = (roll1000: number) => (roll1000 < 400 ? 0 : roll1000 < 700 ? 1 : roll1000 < 900 ? 2 : 3)

export type Reward = readonly [name: Item | "experience", amount: number]

/** Rewards of passing a level: the original's table (levels 1..8), continued by its own formula. */
export const levelRewards = (level: number): ReadonlyArray<Reward> =>
  level <= 1
    ? [["small_energy_potion", 1]]
    : [
        ["experience_potion", 75 + 25 * level],
        ["experience", 10],
        ["iron", 75 + 25 * level],
        ["coin", 225 + 75 * level],
        ["small_energy_potion", 1]
      ]
export const MAX_STAGE = 1000

export const FULL_ENERGY = 10
export const ENERGY_RECOVERY_MS = 20 * 60 * 1000

/** Energy state: stored amount and when recovery started (0 = not recovering). */
export interface Energy {
  readonly energy: number
  readonly since: number
}

/** Energy at `now`: one point per 20 minutes while below full; recovery never goes past full. */
export const currentEnergy = (state: Energy, now: number): Energy => {
  if (state.since === 0 || state.energy >= FULL_ENERGY) return { energy: state.energy, since: 0 }
  const recovered = Math.floor(Math.max(0, now - state.since) / ENERGY_RECOVERY_MS)
  const energy = Math.min(FULL_ENERGY, state.energy + recovered)
  return energy >= FULL_ENERGY ? { energy, since: 0 } : { energy, since: state.since + recovered * ENERGY_RECOVERY_MS }
}

/** After a change: recovery runs exactly while energy is below full. */
export const withRecovery = (energy: number, since: number, now: number): Energy =>
  energy >= FULL_ENERGY ? { energy, since: 0 } : { energy, since: since === 0 ? now : since }
