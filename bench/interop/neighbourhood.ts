/**
 * Interop check of our Neighbourhood server with an independent OLAF/Neighbourhood v1.2
 * implementation: xvk-64/secure-programming-2024 (TypeScript on Node, by the protocol's editors).
 * Nothing of theirs is in this repository: pass the path of a built checkout of theirs
 * (`npm ci && npm run build -w @sp24/common -w @sp24/server`); without it the script says so and exits 0.
 *
 *   npx bun run bench/interop/neighbourhood.ts --xvk /tmp/nbh-xvk [--our-address localhost:9102]
 *
 * It runs their server (address `server0`) and ours side by side on loopback, in both start orders
 * (they dial us / only we dial them), with our typed client and theirs on each server, and prints
 * one line per check. See docs/neighbourhood.md, "Interop".
 */
import type { ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import {
  gotChat,
  gotPublic,
  keyPair,
  listed,
  listening,
  listOf,
  ourClient,
  sleep,
  start,
  stop,
  waitFor
} from "./support.ts"
import { theirClient } from "./xvk-client.ts"

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : undefined
}
const xvk = arg("xvk") ?? process.env.NBH_INTEROP_XVK
const theirServerJs = xvk ? join(resolve(xvk), "pkg/server/dist/src/server.js") : ""
if (!xvk || !existsSync(theirServerJs)) {
  console.log("skipped: pass --xvk <built checkout of xvk-64/secure-programming-2024>")
  process.exit(0)
}
const ourAddress = arg("our-address") ?? "localhost:9102"
const ourPort = 9102
const theirPort = 3300
const repo = resolve(import.meta.dir, "../..")

const results: Array<{ scenario: string; check: string; ok: boolean; note: string }> = []
const record = (scenario: string, check: string, ok: boolean, note = "") => {
  results.push({ scenario, check, ok, note })
  console.log(`${ok ? "PASS" : "FAIL"}  [${scenario}] ${check}${note ? ` — ${note}` : ""}`)
}

const scenario = async (order: "ours-first" | "theirs-first") => {
  const name = `${order}, ours=${ourAddress}`
  const dir = mkdtempSync(join(tmpdir(), "nbh-interop-"))
  const theirs = keyPair()
  const ours = keyPair()
  writeFileSync(join(dir, "their-priv.pem"), theirs.priv)
  writeFileSync(join(dir, "their-pub.pem"), theirs.pub)
  writeFileSync(join(dir, "our-key.pem"), ours.priv)
  writeFileSync(
    join(dir, "neighbourhood.json"),
    JSON.stringify([
      { address: "server0", verifyKey: theirs.pub, URL: `ws://127.0.0.1:${theirPort}` },
      { address: ourAddress, verifyKey: ours.pub, URL: `ws://127.0.0.1:${ourPort}` }
    ])
  )
  writeFileSync(
    join(dir, "ours.json"),
    JSON.stringify({
      neighbourhood: {
        port: ourPort,
        hostname: "127.0.0.1",
        address: ourAddress,
        keyPath: join(dir, "our-key.pem"),
        redialMaxMs: 500,
        compat: { pushClientList: true },
        files: { directory: join(dir, "files") },
        neighbours: [{ address: "server0", url: `ws://127.0.0.1:${theirPort}/`, publicKey: theirs.pub }]
      }
    })
  )
  const log: Array<string> = []
  const startOurs = () =>
    start(
      "ours",
      join(repo, "node_modules/.bin/bun"),
      ["run", join(repo, "programs/neighbourhood.ts"), "--config", join(dir, "ours.json")],
      repo,
      log
    )
  const startTheirs = () =>
    start(
      "theirs",
      "node",
      [
        theirServerJs,
        "server0",
        String(theirPort),
        join(dir, "their-priv.pem"),
        join(dir, "their-pub.pem"),
        join(dir, "neighbourhood.json")
      ],
      dir,
      log
    )
  const children: Array<ChildProcess> = []
  const clients: Array<{ close: () => void }> = []
  try {
    if (order === "ours-first") {
      children.push(startOurs())
      await listening(ourPort)
      children.push(startTheirs())
      await listening(theirPort)
    } else {
      children.push(startTheirs())
      await listening(theirPort)
      children.push(startOurs())
      await listening(ourPort)
    }
    const ourUrl = `ws://127.0.0.1:${ourPort}/`
    const theirUrl = `ws://127.0.0.1:${theirPort}/`
    const o1 = await ourClient(ourUrl) // ours on ours
    const o2 = await ourClient(theirUrl) // ours on theirs
    const t1 = await theirClient(xvk, theirUrl) // theirs on theirs
    const t2 = await theirClient(xvk, ourUrl) // theirs on ours
    clients.push(o1, o2, t1, t2)

    // client lists (client_update both ways, then client_list_request on each server)
    const meshUp = await waitFor("both lists", async () => {
      const a = await listOf(o1)
      const b = await listOf(o2)
      return listed(a, "server0", o2.client.fingerprint) && listed(b, ourAddress, o1.client.fingerprint)
    })
    record(name, "client_update both ways: each server lists the other's clients", meshUp)
    const a = await listOf(o1)
    record(
      name,
      "our server's client_list: ours first, their clients under server0",
      a[0]?.address === ourAddress &&
        listed(a, ourAddress, t2.fingerprint) &&
        listed(a, "server0", t1.fingerprint) &&
        listed(a, "server0", o2.client.fingerprint),
      a.map((s) => `${s.address}:${s.clients.length}`).join(" ")
    )
    const b = await listOf(o2)
    record(
      name,
      "their server's client_list lists our clients under our address",
      listed(b, ourAddress, o1.client.fingerprint) && listed(b, ourAddress, t2.fingerprint),
      b.map((s) => `${s.address}:${s.clients.length}`).join(" ")
    )
    // Their client never sends client_list_request: it waits for pushes (ours: compat.pushClientList).
    const t1Sees = await waitFor("their client t1 sees o1", () => t1.online().includes(o1.client.fingerprint))
    record(name, "their client on their server lists our client (pushed client_list)", t1Sees)
    const t2Sees = await waitFor("their client t2 sees t1", () => t2.online().includes(t1.fingerprint))
    record(name, "their client on our server lists clients of both (pushed client_list)", t2Sees)

    // public chat both ways
    o1.send(await o1.client.publicChat("pub from o1"))
    record(
      name,
      "public_chat ours→theirs: our client on their server",
      await waitFor("o2", () => gotPublic(o2, "pub from o1"))
    )
    record(
      name,
      "public_chat ours→theirs: their client on their server",
      await waitFor("t1", () => t1.publicFrom(o1.client.fingerprint, "pub from o1"))
    )
    record(
      name,
      "public_chat ours→ours: their client on our server",
      await waitFor("t2", () => t2.publicFrom(o1.client.fingerprint, "pub from o1"))
    )
    await t1.sendPublic("pub from t1")
    record(
      name,
      "public_chat theirs→ours: our client on our server",
      await waitFor("o1", () => gotPublic(o1, "pub from t1"))
    )
    record(
      name,
      "public_chat theirs→ours: their client on our server",
      await waitFor("t2", () => t2.publicFrom(t1.fingerprint, "pub from t1"))
    )
    await sleep(500)
    const copies = o1.got.filter((i) => i.kind === "public_chat" && i.message === "pub from t1").length
    record(name, "public_chat theirs→ours delivered once (they send it on every connection)", copies === 1, `${copies}`)
    await t2.sendPublic("pub from t2")
    record(
      name,
      "public_chat from their client on our server reaches their server",
      await waitFor("t1", () => t1.publicFrom(t2.fingerprint, "pub from t2"))
    )

    // private chats across servers, both ways
    const o2Entry = { pem: o2.client.publicPem, server: "server0" }
    const o1Entry = { pem: o1.client.publicPem, server: ourAddress }
    o1.send(await o1.client.chat([o2Entry], "dm o1→o2"))
    record(
      name,
      "chat ours→theirs (our clients, via both servers)",
      await waitFor("o2 dm", () => gotChat(o2, "dm o1→o2"))
    )
    o2.send(await o2.client.chat([o1Entry], "dm o2→o1"))
    record(
      name,
      "chat theirs→ours (our clients, via both servers)",
      await waitFor("o1 dm", () => gotChat(o1, "dm o2→o1"))
    )
    await t1.sendChat([o1.client.fingerprint], "dm t1→o1")
    record(
      name,
      "chat from their client (their server) to our client (our server)",
      await waitFor("o1 dm t1", () => gotChat(o1, "dm t1→o1"))
    )
    o1.send(await o1.client.chat([{ pem: t1.pem, server: "server0" }], "dm o1→t1"))
    record(
      name,
      "chat from our client (our server) to their client (their server)",
      await waitFor("t1 dm o1", () => t1.chatFrom(o1.client.fingerprint, "dm o1→t1"), 4000)
    )
    await t2.sendChat([t1.fingerprint], "dm t2→t1")
    record(
      name,
      "chat their client on our server → their client on their server",
      await waitFor("t1 dm t2", () => t1.chatFrom(t2.fingerprint, "dm t2→t1"))
    )
    await t1.sendChat([t2.fingerprint], "dm t1→t2")
    record(
      name,
      "chat their client on their server → their client on our server",
      await waitFor("t2 dm t1", () => t2.chatFrom(t1.fingerprint, "dm t1→t2"))
    )

    // a leave is sent as a client_update
    o1.close()
    const gone = await waitFor(
      "o1 gone from their list",
      async () => !listed(await listOf(o2), ourAddress, o1.client.fingerprint)
    )
    record(name, "client_update on leave: our client disappears from their server's list", gone)
    o2.close()
    const gone2 = await waitFor("o2 gone from our list", async () => {
      return !t2.online().includes(o2.client.fingerprint)
    })
    record(name, "client_update on leave: their client disappears from our server's list", gone2)

    // their server restarts (its counters start at 0 again; it dials once, at start)
    const theirIndex = order === "ours-first" ? 1 : 0
    await stop(children[theirIndex]!)
    children[theirIndex] = startTheirs()
    await listening(theirPort)
    const o3 = await ourClient(ourUrl)
    const o4 = await ourClient(theirUrl)
    clients.push(o3, o4)
    const healed = await waitFor(
      "lists after their restart",
      async () => {
        const here = await listOf(o3)
        const there = await listOf(o4)
        return listed(here, "server0", o4.client.fingerprint) && listed(there, ourAddress, o3.client.fingerprint)
      },
      15000
    )
    record(name, "after their restart the servers link again and lists converge", healed)
    o3.send(await o3.client.chat([{ pem: o4.client.publicPem, server: "server0" }], "after restart"))
    record(name, "chat ours→theirs after their restart", await waitFor("o4 dm", () => gotChat(o4, "after restart")))
  } catch (error) {
    record(name, "scenario ran to the end", false, String(error))
  } finally {
    for (const c of clients) c.close()
    for (const child of children.reverse()) await stop(child)
    const interesting = log.filter((l) => /warn|error|refused|INSECURE|connected|disconnected/i.test(l))
    writeFileSync(join(dir, "servers.log"), log.join("\n"))
    console.log(`  server log lines worth a look (${interesting.length}, all in ${join(dir, "servers.log")}):`)
    for (const l of interesting.slice(0, 25)) console.log(`    ${l.slice(0, 220)}`)
    if (!process.argv.includes("--keep")) rmSync(dir, { recursive: true, force: true })
  }
}

await scenario("ours-first")
await scenario("theirs-first")
const failed = results.filter((r) => !r.ok)
console.log(`\n${results.length - failed.length}/${results.length} checks passed`)
process.exit(0)
