/** Helpers of the interop script (bench/interop/neighbourhood.ts): keys, processes, our typed clients. */
import { type ChildProcess, spawn } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { connect, type Incoming, NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"

/** A v1.2 PEM: one base64 line, no trailing newline (their parser needs exactly that). */
export const oneLinePem = (pem: string) => {
  const [, label] = /-----BEGIN ([A-Z ]+)-----/.exec(pem) ?? []
  const body = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s/g, "")
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`
}
export const keyPair = () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    pub: oneLinePem(publicKey.export({ type: "spki", format: "pem" }).toString()),
    priv: oneLinePem(privateKey.export({ type: "pkcs8", format: "pem" }).toString())
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
export const waitFor = async (what: string, test: () => boolean | Promise<boolean>, ms = 8000) => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await test()) return true
    await sleep(100)
  }
  console.log(`  (timed out waiting for ${what})`)
  return false
}

export interface OurClient {
  readonly client: NeighbourhoodClient
  readonly got: Array<Incoming>
  readonly send: (frame: string) => void
  readonly close: () => void
}
export const ourClient = async (url: string): Promise<OurClient> => {
  const client = await NeighbourhoodClient.generate()
  const got: Array<Incoming> = []
  const ws = await connect(url, client, (i) => got.push(i))
  return { client, got, send: ws.send, close: ws.close }
}
/** Our client's view of the neighbourhood after one client_list_request (v1.2 has no push). */
export const listOf = async (c: OurClient) => {
  const before = c.got.length
  c.send(c.client.clientListRequest())
  await waitFor("client_list", () => c.got.slice(before).some((i) => i.kind === "client_list"), 3000)
  const list = c.got
    .slice(before)
    .filter((i) => i.kind === "client_list")
    .pop()
  return list?.kind === "client_list" ? list.servers : []
}
export const listed = (servers: Awaited<ReturnType<typeof listOf>>, address: string, fingerprint: string) =>
  servers.some((s) => s.address === address && s.clients.some((k) => k.fingerprint === fingerprint))
export const gotPublic = (c: OurClient, message: string) =>
  c.got.some((i) => i.kind === "public_chat" && i.message === message && i.verified)
export const gotChat = (c: OurClient, message: string) =>
  c.got.some((i) => i.kind === "chat" && i.message === message && i.verified)

export const start = (name: string, cmd: string, args: Array<string>, cwd: string, log: Array<string>) => {
  // Its own process group, so stopping it stops whatever it started.
  const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], detached: true })
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) log.push(`${name}: ${line}`)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  return child
}
export const stop = async (child: ChildProcess) => {
  const running = () => child.exitCode === null && child.signalCode === null
  const signal = (name: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, name)
    } catch {
      // already gone
    }
  }
  if (!running()) return
  signal("SIGTERM")
  await Promise.race([new Promise((r) => child.once("exit", r)), sleep(3000)])
  if (running()) signal("SIGKILL")
}
export const listening = (port: number) =>
  waitFor(`port ${port}`, async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`)
      return true
    } catch {
      return false
    }
  })
