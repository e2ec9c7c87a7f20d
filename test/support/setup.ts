import { FastCheck } from "effect"

// Property tests run from a fixed seed so CI is deterministic; FC_SEED=<n> explores other inputs.
const seed = Number(process.env.FC_SEED ?? 20261123)
FastCheck.configureGlobal({ seed, numRuns: Number(process.env.FC_RUNS ?? 100) })
if (process.env.FC_SEED) console.log(`fast-check seed ${seed}`)
