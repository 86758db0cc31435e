import type { UsageMeter } from "../usage.ts";
import type { SqlStatement } from "./backend.ts";

type Kind = "select" | "insert" | "update" | "delete" | "other";
const FIRST_KEYWORD = /^[\s(]*(select|insert|update|delete)\b/i;

/** The statement's kind from its first keyword (a CTE or DDL counts as "other"). */
export function statementKind(query: string): Kind {
  const word = FIRST_KEYWORD.exec(query)?.[1];
  return word === undefined ? "other" : (word.toLowerCase() as Kind);
}

/**
 * Neon's HTTP endpoint: each `POST /sql` is one request, a batch (one transaction) carrying N
 * statements. Counted once the request is parsed, so a request the `down` fault refuses (it never
 * reached Neon) is not counted, and one that fails in SQL is.
 */
export class NeonUsage implements UsageMeter {
  requests = 0;
  statements = 0;
  byKind: Record<Kind, number> = { select: 0, insert: 0, update: 0, delete: 0, other: 0 };

  count(statements: readonly SqlStatement[]): void {
    this.requests++;
    this.statements += statements.length;
    for (const s of statements) this.byKind[statementKind(s.query)]++;
  }

  snapshot() {
    return { requests: this.requests, statements: this.statements, by_kind: { ...this.byKind } };
  }

  reset(): void {
    this.requests = 0;
    this.statements = 0;
    this.byKind = { select: 0, insert: 0, update: 0, delete: 0, other: 0 };
  }
}
