/**
 * Latency histogram in microseconds with log-linear buckets (32 per power of two, ~3 % precision),
 * cheap enough to record every delivery and mergeable across worker processes.
 */
const LINEAR = 64
const SUB_BITS = 5
const SUB = 1 << SUB_BITS
const MAX_EXPONENT = 36

export const histogramSize = LINEAR + (MAX_EXPONENT - 6 + 1) * SUB

export const bucketOf = (micros: number): number => {
  const v = micros < 0 ? 0 : Math.floor(micros)
  if (v < LINEAR) return v
  const exponent = Math.min(MAX_EXPONENT, 31 - Math.clz32(v >= 2 ** 31 ? 2 ** 31 - 1 : v))
  const sub = Math.floor(v / 2 ** (exponent - SUB_BITS)) & (SUB - 1)
  return LINEAR + (exponent - 6) * SUB + sub
}

/** The lower bound of a bucket, in microseconds. */
export const bucketValue = (index: number): number => {
  if (index < LINEAR) return index
  const exponent = Math.floor((index - LINEAR) / SUB) + 6
  const sub = (index - LINEAR) % SUB
  return (SUB + sub) * 2 ** (exponent - SUB_BITS)
}

export class Histogram {
  counts = new Float64Array(histogramSize)
  total = 0
  max = 0

  record(micros: number): void {
    this.counts[bucketOf(micros)]! += 1
    this.total += 1
    if (micros > this.max) this.max = micros
  }

  reset(): void {
    this.counts.fill(0)
    this.total = 0
    this.max = 0
  }

  merge(other: SerializedHistogram): void {
    for (const [index, count] of other.buckets) this.counts[index]! += count
    this.total += other.total
    if (other.max > this.max) this.max = other.max
  }

  /** Value at quantile q (0..1) in microseconds; the bucket's lower bound, or the max at q = 1. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN
    if (q >= 1) return this.max
    const rank = Math.ceil(q * this.total)
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(bucketValue(i), this.max)
    }
    return this.max
  }

  /** Sparse form for IPC: only non-empty buckets. */
  serialize(): SerializedHistogram {
    const buckets: Array<[number, number]> = []
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!])
    return { buckets, total: this.total, max: this.max }
  }
}

export interface SerializedHistogram {
  readonly buckets: Array<[number, number]>
  readonly total: number
  readonly max: number
}

export interface LatencySummary {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly samples: number
}

export const summarizeLatency = (histogram: Histogram): LatencySummary => ({
  p50Ms: histogram.quantile(0.5) / 1000,
  p99Ms: histogram.quantile(0.99) / 1000,
  maxMs: histogram.max / 1000,
  samples: histogram.total
})

/** Median and spread of repeated runs: the figure a table shows and how much it moved. */
export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: number
  /** (max - min) / median, as a fraction. */
  readonly relativeSpread: number
}

export const spreadOf = (values: ReadonlyArray<number>): Spread => {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0)
    return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: values.length, relativeSpread: Number.NaN }
  const middle = Math.floor(finite.length / 2)
  const median = finite.length % 2 === 1 ? finite[middle]! : (finite[middle - 1]! + finite[middle]!) / 2
  const min = finite[0]!
  const max = finite[finite.length - 1]!
  return { median, min, max, runs: values.length, relativeSpread: median === 0 ? 0 : (max - min) / Math.abs(median) }
}

/** Spread of every numeric field across runs of the same shape. */
export const spreadFields = <K extends string>(
  runs: ReadonlyArray<Record<K, number>>,
  keys: ReadonlyArray<K>
): Record<K, Spread> => {
  const out = {} as Record<K, Spread>
  for (const key of keys) out[key] = spreadOf(runs.map((run) => run[key]))
  return out
}
