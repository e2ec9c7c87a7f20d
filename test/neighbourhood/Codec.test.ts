import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import {
  canonicalPem,
  exportPublicPem,
  fingerprintOf,
  fingerprintVariants,
  fromBase64,
  generateKeyPair,
  importPublicPem,
  openChat,
  sealChat,
  sha256Base64,
  signData,
  spkiFromPem,
  toBase64,
  verifyData,
  wrappedPem
} from "../../src/neighbourhood/Crypto.ts"
import {
  ChatPlaintext,
  encodeSignedData,
  Frame,
  openSignedData,
  parseChatPlaintext,
  parseFrame,
  preview,
  SignedContent
} from "../../src/neighbourhood/Wire.ts"
import { verifySigned } from "../../src/neighbourhood/Verify.ts"

const pair = await generateKeyPair()
const other = await generateKeyPair()
const pem = await exportPublicPem(pair.publicKey)
const key = await importPublicPem(pem)
if (typeof key === "string") throw new Error(key)

/** Fewer runs where each run costs an RSA operation. */
const rsaRuns = { numRuns: 25 }

describe("Neighbourhood codecs", () => {
  test("every frame round-trips through JSON and the schema", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Frame), (frame) => {
        const text = JSON.stringify(Schema.encodeSync(Frame)(frame))
        const decoded = parseFrame(text)
        expect(Either.isRight(decoded)).toBe(true)
        // JSON itself turns undefined inside an object-form `data` into null.
        expect(Either.getOrThrow(decoded)).toEqual(JSON.parse(text))
      })
    )
  })

  test("signed content round-trips as the data string, and as the object older drafts sent", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(SignedContent), (content) => {
        const data = JSON.stringify(content)
        const asString = openSignedData({ type: "signed_data", data, counter: 1, signature: "" })
        expect(Either.getOrThrow(asString)).toEqual({ dataText: data, content })
        const asObject = openSignedData({ type: "signed_data", data: content as any, counter: 1, signature: "" })
        expect(Either.getOrThrow(asObject).content).toEqual(content)
      })
    )
  })

  test("chat plaintext is read wrapped ({chat: {...}}, as v1.2 shows) and bare", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(ChatPlaintext), (plain) => {
        const body = "chat" in plain ? plain.chat : plain
        expect(parseChatPlaintext(JSON.stringify(plain))).toEqual(body)
      })
    )
  })

  test("arbitrary text never throws: a frame or a short reason that does not echo the input", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.oneof(FastCheck.string({ maxLength: 300 }), FastCheck.json()), (text) => {
        const parsed = parseFrame(text)
        if (Either.isLeft(parsed)) expect(parsed.left.length).toBeLessThanOrEqual(200)
      })
    )
  })

  test("deep nesting is refused before JSON.parse", () => {
    expect(Either.getLeft(parseFrame(`${"[".repeat(100_000)}${"]".repeat(100_000)}`))._tag).toBe("Some")
    expect(Either.getLeft(parseFrame(JSON.stringify({ type: "error", message: "[[[[[[[[[[[[[[[[[[[[[[" })))._tag).toBe(
      "None"
    )
  })

  test("base64 is strict RFC 4648 and round-trips", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.uint8Array({ maxLength: 200 }), (bytes) =>
        expect(fromBase64(toBase64(bytes))).toEqual(new Uint8Array(bytes))
      )
    )
    expect(fromBase64("abc")).toBeUndefined()
    expect(fromBase64("ab$=")).toBeUndefined()
  })
})

describe("Neighbourhood keys and fingerprints", () => {
  test("PEMs are compared by key: line breaks, CRLF, trailing newline and 4-dash lines read the same", async () => {
    const spki = spkiFromPem(pem)!
    for (const variant of [
      wrappedPem(spki),
      `${pem}\n`,
      wrappedPem(spki).replace(/\n/g, "\r\n"),
      pem.replace(/-----/g, "----")
    ]) {
      const parsed = await importPublicPem(variant)
      expect(typeof parsed === "string" ? parsed : parsed.pem).toBe(pem)
    }
  })

  test("the fingerprint is base64(SHA-256(one-line PEM)) and the variants include the common encodings", async () => {
    const spki = spkiFromPem(pem)!
    expect(pem).toBe(canonicalPem(spki))
    expect(pem.split("\n")).toHaveLength(3)
    const expected = new Bun.CryptoHasher("sha256").update(pem).digest("base64")
    expect(await fingerprintOf(spki)).toBe(expected)
    const variants = await fingerprintVariants(spki)
    expect(variants).toContain(expected)
    expect(variants).toContain(await sha256Base64(wrappedPem(spki)))
  })

  test("keys that are not RSA 2048-4096 with e = 65537 are refused", async () => {
    expect(await importPublicPem("hello")).toBe("not a PEM public key")
    const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign"])
    const ecPem = canonicalPem(new Uint8Array(await crypto.subtle.exportKey("spki", ec.publicKey)))
    expect(await importPublicPem(ecPem)).toBe("not an RSA key")
    const small = await crypto.subtle.generateKey(
      { name: "RSA-PSS", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign"]
    )
    expect(await importPublicPem(await exportPublicPem(small.publicKey))).toBe("RSA modulus must be 2048 to 4096 bits")
  })
})

describe("Neighbourhood signatures", () => {
  test("any data string and counter signs and verifies", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.string({ maxLength: 500 }), FastCheck.maxSafeNat(), async (data, counter) => {
        const signature = await signData(pair.privateKey, data, counter)
        expect(await verifyData(key.verifyKey, data, counter, signature)).toBe(true)
      }),
      rsaRuns
    )
  })

  test("any tampering fails: another data string, another counter, another signer, a flipped signature bit", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.string({ minLength: 1, maxLength: 200 }),
        FastCheck.nat({ max: 1e12 }),
        FastCheck.nat(),
        async (data, counter, position) => {
          const signature = await signData(pair.privateKey, data, counter)
          const tamperedData = `${data.slice(0, -1)}${data.at(-1) === "x" ? "y" : "x"}`
          expect(await verifyData(key.verifyKey, tamperedData, counter, signature)).toBe(false)
          expect(await verifyData(key.verifyKey, data, counter + 1, signature)).toBe(false)
          expect(await verifyData(key.verifyKey, data, counter, await signData(other.privateKey, data, counter))).toBe(
            false
          )
          const bytes = fromBase64(signature)!
          bytes[position % bytes.length]! ^= 1 << (position % 8)
          expect(await verifyData(key.verifyKey, data, counter, toBase64(bytes))).toBe(false)
          expect(await verifyData(key.verifyKey, data, counter, "not base64!")).toBe(false)
        }
      ),
      rsaRuns
    )
  })

  test("the signed text is data followed by the decimal counter (v1.2)", async () => {
    const data = JSON.stringify({ type: "public_chat", sender: "x", message: "hi" })
    const signature = await signData(pair.privateKey, data, 42)
    const raw = await crypto.subtle.verify(
      { name: "RSA-PSS", saltLength: 32 },
      key.verifyKey,
      fromBase64(signature)!,
      new TextEncoder().encode(`${data}42`)
    )
    expect(raw).toBe(true)
    expect(JSON.parse(encodeSignedData(data, 42, signature))).toEqual({
      type: "signed_data",
      data,
      counter: 42,
      signature
    })
  })
})

describe("Neighbourhood server verification (node:crypto) agrees with WebCrypto", () => {
  test("valid signatures verify; tampered data, counter, signer or signature bits fail, as with WebCrypto", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.string({ minLength: 1, maxLength: 300 }),
        FastCheck.nat({ max: 1e12 }),
        FastCheck.nat(),
        async (data, counter, position) => {
          const signature = await signData(pair.privateKey, data, counter)
          const bytes = fromBase64(signature)!
          bytes[position % bytes.length]! ^= 1 << (position % 8)
          const cases: Array<[string, number, string]> = [
            [data, counter, signature],
            [`${data.slice(0, -1)}${data.at(-1) === "x" ? "y" : "x"}`, counter, signature],
            [data, counter + 1, signature],
            [data, counter, await signData(other.privateKey, data, counter)],
            [data, counter, toBase64(bytes)],
            [data, counter, signature.replace(/=+$/, "")],
            [data, counter, "not base64!"]
          ]
          for (const [d, c, sig] of cases)
            expect(verifySigned(key, d, c, sig)).toBe(await verifyData(key.verifyKey, d, c, sig))
          expect(verifySigned(key, data, counter, signature)).toBe(true)
        }
      ),
      rsaRuns
    )
  })

  test("a PSS signature with another salt length is refused, as v1.2 fixes it at 32", async () => {
    const data = "salted"
    for (const saltLength of [0, 20, 64]) {
      const signature = toBase64(
        new Uint8Array(
          await crypto.subtle.sign(
            { name: "RSA-PSS", saltLength },
            pair.privateKey,
            new TextEncoder().encode(`${data}1`)
          )
        )
      )
      expect(verifySigned(key, data, 1, signature)).toBe(false)
      expect(await verifyData(key.verifyKey, data, 1, signature)).toBe(false)
    }
  })
})

describe("Neighbourhood chat encryption", () => {
  test("sealed chats open for each recipient only, and not after tampering", async () => {
    const third = await generateKeyPair()
    const decryptOf = async (p: CryptoKeyPair) =>
      crypto.subtle.importKey(
        "pkcs8",
        await crypto.subtle.exportKey("pkcs8", p.privateKey),
        { name: "RSA-OAEP", hash: "SHA-256" },
        false,
        ["decrypt"]
      )
    const spkiOf = async (p: CryptoKeyPair) => new Uint8Array(await crypto.subtle.exportKey("spki", p.publicKey))
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.string({ maxLength: 300 }), async (text) => {
        const sealed = await sealChat(text, [await spkiOf(pair), await spkiOf(other)])
        expect(fromBase64(sealed.iv)).toHaveLength(16)
        expect(fromBase64(sealed.chat)!.length).toBe(new TextEncoder().encode(text).length + 16)
        expect(await openChat(await decryptOf(pair), sealed)).toBe(text)
        expect(await openChat(await decryptOf(other), sealed)).toBe(text)
        expect(await openChat(await decryptOf(third), sealed)).toBeUndefined()
        const bytes = fromBase64(sealed.chat)!
        bytes[0]! ^= 1
        expect(await openChat(await decryptOf(pair), { ...sealed, chat: toBase64(bytes) })).toBeUndefined()
      }),
      { numRuns: 10 }
    )
  })
})

describe("error texts of refused frames (found by the fuzz suite)", () => {
  const reason = (text: string) => {
    const parsed = parseFrame(text)
    return Either.isLeft(parsed) ? parsed.left : ""
  }
  test("a schema error names the field and the rule, not the schema's type", () => {
    expect(reason('{"type":"signed_data","data":"{}","counter":-1,"signature":""}')).toBe(
      '"counter" expected a number between 0 and 9007199254740991'
    )
    expect(reason('{"type":"signed_data","counter":1,"signature":""}')).toBe('"data" is missing')
    expect(reason('{"type":"signed_data","data":false,"counter":1,"signature":""}')).not.toMatch(/readonly|\{/)
  })
  test("the preview of client text stays short once escaped", () => {
    const message = reason(JSON.stringify({ type: "\\".repeat(256) }))
    expect(JSON.stringify(message).length).toBeLessThan(100)
    expect(preview('"'.repeat(40)).length).toBeLessThanOrEqual(36)
  })
})
