import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { machine } from "../../bench/lib/proc.ts"
import { defectTitles, KNOWN_DEFECTS } from "../answers.ts"
import type { ProtocolResult } from "./engine.ts"

/** results/fuzz-<date>.json (everything, repros included) and results/fuzz-<date>.md (the table). */

export const fuzzMarkdown = (results: ReadonlyArray<ProtocolResult>, seed: number): string => {
  const lines = [
    `# Fuzz run, seed ${seed}`,
    "",
    "| protocol | cases | cases/s | canary round trips | RSS start → peak (MiB) | restarts | violations | known defects |",
    "|---|---:|---:|---:|---|---:|---:|---:|"
  ]
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0)
  for (const r of results) {
    lines.push(
      `| ${r.protocol} | ${r.cases} | ${r.casesPerSecond} | ${r.canaryRoundTrips} | ${mib(r.rssStartBytes)} → ${mib(r.rssPeakBytes)} | ${r.restarts} | ` +
        `${r.unknownViolations} | ${r.knownViolations} |`
    )
  }
  const findings = results.flatMap((r) => r.findings.map((f) => ({ protocol: r.protocol, ...f })))
  if (findings.length > 0) {
    lines.push(
      "",
      "| protocol | invariant | defect | violations | first seen | minimized repro |",
      "|---|---|---|---:|---|---|"
    )
    for (const f of findings) {
      const repro = JSON.stringify(f.minimized ?? f.repro).replaceAll("|", "\\|")
      const defect = f.defect ? `${f.defect}${f.known ? " (known)" : ""}` : "—"
      lines.push(
        `| ${f.protocol} | ${f.invariant} | ${defect} | ${f.count} | ${(f.minimizedDetail ?? f.detail).replaceAll("|", "\\|")} | \`${repro.slice(0, 400)}\` |`
      )
    }
  }
  lines.push(
    "",
    `Known defects (reported, not failing): ${KNOWN_DEFECTS.map((id) => `${id} ${defectTitles[id]}`).join("; ") || "none"}.`
  )
  return lines.join("\n") + "\n"
}

export const writeFuzzResults = (
  dir: string,
  results: ReadonlyArray<ProtocolResult>,
  seed: number,
  settings: Record<string, unknown>
) => {
  const date = new Date().toISOString().slice(0, 10)
  const json = join(dir, `fuzz-${date}.json`)
  const markdown = join(dir, `fuzz-${date}.md`)
  writeFileSync(
    json,
    JSON.stringify(
      { date: new Date().toISOString(), seed, settings, knownDefects: KNOWN_DEFECTS, machine: machine(), results },
      null,
      2
    ) + "\n"
  )
  writeFileSync(markdown, fuzzMarkdown(results, seed))
  return { json, markdown }
}
