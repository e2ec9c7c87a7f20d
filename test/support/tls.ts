import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A throwaway self-signed certificate for 127.0.0.1, made with the system's openssl. */
export const selfSigned = () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-tls-"))
  const certPath = join(dir, "cert.pem")
  const keyPath = join(dir, "key.pem")
  const result = Bun.spawnSync([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1"
  ])
  if (result.exitCode !== 0) throw new Error(`openssl failed: ${result.stderr.toString()}`)
  return { certPath, keyPath }
}

export const hasOpenssl = Bun.which("openssl") !== null
