import type { FuzzProtocol } from "../lib/engine.ts"
import { droneEngageHttp } from "./droneengage-http.ts"
import { relay } from "./relay.ts"
import { chat } from "./chat.ts"
import { hydrogenWs } from "./hydrogen-ws.ts"
import { hydrogenHttp } from "./hydrogen-http.ts"
import { neighbourhood } from "./neighbourhood.ts"
import { aliya } from "./aliya.ts"

/** Every fuzzed protocol, in run order. A new server adds one file here and one line below. */
export const protocols: ReadonlyArray<FuzzProtocol<any>> = [
  droneEngageHttp,
  relay,
  chat,
  hydrogenWs,
  hydrogenHttp,
  neighbourhood,
  aliya
]
