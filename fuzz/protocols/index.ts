import type { FuzzProtocol } from "../lib/engine.ts"
import { droneEngageHttp } from "./droneengage-http.ts"
import { relay } from "./relay.ts"

/** Every fuzzed protocol, in run order. A new server adds one file here and one line below. */
export const protocols: ReadonlyArray<FuzzProtocol<any>> = [droneEngageHttp, relay]
