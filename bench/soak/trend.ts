/** Least-squares slope of y over x (units of y per unit of x); NaN with fewer than two points. */
export const slope = (points: ReadonlyArray<readonly [number, number]>): number => {
  const n = points.length
  if (n < 2) return Number.NaN
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/**
 * "Flat": over the second half of the run (after warm-up and the first GC cycles), the fitted
 * growth across that half stays under `allowed` (noise: GC timing, allocator arenas).
 */
export const flatOverSecondHalf = (points: ReadonlyArray<readonly [number, number]>, allowed: number) => {
  const start = points.length > 0 ? points[0]![0] + (points.at(-1)![0] - points[0]![0]) / 2 : 0
  const half = points.filter(([x]) => x >= start)
  const perUnit = slope(half)
  const span = half.length > 1 ? half.at(-1)![0] - half[0]![0] : 0
  const growth = perUnit * span
  return { slopePerUnit: perUnit, growthOverSecondHalf: growth, allowed, flat: !(growth > allowed) }
}
