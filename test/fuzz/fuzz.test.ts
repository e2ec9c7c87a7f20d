import { afterAll, describe, expect, test } from "bun:test"
import { killAllChildren } from "../../bench/lib/servers.ts"
import { KNOWN_DEFECTS } from "../../fuzz/answers.ts"
import { runProtocol } from "../../fuzz/lib/engine.ts"
import { protocols } from "../../fuzz/protocols/index.ts"

/**
 * The fuzz suite in miniature (`npm run fuzz` is the full run): each protocol's server as a child
 * process, 1,000 generated malformed cases from a fixed seed (FC_SEED overrides; FUZZ_CI_CASES
 * changes the count), every invariant checked. A per-protocol time budget keeps the file bounded
 * while known defects (fuzz/answers.ts) still make some cases slow; violations of those defects are
 * printed, not failed, until the list is emptied.
 */

const cases = Number(process.env.FUZZ_CI_CASES ?? 1000)
const seed = Number(process.env.FC_SEED ?? 20261129)

afterAll(() => killAllChildren())

describe("fuzz (short)", () => {
  for (const protocol of protocols) {
    test(`${protocol.name}: generated malformed input gets documented answers`, async () => {
      const result = await runProtocol(protocol, {
        cases,
        seed,
        batchSize: 250,
        shrinkMs: 3000,
        shrinkKnown: false,
        timeBudgetMs: 2000,
        rssHeadroomBytes: 512 * 2 ** 20,
        log: () => {}
      })
      const known = result.findings.filter((finding) => finding.known)
      if (known.length > 0) {
        console.log(
          `${protocol.name}: ${result.cases} cases; known defects ${KNOWN_DEFECTS.join(", ")}: ${known.map((f) => `${f.defect} ${f.invariant} ×${f.count}`).join("; ")}`
        )
      }
      const unknown = result.findings.filter((finding) => !finding.known)
      expect(
        unknown.map((f) => ({
          invariant: f.invariant,
          detail: f.minimizedDetail ?? f.detail,
          repro: f.minimized ?? f.repro,
          replay: f.replay
        }))
      ).toEqual([])
      expect(result.cases).toBeGreaterThan(0)
      expect(result.canaryRoundTrips).toBeGreaterThan(0)
    }, 25_000)
  }
})
