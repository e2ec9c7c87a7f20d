import { join } from "node:path"
import { parseArgs } from "node:util"
import { killAllChildren } from "../bench/lib/servers.ts"
import { type ProtocolResult, runProtocol } from "./lib/engine.ts"
import { fuzzMarkdown, writeFuzzResults } from "./lib/report.ts"
import { protocols } from "./protocols/index.ts"

/**
 * `npm run fuzz`: generated malformed input against every server (100,000 cases per protocol by
 * default). Options: --cases N, --limit name=N,… (another count for some protocols), --protocols a,b,
 * --seed N (or FC_SEED), --batch N, --shrink-ms N, --no-write. Exits 1 when an invariant is violated outside the known defects (fuzz/answers.ts).
 */

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "100000" },
    limit: { type: "string" },
    protocols: { type: "string" },
    seed: { type: "string" },
    batch: { type: "string", default: "400" },
    "shrink-ms": { type: "string", default: "30000" },
    "rss-headroom-mb": { type: "string", default: "512" },
    "no-write": { type: "boolean", default: false }
  }
})

const seed = Number(values.seed ?? process.env.FC_SEED ?? 20261129)
const wanted = values.protocols?.split(",")
const selected = protocols.filter((protocol) => !wanted || wanted.includes(protocol.name))
const settings = {
  cases: Number(values.cases),
  seed,
  batchSize: Number(values.batch),
  shrinkMs: Number(values["shrink-ms"]),
  shrinkKnown: true,
  rssHeadroomBytes: Number(values["rss-headroom-mb"]) * 2 ** 20,
  log: (line: string) => console.log(line)
}

const limits = new Map(
  (values.limit ?? "")
    .split(",")
    .filter(Boolean)
    .map((entry) => [entry.split("=")[0]!, Number(entry.split("=")[1])] as const)
)

process.on("SIGINT", () => {
  killAllChildren()
  process.exit(130)
})

const results: Array<ProtocolResult> = []
try {
  for (const protocol of selected) {
    console.log(`${protocol.name}: ${limits.get(protocol.name) ?? settings.cases} cases, seed ${seed}`)
    const cases = limits.get(protocol.name) ?? settings.cases
    const result = await runProtocol(protocol, { ...settings, cases })
    console.log(
      `${protocol.name}: ${result.cases} cases in ${result.seconds} s (${result.casesPerSecond}/s), ${result.unknownViolations} violations, ${result.knownViolations} known`
    )
    results.push(result)
  }
} finally {
  killAllChildren()
}
console.log("\n" + fuzzMarkdown(results, seed))
if (!values["no-write"]) {
  const written = writeFuzzResults(join(import.meta.dir, "..", "results"), results, seed, {
    cases: settings.cases,
    limits: Object.fromEntries(limits),
    batchSize: settings.batchSize,
    shrinkMs: settings.shrinkMs
  })
  console.log(`wrote ${written.json} and ${written.markdown}`)
}
process.exit(results.some((result) => result.unknownViolations > 0) ? 1 : 0)
