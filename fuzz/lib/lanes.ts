import type { DefectId } from "../answers.ts"
import { INVALID_UTF8_CLOSE } from "../answers.ts"
import type { Violation } from "./engine.ts"
import type { FuzzSocket } from "./ws.ts"

/** One open, handshaken connection per lane, re-opened when a case got it closed. */
export class Lanes {
  private readonly sockets: Array<Promise<FuzzSocket> | undefined> = []
  private generation = 0
  constructor(private readonly open: (lane: number, generation: number) => Promise<FuzzSocket>) {}

  async get(lane: number): Promise<FuzzSocket> {
    const current = this.sockets[lane]
    if (current) {
      const socket = await current.catch(() => undefined)
      if (socket?.isOpen) return socket
    }
    const next = this.open(lane, ++this.generation)
    this.sockets[lane] = next
    return next
  }

  closeAll(): void {
    for (const socket of this.sockets) void socket?.then((s) => s.close()).catch(() => {})
  }
}

/** What the close of a connection says: documented, abrupt (1006), internal error (1011) or something else. */
export const judgeClose = (
  code: number,
  allowed: ReadonlyArray<number>,
  input: { readonly invalidUtf8Text: boolean; readonly depth: number; readonly what: string }
): Array<Violation> => {
  if (allowed.includes(code)) return []
  if (code === INVALID_UTF8_CLOSE && input.invalidUtf8Text) return []
  const deep: { defect?: DefectId } = input.depth > 500 ? { defect: "12.3" } : {}
  if (code === 1011)
    return [
      {
        invariant: "no-internal-error",
        detail: `closed with 1011 after ${input.what} (input depth ${input.depth})`,
        ...deep
      }
    ]
  if (code === 1006)
    return [
      { invariant: "no-abrupt-close", detail: `connection dropped without a close frame (1006) after ${input.what}` }
    ]
  return [{ invariant: "documented-answer", detail: `close code ${code} after ${input.what}` }]
}
