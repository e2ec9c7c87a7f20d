import { Option, ParseResult, SchemaAST } from "effect"

/**
 * Schema errors as clients see them: the field and the rule, never the value that broke it nor
 * the whole schema type (values can be huge or deeply nested, and types are internals).
 */

const maxText = 200
const maxKey = 32

/** A path segment from client input (a record key), escaped and cut short. */
const segment = (key: PropertyKey) => {
  const text = typeof key === "string" ? key : String(key)
  const escaped = JSON.stringify(text.length > maxKey ? `${text.slice(0, maxKey)}…` : text).slice(1, -1)
  return /^[A-Za-z0-9_$]+$/.test(escaped) ? escaped : `"${escaped}"`
}

/** What a value of this schema is, in a few words ("a string", "\"g\" or \"i\""). */
const describe = (ast: SchemaAST.AST, depth = 0): string => {
  if (depth > 4) return "a valid value"
  const description = SchemaAST.getDescriptionAnnotation(ast)
  switch (ast._tag) {
    case "Literal":
      return JSON.stringify(ast.literal)
    case "StringKeyword":
      return "a string"
    case "NumberKeyword":
      return "a number"
    case "BooleanKeyword":
      return "a boolean"
    case "TypeLiteral":
      return "an object"
    case "TupleType":
      return "an array"
    case "Union":
      // An optional field's `undefined` is no choice a JSON client has; a member's own limits (length) are for its refinement's error.
      return ast.types
        .filter((member) => member._tag !== "UndefinedKeyword")
        .map((member) =>
          describe(
            member._tag === "Refinement" && member.from._tag === "Transformation" ? member.from : member,
            depth + 1
          )
        )
        .join(" or ")
    case "Refinement":
      return Option.getOrElse(description, () => describe(ast.from, depth + 1))
    case "Transformation":
      return describe(ast.from, depth + 1)
    default:
      return Option.getOrElse(description, () => "a valid value")
  }
}

/** The first failure under an issue: its path and rule. */
const firstFailure = (
  issue: ParseResult.ParseIssue,
  path: ReadonlyArray<PropertyKey>
): { path: ReadonlyArray<PropertyKey>; rule: string } => {
  switch (issue._tag) {
    case "Pointer":
      return firstFailure(issue.issue, [
        ...path,
        ...(Array.isArray(issue.path) ? issue.path : [issue.path as PropertyKey])
      ])
    case "Missing":
      return { path, rule: "is required" }
    case "Unexpected":
      return { path, rule: "is not allowed" }
    case "Forbidden":
      return { path, rule: "cannot be checked here" }
    case "Type":
      return { path, rule: issue.message ?? `must be ${describe(issue.ast)}` }
    case "Refinement":
      return issue.kind === "Predicate"
        ? { path, rule: `must be ${describe(issue.ast)}` }
        : firstFailure(issue.issue, path)
    case "Transformation":
      return firstFailure(issue.issue, path)
    case "Composite":
      if (issue.ast._tag === "Union") return { path, rule: `must be ${describe(issue.ast)}` }
      return firstFailure(
        Array.isArray(issue.issues) ? issue.issues[0]! : (issue.issues as ParseResult.ParseIssue),
        path
      )
  }
}

/** "field.sub: rule" for the first failure of a decode; `whole` names the root (e.g. "body"). */
export const describeParseError = (error: ParseResult.ParseError, whole: string): string => {
  const { path, rule } = firstFailure(error.issue, [])
  const where = path.length === 0 ? whole : path.map(segment).join(".")
  const text = `${where}: ${rule}`
  return text.length > maxText ? `${text.slice(0, maxText)}…` : text
}
