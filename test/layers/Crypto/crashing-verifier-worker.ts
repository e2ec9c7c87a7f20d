/**
 * The real verifier worker, except that a batch whose text says "crash-always" kills it, and one
 * that says "crash-once:<path>" kills it when <path> does not exist yet (creating it): a crash the
 * replacement worker does not repeat. For VerifierPool.test.ts.
 */
import { existsSync, writeFileSync } from "node:fs"
import "../../../layers/Crypto/VerifierWorker.ts"

declare const self: Worker
const real = self.onmessage!
self.onmessage = (event: MessageEvent) => {
  const items = (event.data as { items?: string }).items ?? ""
  if (items.includes("crash-always")) process.exit(1)
  const once = /crash-once:(\S+)/.exec(items)?.[1]
  if (once && !existsSync(once)) {
    writeFileSync(once, "")
    throw new Error("crashed for the test")
  }
  real.call(self, event)
}
