/** 128-bit random access code, hex: what we hand out on create and regenerate. */
export const generateAccessCode = (): string => {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}
