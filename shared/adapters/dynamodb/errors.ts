/** How DynamoDB says no: the one place that tells a failed condition from a conflict or a fault. */
import { type AttributeValue, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { RetryLater } from "../../domain/errors.ts";

/** A single-item write whose condition was false. */
export const isConditionFailure = (err: unknown) =>
  (err as Error)?.name === "ConditionalCheckFailedException";

/**
 * The item as it was when a write's condition failed (the write asked for
 * `ReturnValuesOnConditionCheckFailure: ALL_OLD`). A retried write that meets its own earlier
 * success finds itself there: that is how an ambiguous answer is told from a lost race.
 */
export function itemAtFailure(err: unknown): Record<string, unknown> | undefined {
  const item = (err as { Item?: Record<string, AttributeValue> }).Item;
  return isConditionFailure(err) && item ? unmarshall(item) : undefined;
}

export type TransactItem = NonNullable<TransactWriteCommandInput["TransactItems"]>[number];

/** Why each named item of a cancelled transaction refused: "ConditionalCheckFailed", "TransactionConflict", "None", ... */
export type Reasons<N extends string> = Record<N, string>;

export type TransactResult<N extends string> =
  | { ok: true }
  | {
      ok: false;
      reasons: Reasons<N>;
      /** Each item as it was where its condition failed and it asked for `ALL_OLD`. */
      olds: Partial<Record<N, Record<string, unknown>>>;
    };

/**
 * Runs a transaction whose items are named, and answers why it was cancelled by those names
 * (instead of `codes[1]`). A conflict with another transaction is a RetryLater when
 * `conflictIsRetry` (the default); any other error is thrown as it is.
 */
export async function transact<N extends string>(
  doc: DynamoDBDocumentClient,
  items: Record<N, TransactItem | undefined>,
  opts: { conflictIsRetry?: boolean } = {},
): Promise<TransactResult<N>> {
  const named = (Object.entries(items) as [N, TransactItem | undefined][]).filter(
    (e): e is [N, TransactItem] => e[1] !== undefined,
  );
  try {
    await doc.send(new TransactWriteCommand({ TransactItems: named.map(([, item]) => item) }));
    return { ok: true };
  } catch (err) {
    if (!(err instanceof TransactionCanceledException)) throw err;
    const codes = err.CancellationReasons ?? [];
    const reasons = Object.fromEntries(
      named.map(([name], i) => [name, codes[i]?.Code ?? "None"]),
    ) as Reasons<N>;
    const olds = Object.fromEntries(
      named.flatMap(([name], i) => {
        const item = codes[i]?.Item;
        return item ? [[name, unmarshall(item)]] : [];
      }),
    ) as Partial<Record<N, Record<string, unknown>>>;
    const all = Object.values<string>(reasons);
    if (
      (opts.conflictIsRetry ?? true) &&
      all.includes("TransactionConflict") &&
      !all.includes("ConditionalCheckFailed")
    )
      throw new RetryLater(`a write collided with another transaction (${named.map(([n]) => n).join(", ")})`);
    return { ok: false, reasons, olds };
  }
}

/** Whether any named item failed its condition. */
export const conditionFailed = <N extends string>(reasons: Reasons<N>, ...names: N[]) =>
  (names.length ? names : (Object.keys(reasons) as N[])).some((n) => reasons[n] === "ConditionalCheckFailed");
