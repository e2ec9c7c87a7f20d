import { brokerCounters } from "../Cluster/BrokerMetrics.ts"
import { Effect, Layer, PubSub, Runtime } from "effect"
import { ClusterBroker } from "../Cluster/Broker.ts"
import { bodyText, decodeEnvelope, encodeEnvelope, envelopeHeader, EnvelopeKind, isFrom } from "../Cluster/Envelope.ts"
import { Metrics } from "../Observability/Metrics.ts"
import { Federation, type FederationService } from "./Federation.ts"
import { webSocketDialer, type Dialer } from "./Link.ts"
import { makeInProcessFederation } from "./InProcessFederation.ts"

interface Subject {
  readonly pubsub: PubSub.PubSub<string>
  subscribers: number
}

/**
 * Federation whose bus spans the cluster: a subject is subscribed on the broker while this node has
 * a subscriber to it, a publish reaches local subscribers directly (also while the broker is away)
 * and other nodes through one broker message. Links are the in-process ones (dial with `dial`).
 */
export const makeBrokerFederation = (dial: Dialer) =>
  Effect.gen(function* () {
    const broker = yield* ClusterBroker
    const metrics = yield* Metrics
    const links = yield* makeInProcessFederation(dial)
    const runtime = yield* Effect.runtime<never>()
    const header = envelopeHeader(broker.nodeId)
    const { sent, received, undelivered } = brokerCounters(metrics)
    const subjects = new Map<string, Subject>()
    const channelOf = (subject: string) => `bus/${subject}`

    const fromOtherNodes = (subject: string) => (bytes: Uint8Array) => {
      if (isFrom(bytes, header)) return
      const envelope = decodeEnvelope(bytes)
      const target = subjects.get(subject)
      if (envelope === undefined || envelope.kind !== EnvelopeKind.text || target === undefined) return
      received.inc()
      Runtime.runSync(runtime)(PubSub.publish(target.pubsub, bodyText(envelope.body)))
    }

    const release = (subject: string) =>
      Effect.suspend(() => {
        const entry = subjects.get(subject)
        if (!entry || --entry.subscribers > 0) return Effect.void
        subjects.delete(subject)
        return Effect.zipRight(broker.unsubscribe(channelOf(subject)), PubSub.shutdown(entry.pubsub))
      })

    const service: FederationService = {
      publish: (subject, payload) =>
        Effect.suspend(() => {
          const local = subjects.get(subject)
          if (
            broker.publish(channelOf(subject), encodeEnvelope(header, EnvelopeKind.text, payload), () =>
              undelivered.inc()
            )
          )
            sent.inc()
          else undelivered.inc()
          return local ? Effect.asVoid(PubSub.publish(local.pubsub, payload)) : Effect.void
        }),
      subscribe: (subject) =>
        Effect.gen(function* () {
          let entry = subjects.get(subject)
          if (!entry) {
            entry = { pubsub: yield* PubSub.unbounded<string>(), subscribers: 0 }
            subjects.set(subject, entry)
            yield* broker.subscribe(channelOf(subject), fromOtherNodes(subject))
          }
          entry.subscribers++
          const queue = yield* PubSub.subscribe(entry.pubsub)
          yield* Effect.addFinalizer(() => release(subject))
          return queue
        }),
      link: links.link,
      spansNodes: true
    }
    return service
  })

/** The cluster's Federation: bus on the ClusterBroker, links over real WebSockets. */
export const BrokerFederationLive = Layer.effect(Federation, makeBrokerFederation(webSocketDialer))
